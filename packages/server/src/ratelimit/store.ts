import type { RateRule } from "./decide.js";

/** What a store answers for one request; routes turn a rejection into 429 `rate_limited` + Retry-After. */
export interface RateDecision {
  readonly allowed: boolean;
  /** 0 when allowed; otherwise whole seconds until a retry can pass, rounded up, at least 1. */
  readonly retryAfterSeconds: number;
  /** Slots left in the window after this request. */
  readonly remaining: number;
  /** The limit the request was judged against. */
  readonly limit: number;
}

/**
 * The port every rate-limit backend implements: in-process memory by default, Redis when
 * `WATTFARE_REDIS_URL` is set. Both must pass `rateLimitStoreContract`, so they behave identically.
 *
 * A backend must
 * - judge each hit exactly as `decide()` does, atomically per key: of two concurrent hits competing for
 *   the last slot, exactly one passes (Redis: one Lua script doing prune, count, add and expire);
 * - use the caller's `now`, never its own clock, so decisions are reproducible and testable;
 * - count every allowed request, even many in the same millisecond (Redis: sorted-set members must be
 *   unique, e.g. `<now>-<sequence>`, or ZADD would merge them);
 * - treat a missing key as an empty log, which lets it expire or evict keys whose window is empty.
 */
export interface RateLimitStore {
  /** Judges one request on `key` at `now` (ms since the epoch) and counts it if allowed. */
  hit(key: string, rule: RateRule, now: number): Promise<RateDecision>;
  /** Releases timers and connections. Idempotent; hits after close reject. */
  close(): Promise<void>;
}
