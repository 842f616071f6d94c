import pino, { type Logger } from "pino";

/** Paths that could carry a secret are censored in every log line (DESIGN.md "Security"). */
export const REDACT_PATHS = [
  "req.headers.authorization",
  "req.headers.cookie",
  'req.headers["x-wattfare-grant"]',
  "headers.authorization",
  "headers.cookie",
  "authorization",
  "cookie",
  "secretKey",
  "fundingKey",
  "token",
  "code",
  "code_verifier",
  "password",
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({ level, redact: { paths: REDACT_PATHS, censor: "[redacted]" } }, destination);
}
