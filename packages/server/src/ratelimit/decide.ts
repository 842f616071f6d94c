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
 * A log kept sorted ascending in a ring buffer of doubles: appending and pruning move an index, so both
 * are O(1) even for limits in the millions, and the timestamps live outside the JavaScript heap (a
 * `Float64Array`), where the garbage collector neither scans nor copies them. (As a plain array, an app
 * with a limit of a million a minute kept a ~3 MB array that was spliced and regrown on the heap; the
 * proxy's major-GC time showed it.) Capacity doubles when full and halves when three quarters are
 * unused, so memory stays O(live).
 */
export class SlidingLog {
  private buf: Float64Array;
  /** Index in `buf` of the oldest live entry. */
  private head = 0;
  private size: number;

  private constructor(sortedTimes: readonly number[]) {
    this.buf = new Float64Array(capacityFor(sortedTimes.length));
    this.buf.set(sortedTimes);
    this.size = sortedTimes.length;
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
    const count = this.size;
    if (count < rule.limit) {
      this.insert(now);
      return { allowed: true, retryAfterSeconds: 0, remaining: rule.limit - count - 1 };
    }
    // A slot frees up when the in-window count drops below the limit, i.e. when the entry at position
    // count − limit leaves. That is the oldest entry, unless the rule was lowered while the log was
    // fuller than the new limit; then waiting for the oldest alone would promise a retry that fails.
    // With limit 0 no slot ever frees up, and one window is the honest hint.
    const waitMs = rule.limit === 0 ? rule.windowMs : this.at(count - rule.limit) + rule.windowMs - now;
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)), remaining: 0 };
  }

  /** True when no counted request lies within `windowMs` of `now`: the log is as good as absent. */
  isEmptyAt(now: number, windowMs: number): boolean {
    return this.size === 0 || this.at(this.size - 1) <= now - windowMs;
  }

  /** The live entries, ascending. */
  toArray(): number[] {
    return Array.from({ length: this.size }, (_, i) => this.at(i));
  }

  /** The i-th live entry, oldest first. */
  private at(i: number): number {
    return this.buf[(this.head + i) & (this.buf.length - 1)] as number;
  }

  /** Drops entries at or before `cutoff`: a request exactly `windowMs` old has left the window. */
  private prune(cutoff: number): void {
    const mask = this.buf.length - 1;
    while (this.size > 0 && (this.buf[this.head] as number) <= cutoff) {
      this.head = (this.head + 1) & mask;
      this.size--;
    }
    if (this.buf.length > MIN_CAPACITY && this.size <= this.buf.length >>> 2)
      this.resize(this.buf.length >>> 1);
  }

  /**
   * Appends `now`, or inserts it in order if the clock stepped backwards (NTP, another instance's
   * clock), so the log stays sorted and pruning stays a prefix operation.
   */
  private insert(now: number): void {
    if (this.size === this.buf.length) this.resize(this.buf.length * 2);
    const mask = this.buf.length - 1;
    let i = this.size;
    // Shift the (rare) newer entries one place up until `now` fits; an in-order append shifts none.
    while (i > 0 && this.at(i - 1) > now) {
      this.buf[(this.head + i) & mask] = this.at(i - 1);
      i--;
    }
    this.buf[(this.head + i) & mask] = now;
    this.size++;
  }

  /** Moves the live entries to a new buffer of `capacity` (a power of two), oldest first at 0. */
  private resize(capacity: number): void {
    const next = new Float64Array(capacity);
    for (let i = 0; i < this.size; i++) next[i] = this.at(i);
    this.buf = next;
    this.head = 0;
  }
}

const MIN_CAPACITY = 8;

/** The smallest power of two ≥ `n`, at least MIN_CAPACITY. */
function capacityFor(n: number): number {
  let capacity = MIN_CAPACITY;
  while (capacity < n) capacity *= 2;
  return capacity;
}
