/**
 * The retry policy, pure so it can be tested without time: which failures are retried and how long to
 * wait. The HTTP layer applies it; nothing here sleeps or reads a clock.
 */

/** A `Retry-After` longer than this is not waited for: the error is thrown so the caller decides. */
export const MAX_RETRY_AFTER_MS = 60_000;
const INITIAL_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 8_000;
/** Each backoff is shortened by up to this fraction so clients that failed together spread out. */
const JITTER = 0.25;

/** What the retry decision needs to know about one failed attempt. */
export interface FailedAttempt {
  /** Whether sending the request twice is harmless (GET status, session minting; never chat). */
  idempotent: boolean;
  /** Retries still allowed. */
  retriesLeft: number;
  /** HTTP status, or undefined when no answer arrived (connection error or timeout). */
  status: number | undefined;
  /** The response's `x-should-retry` header, if any. */
  shouldRetryHeader: string | null;
}

/**
 * Only a 429 and a failure without any answer are worth retrying, and only for idempotent calls: a
 * 402 does not change by asking again, and a chat completion may already have been billed.
 */
export function isRetryable(attempt: FailedAttempt): boolean {
  if (!attempt.idempotent || attempt.retriesLeft <= 0) return false;
  if (attempt.status === undefined) return true;
  // Wattfare sends this on every 402 and on any 5xx that may follow billing (DESIGN.md).
  if (attempt.shouldRetryHeader === "false") return false;
  // A 503 marked safe to retry: sent before any work started (Wattfare restarting, say).
  if (attempt.status === 503) return attempt.shouldRetryHeader === "true";
  return attempt.status === 429;
}

/** `Retry-After` as milliseconds from `now`: delta-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function parseRetryAfterMs(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const trimmed = value.trim();
  // Fractional seconds too (some proxies send them, and openai-node reads them so).
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  // An HTTP date always names its month and weekday. Without a letter, V8's lenient Date.parse would
  // read "-1" or "2.5.1" as a date decades ago, that is: retry at once.
  if (!/[a-z]/i.test(trimmed)) return undefined;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/**
 * How long to wait before retry number `retry` (0-based). A server's `Retry-After` is honoured exactly
 * (the rate limiter computed when the window frees up); without one, exponential backoff with jitter.
 * Undefined means "do not retry": waiting longer than `MAX_RETRY_AFTER_MS` inside a request is worse
 * than letting the caller see the `RateLimitedError` and its `retryAfterMs`.
 */
export function retryDelayMs(
  retry: number,
  retryAfterMs: number | undefined,
  random: number,
): number | undefined {
  if (retryAfterMs !== undefined) return retryAfterMs <= MAX_RETRY_AFTER_MS ? retryAfterMs : undefined;
  const backoff = Math.min(INITIAL_BACKOFF_MS * 2 ** retry, MAX_BACKOFF_MS);
  return Math.round(backoff * (1 - JITTER * random));
}
