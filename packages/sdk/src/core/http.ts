/**
 * The one place requests are sent: authorization, timeouts, the caller's abort signal, error typing and
 * retries. Shared by both entries; the credential comes from a function so no object ever holds it in
 * a property that could be printed.
 */
import type { WithResponse } from "./api-promise.js";
import { ERROR_CODES, type ErrorCode } from "./error-codes.js";
import {
  APIConnectionError,
  APIConnectionTimeoutError,
  APIError,
  APIUserAbortError,
  errorFields,
  isWattfareError,
  type WattfareError,
} from "./errors.js";
import type { Logger } from "./logger.js";
import { isRetryable, parseRetryAfterMs, retryDelayMs } from "./retry.js";
import { Stream, type StreamControl } from "./stream.js";

/**
 * A `fetch`-compatible function.
 *
 * @example
 * ```ts
 * const fetchWithLogging: Fetch = (input, init) => {
 *   console.log("→", init?.method, String(input));
 *   return fetch(input, init);
 * };
 * ```
 */
export type Fetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/**
 * Waits `ms` milliseconds; rejects early when `signal` aborts.
 *
 * @example
 * ```ts
 * const instant: Sleep = async () => {}; // tests: retry without waiting
 * ```
 */
export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

/**
 * Options every method accepts as its last argument.
 *
 * @example
 * ```ts
 * await wattfare.status("user_123", { timeoutMs: 5_000, maxRetries: 0, signal: AbortSignal.timeout(8_000) });
 * ```
 */
export interface RequestOptions {
  /** Aborts the request (and a stream's reading); rejects with `APIUserAbortError`. */
  signal?: AbortSignal | undefined;
  /** Overrides the client's `timeoutMs` for this call, in milliseconds. */
  timeoutMs?: number | undefined;
  /** Overrides the client's `maxRetries` for this call (ignored by calls that are never retried). */
  maxRetries?: number | undefined;
}

/** @internal */
export interface HttpConfig {
  /** Wattfare's API root, e.g. `https://wattfare.com/api/v1`. */
  apiUrl: string;
  fetch: Fetch;
  timeoutMs: number;
  maxRetries: number;
  logger: Logger;
  sleep: Sleep;
  /** A number in [0, 1) for backoff jitter. */
  random: () => number;
  /** The `Authorization` header value, unless a request brings its own. */
  authorization?: (() => string) | undefined;
}

/** Timers take at most 2^31 − 1 ms; Node and browsers turn anything longer into 1 ms. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** A `timeoutMs` option checked: a positive number of ms that a timer can hold (≈ 24.8 days at most). */
export function timeoutOption(value: number | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isFinite(value) || value <= 0 || value > MAX_TIMEOUT_MS) {
    throw new TypeError(`timeoutMs must be a positive number of ms, at most ${MAX_TIMEOUT_MS}.`);
  }
  return value;
}

/** A `maxRetries` option checked: a non-negative integer. */
export function retriesOption(value: number | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || value < 0)
    throw new TypeError("maxRetries must be a non-negative integer.");
  return value;
}

/** @internal */
export interface RequestSpec extends RequestOptions {
  method: "GET" | "POST" | "DELETE";
  /** Below the API root, e.g. `/sessions`. */
  path: string;
  query?: Record<string, string>;
  body?: unknown;
  headers?: Record<string, string>;
  /** Whether sending it twice is harmless; only such requests are ever retried. */
  idempotent: boolean;
  /** This request's `Authorization` header (the browser's session token), instead of the client's. */
  authorization?: string | undefined;
}

/**
 * A Sleep that resolves after a timer, or rejects at once when the signal aborts.
 *
 * @example
 * ```ts
 * await timerSleep(250);
 * ```
 */
export const timerSleep: Sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new APIUserAbortError());
    const onAbort = () => {
      clearTimeout(timer);
      reject(new APIUserAbortError());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });

/** @internal */
export class HttpClient {
  readonly #config: HttpConfig;

  constructor(config: HttpConfig) {
    this.#config = config;
  }

  /** Sends the request and parses a JSON body. The timeout covers the whole body. */
  json<T>(spec: RequestSpec): Promise<WithResponse<T>> {
    return this.#send(spec, "application/json", async (response, attempt) => {
      let text: string;
      try {
        text = await response.text();
      } finally {
        attempt.release();
      }
      let data: unknown;
      try {
        data = JSON.parse(text);
      } catch {
        throw new APIConnectionError({
          message: `Wattfare answered ${response.status} with a body that is not JSON; is baseUrl Wattfare's origin?`,
        });
      }
      // A 200 whose body is an error envelope: the status went out before the failure was known (a
      // slow chat's headers and blank lines are passed on at once, as OpenRouter sends them, and then
      // the provider broke off). It is an error, not data of the endpoint's shape.
      if (isErrorEnvelope(data)) {
        // Typed by its code's status in the table (502 for `upstream`); any other code is the provider's.
        const { code } = errorFields(data);
        const status =
          code !== undefined && Object.hasOwn(ERROR_CODES, code)
            ? ERROR_CODES[code as ErrorCode].status
            : 502;
        throw APIError.generate(status, data, response.headers);
      }
      // The body is Wattfare's documented shape for this endpoint; the SDK does not re-validate it.
      return { data: data as T, response, requestId: requestIdOf(response) };
    });
  }

  /** Sends the request and discards the body (a `204 No Content`, say). */
  empty(spec: RequestSpec): Promise<WithResponse<undefined>> {
    return this.#send(spec, "application/json", async (response, attempt) => {
      try {
        await response.arrayBuffer();
      } finally {
        attempt.release();
      }
      return { data: undefined, response, requestId: requestIdOf(response) };
    });
  }

  /** Sends the request and returns a Stream over its SSE body. The timeout covers the headers only. */
  stream<T>(spec: RequestSpec): Promise<WithResponse<Stream<T>>> {
    return this.#send(spec, "text/event-stream", async (response, attempt) => {
      attempt.stopTimer();
      return { data: new Stream<T>(response, attempt), response, requestId: requestIdOf(response) };
    });
  }

  async #send<R>(
    spec: RequestSpec,
    accept: string,
    onSuccess: (response: Response, attempt: Attempt) => Promise<R>,
  ): Promise<R> {
    const { logger } = this.#config;
    const maxRetries = retriesOption(spec.maxRetries) ?? this.#config.maxRetries;
    const timeoutMs = timeoutOption(spec.timeoutMs) ?? this.#config.timeoutMs;
    const url = new URL(this.#config.apiUrl + spec.path);
    for (const [key, value] of Object.entries(spec.query ?? {})) url.searchParams.set(key, value);
    // Built before the loop: a header value fetch cannot send (say, a newline in a user id) is a
    // TypeError in the caller's code, not a network error to retry.
    const headers = new Headers(spec.headers);
    const authorization = spec.authorization ?? this.#config.authorization?.();
    if (authorization !== undefined) headers.set("authorization", authorization);
    headers.set("accept", accept);
    let body: string | undefined;
    if (spec.body !== undefined) {
      headers.set("content-type", "application/json");
      body = JSON.stringify(spec.body);
    }
    const where = { method: spec.method, path: spec.path };

    for (let retry = 0; ; retry++) {
      if (spec.signal?.aborted) throw new APIUserAbortError();
      const attempt = new Attempt(spec.signal, timeoutMs);
      const started = Date.now();
      let failure: WattfareError;
      let status: number | undefined;
      let shouldRetryHeader: string | null = null;
      let retryAfterMs: number | undefined;
      logger.debug("request", { ...where, attempt: retry + 1 });
      try {
        const init: RequestInit = { method: spec.method, headers, signal: attempt.signal };
        if (body !== undefined) init.body = body;
        const response = await this.#config.fetch(url, init);
        logger.debug("response", {
          ...where,
          status: response.status,
          requestId: requestIdOf(response),
          ms: Date.now() - started,
        });
        if (response.ok) return await onSuccess(response, attempt);
        const error = APIError.generate(
          response.status,
          await readJsonOrUndefined(response),
          response.headers,
        );
        attempt.release();
        failure = error;
        status = response.status;
        shouldRetryHeader = response.headers.get("x-should-retry");
        retryAfterMs = parseRetryAfterMs(response.headers.get("retry-after"), Date.now());
      } catch (error) {
        attempt.release();
        if (spec.signal?.aborted) throw new APIUserAbortError();
        if (isWattfareError(error)) throw error;
        failure = attempt.timedOut
          ? new APIConnectionTimeoutError()
          : new APIConnectionError({ message: "Could not reach Wattfare.", cause: error });
      }

      const retryable = isRetryable({
        idempotent: spec.idempotent,
        retriesLeft: maxRetries - retry,
        status,
        shouldRetryHeader,
      });
      const delayMs = retryable ? retryDelayMs(retry, retryAfterMs, this.#config.random()) : undefined;
      if (delayMs === undefined) throw failure;
      logger.info("retrying", { ...where, retry: retry + 1, delayMs, after: failure.code });
      try {
        await this.#config.sleep(delayMs, spec.signal);
      } catch (error) {
        if (spec.signal?.aborted) throw new APIUserAbortError();
        throw error;
      }
    }
  }
}

/** A top-level `{error:{…}}` body: no endpoint's success shape has one. */
function isErrorEnvelope(body: unknown): boolean {
  if (typeof body !== "object" || body === null) return false;
  const error = (body as { error?: unknown }).error;
  return typeof error === "object" && error !== null;
}

function requestIdOf(response: Response): string | undefined {
  return response.headers.get("x-request-id") ?? undefined;
}

async function readJsonOrUndefined(response: Response): Promise<unknown> {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    return undefined; // a proxy's HTML page: the error is typed by status alone
  }
}

/** One try: its own AbortController, fed by the caller's signal and by the timeout. */
class Attempt implements StreamControl {
  readonly #controller = new AbortController();
  readonly #userSignal: AbortSignal | undefined;
  readonly #timer: ReturnType<typeof setTimeout>;
  readonly #onUserAbort = (): void => this.#controller.abort();
  timedOut = false;

  constructor(userSignal: AbortSignal | undefined, timeoutMs: number) {
    this.#userSignal = userSignal;
    userSignal?.addEventListener("abort", this.#onUserAbort, { once: true });
    this.#timer = setTimeout(() => {
      this.timedOut = true;
      this.#controller.abort();
    }, timeoutMs);
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  get aborted(): boolean {
    return this.#controller.signal.aborted;
  }

  get userAborted(): boolean {
    return this.#userSignal?.aborted === true;
  }

  abort(): void {
    this.#controller.abort();
    this.release(); // a stream aborted and never read again must not keep the caller's signal listened to
  }

  stopTimer(): void {
    clearTimeout(this.#timer);
  }

  release(): void {
    clearTimeout(this.#timer);
    this.#userSignal?.removeEventListener("abort", this.#onUserAbort);
  }
}
