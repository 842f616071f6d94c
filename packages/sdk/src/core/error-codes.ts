/**
 * Wattfare's error codes: the table of codes Wattfare answers with and their HTTP statuses, and the
 * types of every code a `WattfareError` can carry (the table's, the client-side ones, the consent
 * popup's, and `"unknown"`). The error classes are in errors.ts.
 */

/**
 * Every error code Wattfare answers with, and its HTTP status: the API reference's codes plus
 * Wattfare's extensions (403, 404, 413, 500, 503). This is the SDK's own copy so the SDK has no runtime
 * dependency on the server; `errors.test.ts` compares it with the server's table, so they cannot drift.
 *
 * @example
 * ```ts
 * import { ERROR_CODES } from "@wattfare/sdk/server";
 * ERROR_CODES.budget_exceeded.status; // 402
 * ```
 */
export const ERROR_CODES = {
  invalid_request: { status: 400 },
  auth: { status: 401 },
  not_connected: { status: 402 },
  budget_exceeded: { status: 402 },
  grant_invalid: { status: 402 },
  funding_invalid: { status: 402 },
  forbidden: { status: 403 },
  not_found: { status: 404 },
  payload_too_large: { status: 413 },
  rate_limited: { status: 429 },
  internal: { status: 500 },
  upstream: { status: 502 },
  unavailable: { status: 503 },
} as const satisfies Record<string, { status: number }>;

/**
 * A code from Wattfare's error table (the `error.code` of an error body).
 *
 * @example
 * ```ts
 * const code: ErrorCode = "budget_exceeded";
 * ```
 */
export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * `code` of an `APIError` whose body carried no code this SDK knows (for example an HTML 504 from a
 * load balancer in front of Wattfare).
 */
export type UnknownCode = "unknown";

/**
 * Codes of failures where Wattfare never answered: the connection failed, the timeout fired, or the
 * caller aborted.
 *
 * @example
 * ```ts
 * const code: ClientErrorCode = "timeout";
 * ```
 */
export type ClientErrorCode = "connection_error" | "timeout" | "aborted";

/**
 * Every `code` a `WattfareError` can carry; switch on it to handle errors without `instanceof` (which
 * fails when two copies of the SDK are bundled).
 *
 * @example
 * ```ts
 * function explain(code: WattfareErrorCode): string {
 *   return code === "budget_exceeded" ? "Your monthly AI budget is used up." : "Something went wrong.";
 * }
 * ```
 */
export type WattfareErrorCode = ErrorCode | ClientErrorCode | ConsentErrorCode | UnknownCode;

/**
 * Codes of the consent popup's outcomes in the browser SDK: the browser blocked the popup, the payer
 * closed it, said no, or Wattfare reported a failure.
 *
 * @example
 * ```ts
 * const code: ConsentErrorCode = "consent_denied";
 * ```
 */
export type ConsentErrorCode = "popup_blocked" | "popup_closed" | "consent_denied" | "consent_failed";
