/**
 * Exact sliding-log rate limiting (DESIGN.md "Errors and limits"): a request is allowed iff fewer than
 * `limit` counted requests lie in the window `(now − windowMs, now]`; only allowed requests are counted;
 * a rejected request learns how many whole seconds to wait until a slot frees up.
 *
 * `decide()` is the specification as a pure function. `SlidingLog` is the same rule on a mutable log,
 * for stores that keep logs in process memory and cannot afford to copy a log on every hit.
 */

export interface RateRule {
  /** Requests allowed per window; 0 blocks every request. */
  readonly limit: number;
  /** Window length in milliseconds. */
  readonly windowMs: number;
}

/** Session minting: 120 per minute per app. */
export const RL_SESSIONS: RateRule = Object.freeze({ limit: 120, windowMs: 60_000 });
/** Chat: 30 per minute per app and user (or grant). */
export const RL_CHAT: RateRule = Object.freeze({ limit: 30, windowMs: 60_000 });

export interface HitOutcome {
  allowed: boolean;
  /** 0 when allowed; otherwise whole seconds until a retry is allowed, rounded up, at least 1. */
  retryAfterSeconds: number;
  /** Slots left in the window after this hit. */
  remaining: number;
}

export interface Decision extends HitOutcome {
  /** Timestamps (ms) of the counted requests still in the window, ascending, including this one if allowed. */
  log: number[];
}

/**
 * Decides one request against the log of counted requests (timestamps in ms, any order).
 *
 * @example decide([], { limit: 1, windowMs: 60_000 }, 0) // → allowed, log [0]
 * @example decide([0], { limit: 1, windowMs: 60_000 }, 1) // → rejected, retryAfterSeconds 60
 */
export function decide(log: readonly number[], rule: RateRule, now: number): Decision {
  const sliding = SlidingLog.from(log);
  const outcome = sliding.hit(rule, now);
  return { ...outcome, log: sliding.toArray() };
}

/** Throws RangeError for a rule or clock reading that would make comparisons meaningless. */
export function assertValidHit(rule: RateRule, now: number): void {
  if (!Number.isSafeInteger(rule.limit) || rule.limit < 0) {
    throw new RangeError(`rate limit must be a non-negative integer, got ${rule.limit}`);
  }
  if (!Number.isSafeInteger(rule.windowMs) || rule.windowMs <= 0) {
    throw new RangeError(`rate window must be a positive integer of ms, got ${rule.windowMs}`);
  }
  if (!Number.isFinite(now)) throw new RangeError(`now must be a finite timestamp, got ${now}`);
}

/**
 * A log kept sorted ascending, with the entries before `start` already out of the window. Moving
 * `start` instead of shifting makes pruning amortised O(1) per hit even for limits in the millions;
 * the dead prefix is cut off once it is at least as long as the live part, so memory stays O(live).
 */
export class SlidingLog {
  private times: number[];
  private start = 0;

  private constructor(sortedTimes: number[]) {
    this.times = sortedTimes;
  }

  static empty(): SlidingLog {
    return new SlidingLog([]);
  }

  /** Copies and sorts, so callers may pass a log assembled in any order. */
  static from(times: readonly number[]): SlidingLog {
    return new SlidingLog([...times].sort((a, b) => a - b));
  }

  /** Counts this request if the window has room, as `decide()` specifies. Validates before mutating. */
  hit(rule: RateRule, now: number): HitOutcome {
    assertValidHit(rule, now);
    this.prune(now - rule.windowMs);
    const count = this.times.length - this.start;
    if (count < rule.limit) {
      this.insert(now);
      return { allowed: true, retryAfterSeconds: 0, remaining: rule.limit - count - 1 };
    }
    // A slot frees up when the in-window count drops below the limit, i.e. when the entry at position
    // count − limit leaves. That is the oldest entry, unless the rule was lowered while the log was
    // fuller than the new limit; then waiting for the oldest alone would promise a retry that fails.
    // With limit 0 no slot ever frees up, and one window is the honest hint.
    const freeing = this.times[this.start + count - rule.limit];
    const waitMs = freeing === undefined ? rule.windowMs : freeing + rule.windowMs - now;
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)), remaining: 0 };
  }

  /** True when no counted request lies within `windowMs` of `now`: the log is as good as absent. */
  isEmptyAt(now: number, windowMs: number): boolean {
    const newest = this.start < this.times.length ? this.times.at(-1) : undefined;
    return newest === undefined || newest <= now - windowMs;
  }

  /** The live entries, ascending. */
  toArray(): number[] {
    return this.times.slice(this.start);
  }

  /** Drops entries at or before `cutoff`: a request exactly `windowMs` old has left the window. */
  private prune(cutoff: number): void {
    const times = this.times;
    let start = this.start;
    while (start < times.length && times[start]! <= cutoff) start++;
    if (start > 0 && start >= times.length - start) {
      times.splice(0, start);
      start = 0;
    }
    this.start = start;
  }

  /**
   * Appends `now`, or inserts it in order if the clock stepped backwards (NTP, another instance's
   * clock), so the log stays sorted and pruning stays a prefix operation.
   */
  private insert(now: number): void {
    const times = this.times;
    const last = times.at(-1);
    if (last === undefined || last <= now) {
      times.push(now);
      return;
    }
    let lo = this.start;
    let hi = times.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (times[mid]! <= now) lo = mid + 1;
      else hi = mid;
    }
    times.splice(lo, 0, now);
  }
}
