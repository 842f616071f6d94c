/**
 * The options of the browser client: what `createWattfare()` accepts, and what the calls that open the
 * consent popup (`connect`, `recover`, `requestGrant`) take.
 */
import type { Fetch } from "../core/http.js";
import type { Logger } from "../core/logger.js";
import type { SessionTokenSource } from "./session-tokens.js";

/**
 * Everything `createWattfare()` accepts.
 *
 * @example
 * ```ts
 * const options: BrowserClientOptions = {
 *   baseUrl: "https://wattfare.com",
 *   getSessionToken: sessionEndpoint("/api/wattfare/session"),
 * };
 * ```
 */
export interface BrowserClientOptions {
  /** Wattfare's origin, such as `https://wattfare.com` (no path); the SDK appends `/connect` and `/api/v1`. */
  baseUrl: string;
  /**
   * Gets a session token for the signed-in user from your backend (an endpoint made with the server
   * SDK's `createSessionHandler`). Called when no cached token is fresh; may return `{ token,
   * expiresAt }` or the token. Needed for `connect`, `status`, `disconnect` and `recover`.
   */
  getSessionToken?: SessionTokenSource | undefined;
  /**
   * Gets a grant session token from your backend (an endpoint made with `createGrantSessionHandler`).
   * Called once per `requestGrant()`: each grant needs its own session. Needed for `requestGrant` and
   * for recovering from `grant_invalid`.
   */
  getGrantSessionToken?: SessionTokenSource | undefined;
  /** The `fetch` for calls to Wattfare. Default: the page's `fetch`. */
  fetch?: Fetch | undefined;
  /** Time limit per call to Wattfare's API, in ms. Default: `30000`. */
  timeoutMs?: number | undefined;
  /** Retries of `status()`/`disconnect()` after a network error or a 429. Default: `2`. */
  maxRetries?: number | undefined;
  /** How often Wattfare is polled when the popup's link to this page was lost, in ms. Default: `1000`. */
  pollIntervalMs?: number | undefined;
  /** Gives up polling a lost popup after this many ms. Default: `1800000` (Wattfare's 30-minute consent window). */
  lostLinkTimeoutMs?: number | undefined;
  /** Receives warnings. Default: `console`, warnings and errors only. */
  logger?: Logger | undefined;
}

/**
 * Options for the calls that open the consent popup.
 *
 * @example
 * ```ts
 * const controller = new AbortController();
 * await wattfare.connect({ monthlyUsd: 5, signal: controller.signal });
 * ```
 */
export interface ConsentOptions {
  /**
   * The monthly cap to suggest, in USD. `connect`: default the session's `monthlyUsd` (from your
   * session handler) or Wattfare's default. `recover` from `budget_exceeded`: default twice the current
   * cap. The payer can choose another amount.
   */
  monthlyUsd?: number | undefined;
  /**
   * Closes the popup and rejects with `APIUserAbortError`. Already aborted: rejects so without opening a
   * popup, leaving one already open as it was.
   */
  signal?: AbortSignal | undefined;
}

/**
 * Options for `requestGrant()`.
 *
 * @example
 * ```ts
 * const grantToken = await wattfare.requestGrant({ getSessionToken: sessionEndpoint("/api/grant-session") });
 * ```
 */
export interface GrantRequestOptions {
  /** Overrides the client's `getGrantSessionToken` for this grant. */
  getSessionToken?: SessionTokenSource | undefined;
  /**
   * Closes the popup and rejects with `APIUserAbortError`. Already aborted: rejects so without opening a
   * popup, leaving one already open as it was.
   */
  signal?: AbortSignal | undefined;
}
