/**
 * The SDK's error classes, shaped after openai-node: one root (`WattfareError`), `APIError` for every
 * answer Wattfare sent, one subclass per code in Wattfare's table, and three client-side failures that
 * never got an answer. `APIError.generate()` is the one place a response becomes a class. The codes
 * they carry are in error-codes.ts.
 */
import { ERROR_CODES, type ErrorCode, type UnknownCode, type WattfareErrorCode } from "./error-codes.js";
import { parseRetryAfterMs } from "./retry.js";

/**
 * Brands every WattfareError through the global symbol registry: `instanceof` fails across two copies
 * of the SDK in one process (two bundles, or a duplicated dependency), a registered symbol does not.
 */
const BRAND: unique symbol = Symbol.for("wattfare.sdk.error") as never;

/**
 * The root of every error this SDK throws on purpose.
 *
 * @example
 * ```ts
 * import { WattfareError } from "@wattfare/sdk/server";
 * try {
 *   await wattfare.status("user_123");
 * } catch (error) {
 *   if (error instanceof WattfareError) console.warn(error.code, error.message);
 * }
 * ```
 */
export class WattfareError extends Error {
  /** Wattfare's error code, or a client-side code when no answer arrived. */
  readonly code: WattfareErrorCode;

  constructor(code: WattfareErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }

  static {
    // On the prototype, not the instance: non-enumerable, so JSON and util.inspect stay clean.
    Object.defineProperty(WattfareError.prototype, BRAND, { value: true });
    named(WattfareError, "WattfareError");
  }
}

/** Sets `name` on the prototype, which survives minifiers that rename classes. */
function named(errorClass: abstract new (...args: never[]) => Error, name: string): void {
  Object.defineProperty(errorClass.prototype, "name", { value: name, writable: true, configurable: true });
}

/**
 * What an `APIError` is built from: one response. Handy for faking Wattfare's errors in your own tests.
 *
 * @example
 * ```ts
 * const error = new BudgetExceededError({ status: 402, message: "Spending cap reached.", headers: new Headers() });
 * ```
 */
export interface APIErrorInit {
  /** The HTTP status Wattfare answered with. */
  status: number;
  /** Human-readable, from the body's `error.message`; never contains credentials. */
  message: string;
  /** The response headers. */
  headers: Headers;
  /** The body's OpenAI-style `error.type`, when present. */
  type?: string | undefined;
  /** The body's `error.param`: the offending field or header, when Wattfare named one. */
  param?: string | undefined;
}

/**
 * Wattfare answered with an error. `code` says which row of Wattfare's error table; catch a subclass
 * (such as `BudgetExceededError`) or switch on `code`.
 *
 * @example
 * ```ts
 * import { APIError } from "@wattfare/sdk/server";
 * try {
 *   await wattfare.sessions.create({ appUserId: "user_123" });
 * } catch (error) {
 *   if (error instanceof APIError) console.error(error.status, error.code, error.requestId);
 * }
 * ```
 */
export class APIError<Code extends ErrorCode | UnknownCode = ErrorCode | UnknownCode> extends WattfareError {
  declare readonly code: Code;
  /**
   * The HTTP status. For an error event inside a stream (whose HTTP status was already 200) it is the
   * status of the event's code in the table: 502 for `upstream`.
   */
  readonly status: number;
  /** The response headers (`x-request-id`, `retry-after`, `x-should-retry`, …). */
  readonly headers: Headers;
  /** Wattfare's `x-request-id`: quote it when asking for support. */
  readonly requestId: string | undefined;
  /** OpenAI-style error type from the body, when present. */
  readonly type: string | undefined;
  /** The offending field or header, when Wattfare named one. */
  readonly param: string | undefined;

  constructor(code: Code, init: APIErrorInit) {
    super(code, init.message);
    this.status = init.status;
    this.headers = init.headers;
    this.requestId = init.headers.get("x-request-id") ?? undefined;
    this.type = init.type;
    this.param = init.param;
  }

  /**
   * Builds the error class for one error response: by the body's `code` when it is one of Wattfare's,
   * otherwise by the status when exactly one code has it, otherwise a plain `APIError` with code
   * `"unknown"`.
   *
   * @example
   * ```ts
   * const error = APIError.generate(402, { error: { code: "not_connected", message: "…" } }, new Headers());
   * error instanceof NotConnectedError; // true
   * ```
   */
  static generate(status: number, body: unknown, headers: Headers): APIError {
    const fields = errorFields(body);
    const init: APIErrorInit = {
      status,
      headers,
      message: fields.message ?? `Wattfare answered ${status} without an error message.`,
      type: fields.type,
      param: fields.param,
    };
    const code = isErrorCode(fields.code) ? fields.code : CODE_BY_UNIQUE_STATUS.get(status);
    return code === undefined ? new APIError("unknown", init) : new ERROR_CLASSES[code](init);
  }

  static {
    named(APIError, "APIError");
  }
}

/**
 * 400 `invalid_request`: a malformed body, parameter or header; `param` names it when known.
 *
 * @example
 * ```ts
 * if (error instanceof InvalidRequestError) console.error(error.param, error.message);
 * ```
 */
export class InvalidRequestError extends APIError<"invalid_request"> {
  constructor(init: APIErrorInit) {
    super("invalid_request", init);
  }
  static {
    named(InvalidRequestError, "InvalidRequestError");
  }
}

/**
 * 401 `auth`: the secret key is missing, wrong, or rotated out.
 *
 * @example
 * ```ts
 * if (error instanceof AuthError) console.error("Check WATTFARE_SECRET_KEY");
 * ```
 */
export class AuthError extends APIError<"auth"> {
  constructor(init: APIErrorInit) {
    super("auth", init);
  }
  static {
    named(AuthError, "AuthError");
  }
}

/**
 * 402 `not_connected`: this user has not connected a budget to your app yet; open the consent popup
 * from the browser SDK.
 *
 * @example
 * ```ts
 * if (error instanceof NotConnectedError) return Response.json({ needsConnect: true }, { status: 402 });
 * ```
 */
export class NotConnectedError extends APIError<"not_connected"> {
  constructor(init: APIErrorInit) {
    super("not_connected", init);
  }
  static {
    named(NotConnectedError, "NotConnectedError");
  }
}

/**
 * 402 `budget_exceeded`: the user's monthly cap is reached (or too little is left for a useful answer),
 * or the payer paused all spending. Retrying will not help until the cap is raised or the month ends.
 *
 * @example
 * ```ts
 * if (error instanceof BudgetExceededError) return Response.json({ needsBudget: true }, { status: 402 });
 * ```
 */
export class BudgetExceededError extends APIError<"budget_exceeded"> {
  constructor(init: APIErrorInit) {
    super("budget_exceeded", init);
  }
  static {
    named(BudgetExceededError, "BudgetExceededError");
  }
}

/**
 * 402 `grant_invalid`: a one-time grant is unknown, expired, used up, revoked or over its cap.
 *
 * @example
 * ```ts
 * if (error instanceof GrantInvalidError) console.warn("Ask the user for a new grant");
 * ```
 */
export class GrantInvalidError extends APIError<"grant_invalid"> {
  constructor(init: APIErrorInit) {
    super("grant_invalid", init);
  }
  static {
    named(GrantInvalidError, "GrantInvalidError");
  }
}

/**
 * 402 `funding_invalid`: the payer's funding source was rejected upstream (out of credits, over its
 * key limit, or revoked); the payer needs to fix or reconnect it.
 *
 * @example
 * ```ts
 * if (error instanceof FundingInvalidError) return Response.json({ reconnectFunding: true }, { status: 402 });
 * ```
 */
export class FundingInvalidError extends APIError<"funding_invalid"> {
  constructor(init: APIErrorInit) {
    super("funding_invalid", init);
  }
  static {
    named(FundingInvalidError, "FundingInvalidError");
  }
}

/**
 * 403 `forbidden`: the action is not allowed here.
 *
 * @example
 * ```ts
 * if (error instanceof ForbiddenError) console.error(error.message);
 * ```
 */
export class ForbiddenError extends APIError<"forbidden"> {
  constructor(init: APIErrorInit) {
    super("forbidden", init);
  }
  static {
    named(ForbiddenError, "ForbiddenError");
  }
}

/**
 * 404 `not_found`: no such route or resource (often a wrong `baseUrl`).
 *
 * @example
 * ```ts
 * if (error instanceof NotFoundError) console.error("Is WATTFARE_BASE_URL Wattfare's origin?");
 * ```
 */
export class NotFoundError extends APIError<"not_found"> {
  constructor(init: APIErrorInit) {
    super("not_found", init);
  }
  static {
    named(NotFoundError, "NotFoundError");
  }
}

/**
 * 413 `payload_too_large`: the request body is larger than the endpoint accepts.
 *
 * @example
 * ```ts
 * if (error instanceof PayloadTooLargeError) console.error("Send fewer or smaller images");
 * ```
 */
export class PayloadTooLargeError extends APIError<"payload_too_large"> {
  constructor(init: APIErrorInit) {
    super("payload_too_large", init);
  }
  static {
    named(PayloadTooLargeError, "PayloadTooLargeError");
  }
}

/**
 * 429 `rate_limited`: too many requests (per app for sessions, per app user for chat). `retryAfterMs`
 * says when the next one will be accepted.
 *
 * @example
 * ```ts
 * if (error instanceof RateLimitedError) console.warn(`retry in ${error.retryAfterMs} ms`);
 * ```
 */
export class RateLimitedError extends APIError<"rate_limited"> {
  /** Milliseconds until a retry will be accepted, from `Retry-After`; undefined without one. */
  readonly retryAfterMs: number | undefined;

  constructor(init: APIErrorInit) {
    super("rate_limited", init);
    this.retryAfterMs = parseRetryAfterMs(init.headers.get("retry-after"), Date.now());
  }
  static {
    named(RateLimitedError, "RateLimitedError");
  }
}

/**
 * 500 `internal`: Wattfare failed; the message never carries internals, quote `requestId` to support.
 *
 * @example
 * ```ts
 * if (error instanceof InternalError) console.error("Wattfare failed", error.requestId);
 * ```
 */
export class InternalError extends APIError<"internal"> {
  constructor(init: APIErrorInit) {
    super("internal", init);
  }
  static {
    named(InternalError, "InternalError");
  }
}

/**
 * 502 `upstream`: the model provider failed or could not be reached. Also thrown from a stream's
 * iterator when an error event arrives mid-stream. When the response carries `x-should-retry: false`
 * the provider may already have billed, so retrying could bill twice.
 *
 * @example
 * ```ts
 * if (error instanceof UpstreamError) console.warn("The model provider failed:", error.message);
 * ```
 */
export class UpstreamError extends APIError<"upstream"> {
  constructor(init: APIErrorInit) {
    super("upstream", init);
  }
  static {
    named(UpstreamError, "UpstreamError");
  }
}

/**
 * 503 `unavailable`: Wattfare is temporarily unable to serve (for example its price catalogue is
 * unreachable, or it is shutting down).
 *
 * @example
 * ```ts
 * if (error instanceof UnavailableError) console.warn("Wattfare is unavailable; try again shortly");
 * ```
 */
export class UnavailableError extends APIError<"unavailable"> {
  constructor(init: APIErrorInit) {
    super("unavailable", init);
  }
  static {
    named(UnavailableError, "UnavailableError");
  }
}

/**
 * Wattfare could not be reached, or the connection broke before a complete answer arrived.
 *
 * @example
 * ```ts
 * if (error instanceof APIConnectionError) console.warn("Network trouble:", error.cause);
 * ```
 */
export class APIConnectionError extends WattfareError {
  declare readonly code: "connection_error" | "timeout";

  constructor(options: { message?: string; cause?: unknown } = {}) {
    super("connection_error", options.message ?? "Could not reach Wattfare.", options);
  }
  static {
    named(APIConnectionError, "APIConnectionError");
  }
}

/**
 * No answer arrived within `timeoutMs`.
 *
 * @example
 * ```ts
 * if (error instanceof APIConnectionTimeoutError) console.warn("Wattfare took too long");
 * ```
 */
export class APIConnectionTimeoutError extends APIConnectionError {
  // A field initialiser runs after super(), so it replaces the parent's "connection_error".
  override readonly code = "timeout" as const;

  constructor(options: { message?: string } = {}) {
    super({ message: options.message ?? "Wattfare did not answer in time." });
  }
  static {
    named(APIConnectionTimeoutError, "APIConnectionTimeoutError");
  }
}

/**
 * The caller's `AbortSignal` fired.
 *
 * @example
 * ```ts
 * const controller = new AbortController();
 * const pending = wattfare.status("user_123", { signal: controller.signal });
 * controller.abort();
 * await pending.catch((error) => error instanceof APIUserAbortError); // true
 * ```
 */
export class APIUserAbortError extends WattfareError {
  declare readonly code: "aborted";

  constructor(options: { message?: string } = {}) {
    super("aborted", options.message ?? "The request was aborted.");
  }
  static {
    named(APIUserAbortError, "APIUserAbortError");
  }
}

/**
 * The browser blocked the consent popup: `window.open` returned null. Call `connect()`, `recover()` or
 * `requestGrant()` directly inside a click handler, before any `await`.
 *
 * @example
 * ```ts
 * button.onclick = () =>
 *   wattfare.connect({ monthlyUsd: 5 }).catch((error) => {
 *     if (error instanceof PopupBlockedError) showHint("Allow popups for this site, then try again.");
 *   });
 * ```
 */
export class PopupBlockedError extends WattfareError {
  declare readonly code: "popup_blocked";

  constructor(options: { message?: string } = {}) {
    super(
      "popup_blocked",
      options.message ?? "The browser blocked Wattfare's window; allow popups and try again.",
    );
  }
  static {
    named(PopupBlockedError, "PopupBlockedError");
  }
}

/**
 * The consent popup closed before the payer answered, and Wattfare shows nothing approved.
 *
 * @example
 * ```ts
 * if (isWattfareError(error, "popup_closed")) return; // the user changed their mind; nothing to report
 * ```
 */
export class PopupClosedError extends WattfareError {
  declare readonly code: "popup_closed";

  constructor(options: { message?: string } = {}) {
    super("popup_closed", options.message ?? "Wattfare's window was closed before the request was answered.");
  }
  static {
    named(PopupClosedError, "PopupClosedError");
  }
}

/**
 * The payer pressed "Deny" in the consent popup.
 *
 * @example
 * ```ts
 * if (error instanceof ConsentDeniedError) showMessage("No budget was connected.");
 * ```
 */
export class ConsentDeniedError extends WattfareError {
  declare readonly code: "consent_denied";

  constructor(options: { message?: string } = {}) {
    super("consent_denied", options.message ?? "The payer declined the request.");
  }
  static {
    named(ConsentDeniedError, "ConsentDeniedError");
  }
}

/**
 * The consent popup reported an error (the request expired, or could not be verified), or it said
 * "approved" but Wattfare does not confirm it, or — `recover()` — the approval left the problem in
 * place (spending still paused, funding still out of credits). The message is written for the user.
 *
 * @example
 * ```ts
 * if (error instanceof ConsentFailedError) showMessage(error.message);
 * ```
 */
export class ConsentFailedError extends WattfareError {
  declare readonly code: "consent_failed";

  constructor(options: { message?: string } = {}) {
    super("consent_failed", options.message ?? "Wattfare could not complete the request.");
  }
  static {
    named(ConsentFailedError, "ConsentFailedError");
  }
}

/** The one code → class table `generate()` uses; typed so a missing code fails the build. */
const ERROR_CLASSES: { readonly [C in ErrorCode]: new (init: APIErrorInit) => APIError<C> } = {
  invalid_request: InvalidRequestError,
  auth: AuthError,
  not_connected: NotConnectedError,
  budget_exceeded: BudgetExceededError,
  grant_invalid: GrantInvalidError,
  funding_invalid: FundingInvalidError,
  forbidden: ForbiddenError,
  not_found: NotFoundError,
  payload_too_large: PayloadTooLargeError,
  rate_limited: RateLimitedError,
  internal: InternalError,
  upstream: UpstreamError,
  unavailable: UnavailableError,
};

/** For bodies without a known code (proxies, load balancers): statuses that name exactly one code. */
const CODE_BY_UNIQUE_STATUS: ReadonlyMap<number, ErrorCode> = (() => {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const [code, { status }] of Object.entries(ERROR_CODES) as [ErrorCode, { status: number }][]) {
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const unique = new Map<number, ErrorCode>();
  for (const [status, codes] of byStatus) if (codes.length === 1 && codes[0]) unique.set(status, codes[0]);
  return unique;
})();

/**
 * The error class for each code, for narrowing with `isWattfareError(error, code)`.
 *
 * @example
 * ```ts
 * type E = ErrorForCode["rate_limited"]; // RateLimitedError
 * ```
 */
export interface ErrorForCode {
  invalid_request: InvalidRequestError;
  auth: AuthError;
  not_connected: NotConnectedError;
  budget_exceeded: BudgetExceededError;
  grant_invalid: GrantInvalidError;
  funding_invalid: FundingInvalidError;
  forbidden: ForbiddenError;
  not_found: NotFoundError;
  payload_too_large: PayloadTooLargeError;
  rate_limited: RateLimitedError;
  internal: InternalError;
  upstream: UpstreamError;
  unavailable: UnavailableError;
  unknown: APIError<"unknown">;
  connection_error: APIConnectionError;
  timeout: APIConnectionTimeoutError;
  aborted: APIUserAbortError;
  popup_blocked: PopupBlockedError;
  popup_closed: PopupClosedError;
  consent_denied: ConsentDeniedError;
  consent_failed: ConsentFailedError;
}

/**
 * True for any error thrown by any copy of this SDK; with a `code`, also narrows to that code's class.
 * Prefer it to `instanceof` in libraries and apps that may bundle the SDK twice.
 *
 * @example
 * ```ts
 * import { isWattfareError } from "@wattfare/sdk/server";
 * try {
 *   await wattfare.chat.completions.create(params, { user: "user_123" });
 * } catch (error) {
 *   if (isWattfareError(error, "rate_limited")) console.warn(error.retryAfterMs);
 *   else if (isWattfareError(error)) console.error(error.code);
 *   else throw error;
 * }
 * ```
 */
export function isWattfareError(value: unknown): value is WattfareError;
export function isWattfareError<C extends WattfareErrorCode>(
  value: unknown,
  code: C,
): value is ErrorForCode[C];
export function isWattfareError(value: unknown, code?: WattfareErrorCode): boolean {
  if (typeof value !== "object" || value === null) return false;
  if ((value as { [BRAND]?: unknown })[BRAND] !== true) return false;
  return code === undefined || (value as { code?: unknown }).code === code;
}

function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.hasOwn(ERROR_CODES, value);
}

/** The string fields of `{error:{code,message,type,param}}`, tolerating any other body. */
export function errorFields(body: unknown): {
  code: string | undefined;
  message: string | undefined;
  type: string | undefined;
  param: string | undefined;
} {
  const error = typeof body === "object" && body !== null ? (body as { error?: unknown }).error : undefined;
  const get = (key: string): string | undefined => {
    if (typeof error !== "object" || error === null) return undefined;
    const value = (error as Record<string, unknown>)[key];
    return typeof value === "string" ? value : undefined;
  };
  return { code: get("code"), message: get("message"), type: get("type"), param: get("param") };
}
