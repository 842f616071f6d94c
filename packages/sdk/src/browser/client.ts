/**
 * The browser client: the signed-in user's connection (`/api/v1/connections`, bearer session token),
 * the consent popup for connecting, raising the cap, reconnecting funding and one-time grants, and
 * recovery from the 402s the app's backend relays. It never holds the secret key. Its options are in
 * client-options.ts, what recover() can fix in recovery.ts.
 */
import { API_PATH, parseWattfareOrigin } from "../core/base-url.js";
import { APIUserAbortError, ConsentFailedError, isWattfareError, NotFoundError } from "../core/errors.js";
import { HttpClient, type RequestSpec, retriesOption, timeoutOption, timerSleep } from "../core/http.js";
import { consoleWarnings } from "../core/logger.js";
import type { ConnectionStatus } from "../core/types.js";
import type { BrowserClientOptions, ConsentOptions, GrantRequestOptions } from "./client-options.js";
import {
  type ApprovedResult,
  type ConsentIntent,
  type ConsentSession,
  cancelActiveConsent,
  openReplacingActiveConsent,
  runConsent,
  trackActiveConsent,
} from "./consent-popup.js";
import { RECOVERABLE_CODES, type Recovery, recoverableCode, stillBroken, suggestRaise } from "./recovery.js";
import { type SessionTokenSource, SessionTokens } from "./session-tokens.js";

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_RETRIES = 2;
const DEFAULT_POLL_INTERVAL_MS = 1_000;
/** Wattfare's popup consent session lasts 30 minutes; after that nothing can be approved. */
const DEFAULT_LOST_LINK_TIMEOUT_MS = 30 * 60_000;

/**
 * Events the client emits.
 *
 * @example
 * ```ts
 * const listener: (status: BrowserClientEvents["status"]) => void = (status) => render(status);
 * ```
 */
export interface BrowserClientEvents {
  /** The user's connection status changed (after `status()`, `connect()`, `recover()`, `lowerCap()`, `disconnect()`). */
  status: ConnectionStatus;
}

/**
 * Creates the browser client. It holds no secret: your backend hands it short-lived session tokens.
 *
 * @example
 * ```ts
 * import { createWattfare, sessionEndpoint } from "@wattfare/sdk/browser";
 *
 * const wattfare = createWattfare({
 *   baseUrl: "https://wattfare.com",
 *   getSessionToken: sessionEndpoint("/api/wattfare/session"),
 * });
 * connectButton.onclick = async () => {
 *   const status = await wattfare.connect({ monthlyUsd: 5 });
 *   console.log(`$${status.remainingUsd} left this month`);
 * };
 * ```
 */
export function createWattfare(options: BrowserClientOptions): WattfareBrowser {
  return new WattfareBrowser(options);
}

/**
 * The browser client; create it with `createWattfare()`.
 *
 * @example
 * ```ts
 * const wattfare: WattfareBrowser = createWattfare({ baseUrl, getSessionToken });
 * wattfare.on("status", (status) => render(status));
 * await wattfare.status();
 * ```
 */
export class WattfareBrowser {
  /** Wattfare's base URL (no trailing slash). */
  readonly baseUrl: string;
  /** Wattfare's origin: the only origin whose popup messages are accepted. */
  readonly origin: string;
  readonly #http: HttpClient;
  readonly #tokens: SessionTokens | undefined;
  readonly #grantSession: SessionTokenSource | undefined;
  readonly #pollIntervalMs: number;
  readonly #lostLinkTimeoutMs: number;
  readonly #listeners = new Set<(status: ConnectionStatus) => void>();
  #last: string | undefined;

  /** @internal Use `createWattfare()`. */
  constructor(options: BrowserClientOptions) {
    const url = parseWattfareOrigin(options.baseUrl);
    this.baseUrl = url.origin;
    this.origin = url.origin;
    if (options.getSessionToken === undefined && options.getGrantSessionToken === undefined) {
      throw new TypeError("createWattfare needs getSessionToken (or getGrantSessionToken for grants).");
    }
    this.#tokens =
      options.getSessionToken === undefined ? undefined : new SessionTokens(options.getSessionToken);
    this.#grantSession = options.getGrantSessionToken;
    this.#pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
    this.#lostLinkTimeoutMs = options.lostLinkTimeoutMs ?? DEFAULT_LOST_LINK_TIMEOUT_MS;
    this.#http = new HttpClient({
      apiUrl: this.baseUrl + API_PATH,
      fetch: options.fetch ?? ((input, init) => fetch(input, init)),
      timeoutMs: timeoutOption(options.timeoutMs) ?? DEFAULT_TIMEOUT_MS,
      maxRetries: retriesOption(options.maxRetries) ?? DEFAULT_MAX_RETRIES,
      logger: options.logger ?? consoleWarnings,
      sleep: timerSleep,
      random: Math.random,
    });
  }

  /**
   * The signed-in user's connection to your app, from Wattfare (`GET /api/v1/connections`).
   *
   * @example
   * ```ts
   * const status = await wattfare.status();
   * budget.textContent = status.connected ? `$${status.remainingUsd} left` : "Not connected";
   * ```
   */
  status(options: { signal?: AbortSignal | undefined } = {}): Promise<ConnectionStatus> {
    return this.#fetchStatus(options.signal);
  }

  /**
   * Forgets this client's session token (and the last status it reported), and cancels a consent popup
   * it opened that is still open. Call it when the user signs out or another user signs in without a page
   * load: otherwise the cached token — valid for minutes — would still speak for the previous user.
   *
   * @example
   * ```ts
   * signOutButton.onclick = async () => {
   *   await fetch("/logout", { method: "POST" });
   *   wattfare.clearSession();
   * };
   * ```
   */
  clearSession(): void {
    this.#tokens?.clear();
    this.#last = undefined;
    cancelActiveConsent("The session was cleared: the user signed out.", this);
  }

  /**
   * Revokes the user's connection (`DELETE /api/v1/connections`) and resolves with the new status.
   *
   * @example
   * ```ts
   * disconnectButton.onclick = () => wattfare.disconnect();
   * ```
   */
  async disconnect(options: { signal?: AbortSignal | undefined } = {}): Promise<ConnectionStatus> {
    await this.#authed(
      (authorization) =>
        this.#http.empty({
          method: "DELETE",
          path: "/connections",
          authorization,
          signal: options.signal,
          idempotent: true,
        }),
      options.signal,
    );
    return this.#fetchStatus(options.signal);
  }

  /**
   * Lowers the user's monthly cap (`POST /api/v1/connections`) and resolves with the new status. Your
   * page can only lower it: raising a cap needs the payer in Wattfare's popup (`connect()` or
   * `recover()`), so a value above the current cap rejects with `ForbiddenError`, as does a user with no
   * connection.
   *
   * @example
   * ```ts
   * capSelect.onchange = () => wattfare.lowerCap(Number(capSelect.value)).then(render);
   * ```
   */
  async lowerCap(
    monthlyUsd: number,
    options: { signal?: AbortSignal | undefined } = {},
  ): Promise<ConnectionStatus> {
    if (!Number.isFinite(monthlyUsd) || monthlyUsd < 0) {
      throw new TypeError(`monthlyUsd must be a non-negative number of dollars, got ${monthlyUsd}`);
    }
    const { data } = await this.#authed(
      (authorization) =>
        this.#http.json<ConnectionStatus>({
          method: "POST",
          path: "/connections",
          authorization,
          body: { monthlyUsd },
          signal: options.signal,
          // Lowering to the same value twice changes nothing.
          idempotent: true,
        }),
      options.signal,
    );
    return this.#observe(data);
  }

  /**
   * Opens Wattfare's consent popup, where the user signs in or signs up, connects funding if needed and
   * approves a monthly cap for your app. Call it directly in a click handler: the popup opens before
   * anything is awaited. Resolves with the confirmed status once Wattfare shows the connection.
   *
   * @throws PopupBlockedError, ConsentDeniedError, PopupClosedError, ConsentFailedError (rejections).
   *
   * @example
   * ```ts
   * connectButton.onclick = () =>
   *   wattfare.connect({ monthlyUsd: 5 }).then(
   *     (status) => render(status),
   *     (error) => isWattfareError(error, "popup_closed") || showError(error.message),
   *   );
   * ```
   */
  connect(options: ConsentOptions = {}): Promise<ConnectionStatus> {
    return this.#connectionConsent("connect", options, options.monthlyUsd);
  }

  /**
   * Whether `recover()` can fix this error: `not_connected`, `budget_exceeded`, `funding_invalid` and
   * `grant_invalid`, as a typed error, an error body `{error:{code}}`, or `{code}`.
   *
   * @example
   * ```ts
   * if (wattfare.canRecover(error)) fixItButton.hidden = false;
   * ```
   */
  canRecover(error: unknown): boolean {
    return recoverableCode(error) !== undefined;
  }

  /**
   * Fixes what an error from your backend says is wrong, by opening the consent popup with the intent
   * that fixes it: `not_connected` → connect, `budget_exceeded` → raise the cap (suggesting
   * `monthlyUsd`, by default twice the current cap), `funding_invalid` → reconnect funding,
   * `grant_invalid` → a new grant. For a payer who paused all spending, the raise popup also offers to
   * resume it. Call it directly in a click handler. Resolves when Wattfare's status shows the problem
   * gone (spending not paused and room under the cap; funding `ok`).
   *
   * @throws TypeError (rejection) for an error it cannot fix; check with `canRecover()` first.
   * ConsentFailedError (rejection) when the payer approved but left the problem as it was; its message
   * says what, for the user.
   *
   * @example
   * ```ts
   * const response = await fetch("/api/chat", { method: "POST", body });
   * if (!response.ok) {
   *   const error = await errorFromResponse(response);
   *   if (wattfare.canRecover(error)) fixItButton.onclick = () => wattfare.recover(error).then(retry);
   * }
   * ```
   */
  recover(error: unknown, options: ConsentOptions = {}): Promise<Recovery> {
    const code = recoverableCode(error);
    if (code === undefined) {
      return Promise.reject(
        new TypeError(
          "recover() fixes not_connected, budget_exceeded, funding_invalid and grant_invalid errors; check canRecover() first.",
        ),
      );
    }
    if (code === "grant_invalid") {
      return this.requestGrant({ signal: options.signal }).then((grantToken) => ({ code, grantToken }));
    }
    const intent = RECOVERABLE_CODES[code];
    const suggest =
      code === "budget_exceeded" && options.monthlyUsd === undefined ? suggestRaise : options.monthlyUsd;
    return this.#connectionConsent(intent, options, suggest, (status) => stillBroken(code, status)).then(
      (status) => ({ code, status }),
    );
  }

  /**
   * Asks the user to approve a one-time grant in the consent popup (for apps without user accounts).
   * The terms come from your backend's grant session (`createGrantSessionHandler`). Call it directly in
   * a click handler. Resolves with the grant token (`gt_…`) for your backend to send as
   * `x-wattfare-grant`.
   *
   * @example
   * ```ts
   * grantButton.onclick = async () => {
   *   const grantToken = await wattfare.requestGrant();
   *   sessionStorage.setItem("grant", grantToken);
   * };
   * ```
   */
  requestGrant(options: GrantRequestOptions = {}): Promise<string> {
    const source = options.getSessionToken ?? this.#grantSession;
    if (source === undefined) {
      return Promise.reject(
        new TypeError("requestGrant needs getGrantSessionToken (in createWattfare or its options)."),
      );
    }
    return this.#consent<string>("grant", options.signal, () => {
      // Each grant needs a session of its own: Wattfare answers a grant session once.
      const token = Promise.resolve(source()).then(tokenOf);
      return {
        session: token.then((value) => ({ token: value })),
        check: async (result) => {
          try {
            return (await this.#takePendingGrant(await token)) ?? result?.grantToken;
          } catch (error) {
            // The popup may stay open 30 minutes, a grant session token lives 10: once it has expired,
            // the grant token the popup sent (from Wattfare's own window and origin) is the answer.
            if (result?.grantToken !== undefined && isWattfareError(error, "auth")) return result.grantToken;
            throw error;
          }
        },
      };
    });
  }

  /**
   * Subscribes to an event; returns the function that unsubscribes.
   *
   * @example
   * ```ts
   * const off = wattfare.on("status", (status) => render(status));
   * // later: off();
   * ```
   */
  on<E extends keyof BrowserClientEvents>(
    event: E,
    listener: (value: BrowserClientEvents[E]) => void,
  ): () => void {
    if (event !== "status") throw new TypeError(`Unknown event ${JSON.stringify(event)}.`);
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** The popup for a user session: connect, raise or reconnect funding, confirmed with /connections. */
  #connectionConsent(
    intent: Exclude<ConsentIntent, "grant">,
    options: ConsentOptions,
    /** The cap to suggest in the popup, or how to derive it from the status before (only then awaited). */
    suggest: number | undefined | ((before: ConnectionStatus | undefined) => number | undefined),
    /** For recover(): what is still wrong once the payer approved, if anything (then it rejects). */
    unfixed: (status: ConnectionStatus) => string | undefined = () => undefined,
  ): Promise<ConnectionStatus> {
    const tokens = this.#tokens;
    if (tokens === undefined) {
      return Promise.reject(new TypeError(`${intent} needs getSessionToken (in createWattfare).`));
    }
    // Refused here, before a popup opens that Wattfare would only answer with an error.
    if (
      suggest !== undefined &&
      typeof suggest !== "function" &&
      !(typeof suggest === "number" && Number.isFinite(suggest) && suggest > 0)
    ) {
      return Promise.reject(new TypeError(`monthlyUsd must be a positive number of dollars, got ${suggest}`));
    }
    return this.#consent<ConnectionStatus>(intent, options.signal, () => {
      // What the connection was before, to recognise an approval without the popup's answer (its link
      // was lost, or it closed without one) as a change from it.
      const before = this.#fetchStatus().catch(() => undefined);
      // When that read failed, the first look without an answer takes its place. Until then the popup's
      // link held, and over it the popup announces every approval before it closes: what that look finds
      // was there before. Reading "connected" as "approved" instead would report an approval whenever a
      // user who was already connected closes the popup.
      let baseline: ConnectionStatus | undefined;
      // The popup waits for its session (20 s at most): a slow status read must not hold it back
      // unless the suggested cap depends on it.
      const session: Promise<ConsentSession> =
        typeof suggest === "function"
          ? Promise.all([tokens.get(), before]).then(([token, status]) => ({
              token,
              monthlyUsd: suggest(status),
            }))
          : tokens.get().then((token) => ({ token, monthlyUsd: suggest }));
      return {
        session,
        check: async (result) => {
          const status = await this.#fetchStatus();
          let approved: boolean;
          if (result !== undefined) approved = status.connected;
          else {
            baseline ??= await before;
            if (baseline === undefined) {
              baseline = status;
              return undefined;
            }
            approved = approvedMeanwhile(intent, baseline, status);
          }
          if (!approved) return undefined;
          // Approved, but the payer left the problem as it was (spending still paused, the key still out
          // of credits): resolving would have the app retry into the same error.
          const problem = unfixed(status);
          if (problem !== undefined) throw new ConsentFailedError({ message: problem });
          return status;
        },
      };
    });
  }

  /**
   * Opens the popup (synchronously: this runs inside the caller's click) and runs the handshake. A
   * newer request replaces one still open, from this client or another on the page, in the same
   * window; one the browser blocks leaves it alone.
   */
  #consent<T>(
    intent: ConsentIntent,
    signal: AbortSignal | undefined,
    start: () => {
      session: Promise<ConsentSession>;
      check: (result: ApprovedResult | undefined) => Promise<T | undefined>;
    },
  ): Promise<T> {
    // The caller gave up already: no window opened (none replaced, none closed), no token fetched.
    if (signal?.aborted) return Promise.reject(new APIUserAbortError());
    let popup: Window;
    try {
      popup = openReplacingActiveConsent(`${this.baseUrl}/connect`, "Replaced by a newer Wattfare request.");
    } catch (error) {
      return Promise.reject(error);
    }
    let started: ReturnType<typeof start>;
    try {
      started = start();
    } catch (error) {
      // A token source that throws at once (rather than rejecting) must not leave the popup open.
      popup.close();
      return Promise.reject(error);
    }
    const running = runConsent(
      popup,
      { intent, ...started },
      {
        origin: this.origin,
        pollIntervalMs: this.#pollIntervalMs,
        lostLinkTimeoutMs: this.#lostLinkTimeoutMs,
        signal,
      },
    );
    return trackActiveConsent(this, running);
  }

  async #fetchStatus(signal?: AbortSignal): Promise<ConnectionStatus> {
    const { data } = await this.#authed(
      (authorization) =>
        this.#http.json<ConnectionStatus>({
          method: "GET",
          path: "/connections",
          authorization,
          signal,
          idempotent: true,
        }),
      signal,
    );
    return this.#observe(data);
  }

  /** Tells the listeners when a status read from Wattfare differs from the last one. */
  #observe(data: ConnectionStatus): ConnectionStatus {
    const serialized = JSON.stringify(data);
    if (serialized !== this.#last) {
      this.#last = serialized;
      for (const listener of this.#listeners) {
        // As an EventTarget does: a listener that throws is reported, and neither stops the others nor
        // fails the call that read the status.
        try {
          listener(data);
        } catch (error) {
          reportListenerError(error);
        }
      }
    }
    return data;
  }

  /** The approved grant token waiting for this grant session, once; undefined while there is none. */
  async #takePendingGrant(token: string): Promise<string | undefined> {
    const spec: RequestSpec = {
      method: "GET",
      path: "/grants/pending",
      authorization: `Bearer ${token}`,
      // Never retried: the token is handed over once, so a retry after a lost answer would find nothing.
      idempotent: false,
    };
    try {
      return (await this.#http.json<{ grantToken: string }>(spec)).data.grantToken;
    } catch (error) {
      if (error instanceof NotFoundError || isWattfareError(error, "not_found")) return undefined;
      throw error;
    }
  }

  /**
   * Sends with the cached session token; on a 401, fetches a new token and tries once more. A call
   * under way when clearSession() runs rejects instead of answering: it speaks for the previous user.
   */
  async #authed<R>(send: (authorization: string) => Promise<R>, signal?: AbortSignal): Promise<R> {
    const tokens = this.#tokens;
    if (tokens === undefined) throw new TypeError("This call needs getSessionToken (in createWattfare).");
    const epoch = tokens.epoch;
    const token = await untilAborted(tokens.get(), signal);
    let result: R;
    try {
      result = await send(`Bearer ${token}`);
    } catch (error) {
      if (!isWattfareError(error, "auth") || tokens.epoch !== epoch) throw error;
      tokens.invalidate(token);
      result = await send(`Bearer ${await untilAborted(tokens.get(), signal)}`);
    }
    if (tokens.epoch !== epoch) {
      throw new APIUserAbortError({
        message: "The session was cleared (the user signed out) during this call.",
      });
    }
    return result;
  }
}

/**
 * `promise`, or an APIUserAbortError as soon as `signal` fires. A session token comes from the app's own
 * endpoint, which the caller's signal cannot cancel and which may hang: the call must not wait for it
 * once aborted. The token still lands in the cache for the next call.
 */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) {
    promise.catch(() => undefined); // a failed fetch nobody waits for is no unhandled rejection
    return Promise.reject(new APIUserAbortError());
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new APIUserAbortError());
    signal.addEventListener("abort", onAbort, { once: true });
    promise.finally(() => signal.removeEventListener("abort", onAbort)).then(resolve, reject);
  });
}

/** Whether the status `now`, read without the popup's answer, shows that the payer approved what `intent` asked for. */
function approvedMeanwhile(
  intent: Exclude<ConsentIntent, "grant">,
  before: ConnectionStatus,
  now: ConnectionStatus,
): boolean {
  if (!now.connected) return false;
  if (intent === "connect") return !before.connected || before.limits.monthlyUsd !== now.limits.monthlyUsd;
  if (intent === "raise")
    return now.limits.monthlyUsd > before.limits.monthlyUsd || (before.paused && !now.paused);
  return now.funding === "ok" && before.funding !== "ok";
}

function tokenOf(value: string | { token: string }): string {
  const token = typeof value === "string" ? value : value?.token;
  if (typeof token !== "string" || token === "") {
    throw new TypeError("getGrantSessionToken must return a session token or { token }.");
  }
  return token;
}

/** Reports an error thrown by a listener to the page (its console, `window.onerror`) without throwing here. */
function reportListenerError(error: unknown): void {
  const report = (globalThis as { reportError?: (error: unknown) => void }).reportError;
  if (typeof report === "function") report(error);
  else
    setTimeout(() => {
      throw error;
    });
}
