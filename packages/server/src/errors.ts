/**
 * The one closed table of error codes, the one error class and the one error body shape.
 *
 * Reference codes come from the public API reference; the rest are Wattfare extensions (DESIGN.md
 * "Errors and limits"). The SDK keeps its own copy (it must not depend on the server at run time);
 * packages/sdk/src/core/errors.test.ts compares the two tables, so they cannot drift.
 */
import { H } from "./http/headers.js";

export const ERROR_CODES = {
  invalid_request: { status: 400, type: "invalid_request_error", reference: true },
  auth: { status: 401, type: "authentication_error", reference: true },
  not_connected: { status: 402, type: "payment_required", reference: true },
  budget_exceeded: { status: 402, type: "payment_required", reference: true },
  grant_invalid: { status: 402, type: "payment_required", reference: true },
  funding_invalid: { status: 402, type: "payment_required", reference: true },
  forbidden: { status: 403, type: "permission_error", reference: false },
  not_found: { status: 404, type: "not_found_error", reference: false },
  payload_too_large: { status: 413, type: "invalid_request_error", reference: false },
  rate_limited: { status: 429, type: "rate_limit_error", reference: true },
  internal: { status: 500, type: "api_error", reference: false },
  upstream: { status: 502, type: "api_error", reference: true },
  unavailable: { status: 503, type: "api_error", reference: false },
} as const satisfies Record<string, { status: number; type: string; reference: boolean }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export const DEFAULT_MESSAGES: Record<ErrorCode, string> = {
  invalid_request: "The request is malformed.",
  auth: "Missing or invalid credentials.",
  not_connected: "This user has not connected a budget.",
  budget_exceeded: "Spending cap reached for this period.",
  grant_invalid: "The grant token is unknown, expired, fully used, revoked or over its dollar cap.",
  funding_invalid: "The user's funding source was rejected upstream; reconnect needed.",
  forbidden: "This action is not allowed here.",
  not_found: "Not found.",
  payload_too_large: "The request body is too large.",
  rate_limited: "Too many requests; retry later.",
  internal: "Internal error.",
  upstream: "The model provider returned an error.",
  unavailable: "The service is temporarily unavailable.",
};

/**
 * The challenge every 401 `auth` carries (RFC 9110 §11.6.1: a 401 must send one): the secret key, the
 * session token and the metrics token are all `Authorization: Bearer` credentials. Payers' HTML pages,
 * signed in with a cookie and a form, never answer with an ApiError 401.
 */
export const BEARER_CHALLENGE = 'Bearer realm="wattfare"';

export interface ApiErrorOptions {
  /** Response headers to add (e.g. `retry-after`, `x-should-retry`). */
  headers?: Record<string, string>;
  /** OpenAI-style `param` naming the offending field. */
  param?: string;
  /** Internal cause, logged but never sent. */
  cause?: unknown;
}

/** An error that maps to one row of the table; the only error type routes throw on purpose. */
export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly param: string | undefined;

  constructor(code: ErrorCode, message: string = DEFAULT_MESSAGES[code], options: ApiErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ApiError";
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.param = options.param;
    // Object.assign, not a spread: properties added to a spread copy are slow on Node 20 (hot for 402/429).
    const headers: Record<string, string> = Object.assign({}, options.headers);
    if (this.status === 401) headers[H.wwwAuthenticate] ??= BEARER_CHALLENGE;
    // Stock OpenAI clients retry 5xx/429/408 twice; a 402 is never worth retrying (DESIGN.md).
    if (this.status === 402) headers[H.shouldRetry] = "false";
    // A 5xx that may follow a charge says `false` where it is raised (after the upstream may have
    // billed); every other one billed nothing — a 503 is only raised before any work starts — so it
    // says so explicitly: a client can then tell Wattfare's safe answers from a proxy's bare 502.
    if (this.status >= 500) headers[H.shouldRetry] ??= "true";
    this.headers = headers;
  }
}

/** 503 to a request that arrives, or is still arriving, while the server shuts down. */
export function restartingError(): ApiError {
  return new ApiError("unavailable", "Wattfare is restarting; retry shortly.", {
    headers: { connection: "close" },
  });
}

export interface ErrorBody {
  error: { code: ErrorCode; message: string; type: string; param?: string };
}

/** The one body shape: `{error:{code,message}}` plus `type`/`param` for OpenAI clients. */
export function errorBody(error: ApiError): ErrorBody {
  const body: ErrorBody = {
    error: { code: error.code, message: error.message, type: ERROR_CODES[error.code].type },
  };
  if (error.param !== undefined) body.error.param = error.param;
  return body;
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.hasOwn(ERROR_CODES, value);
}
