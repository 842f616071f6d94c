/**
 * The browser's session-token cache. Wattfare's tokens live 10 minutes; the page's clock may be wrong
 * by more than that, so expiry is measured on the page's own clock from when the token arrived plus
 * its lifetime (`exp − iat`), never by comparing `exp` with `Date.now()`.
 */

/**
 * What `getSessionToken` may return: the `{ token, expiresAt }` your session endpoint answers (as
 * `createSessionHandler` does), or just the token.
 *
 * @example
 * ```ts
 * const fromEndpoint: SessionTokenSource = async () => {
 *   const response = await fetch("/api/wattfare/session", { method: "POST" });
 *   return response.json(); // { token, expiresAt }
 * };
 * ```
 */
export type SessionTokenSource = () => Promise<string | { token: string }> | string | { token: string };

/** Refresh this long before expiry, or a fifth of the lifetime when that is shorter. */
const REFRESH_MARGIN_MS = 60_000;

interface CachedToken {
  token: string;
  /** Page-clock ms after which the token is refreshed before use. */
  refreshAt: number;
}

/**
 * Caches one session token: reuses it until shortly before it expires, shares one in-flight refresh
 * between concurrent callers, and forgets a token the server refused.
 */
export class SessionTokens {
  readonly #source: SessionTokenSource;
  readonly #now: () => number;
  #cached: CachedToken | undefined;
  #inflight: Promise<string> | undefined;
  /** Bumped by clear(): a fetch started in an earlier epoch is not cached. */
  #epoch = 0;

  /** Changes at every clear(): a call can tell that the session changed under it. */
  get epoch(): number {
    return this.#epoch;
  }

  constructor(source: SessionTokenSource, now: () => number = () => Date.now()) {
    this.#source = source;
    this.#now = now;
  }

  /** A token that is not about to expire; fetches one when needed (once, however many callers wait). */
  get(): Promise<string> {
    const cached = this.#cached;
    if (cached !== undefined && this.#now() < cached.refreshAt) return Promise.resolve(cached.token);
    if (this.#inflight === undefined) {
      const refresh = this.#refresh().finally(() => {
        if (this.#inflight === refresh) this.#inflight = undefined;
      });
      this.#inflight = refresh;
    }
    return this.#inflight;
  }

  /** Wattfare refused `token` (401): drop it, unless a newer one has replaced it meanwhile. */
  invalidate(token: string): void {
    if (this.#cached?.token === token) this.#cached = undefined;
  }

  /**
   * Forgets the cached token and any fetch in progress (the user signed out, or another signed in):
   * the next get() asks the source again, and a fetch started before is not cached when it lands.
   */
  clear(): void {
    this.#cached = undefined;
    this.#inflight = undefined;
    this.#epoch++;
  }

  async #refresh(): Promise<string> {
    const epoch = this.#epoch;
    const received = await this.#source();
    const token = typeof received === "string" ? received : received?.token;
    if (typeof token !== "string" || token === "") {
      throw new TypeError("getSessionToken must return a session token or { token }.");
    }
    const receivedAt = this.#now();
    const lifetimeMs = tokenLifetimeMs(token);
    const margin = Math.min(REFRESH_MARGIN_MS, lifetimeMs / 5);
    // An undecodable token gets no lifetime: used once, then fetched again.
    if (epoch === this.#epoch) this.#cached = { token, refreshAt: receivedAt + lifetimeMs - margin };
    return token;
  }
}

/** `(exp − iat)` of a JWT in ms, or 0 when the token carries no such claims. */
export function tokenLifetimeMs(token: string): number {
  const payload = token.split(".")[1];
  if (payload === undefined) return 0;
  let claims: unknown;
  try {
    const base64 = payload.replaceAll("-", "+").replaceAll("_", "/");
    claims = JSON.parse(atob(base64.padEnd(base64.length + ((4 - (base64.length % 4)) % 4), "=")));
  } catch {
    return 0;
  }
  if (typeof claims !== "object" || claims === null) return 0;
  const { iat, exp } = claims as { iat?: unknown; exp?: unknown };
  if (typeof iat !== "number" || typeof exp !== "number" || exp <= iat) return 0;
  return (exp - iat) * 1000;
}
