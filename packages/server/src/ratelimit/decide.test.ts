import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decide, type RateRule, RL_CHAT, RL_SESSIONS, SlidingLog } from "./decide.js";

const minute = { limit: 2, windowMs: 60_000 };

/** Replays hits at the given times through decide(), threading the log. */
function replay(rule: RateRule, times: readonly number[]) {
  let log: number[] = [];
  return times.map((now) => {
    const decision = decide(log, rule, now);
    log = decision.log;
    return decision;
  });
}

describe("decide", () => {
  it("allows a request while the window has room and appends it to the log", () => {
    expect(decide([], minute, 1_000)).toEqual({
      allowed: true,
      log: [1_000],
      retryAfterSeconds: 0,
      remaining: 1,
    });
    expect(decide([1_000], minute, 2_000)).toEqual({
      allowed: true,
      log: [1_000, 2_000],
      retryAfterSeconds: 0,
      remaining: 0,
    });
  });

  it("rejects the request beyond the limit and leaves the log as it was", () => {
    expect(decide([1_000, 2_000], minute, 3_000)).toEqual({
      allowed: false,
      log: [1_000, 2_000],
      retryAfterSeconds: 58,
      remaining: 0,
    });
  });

  it("treats a request exactly windowMs old as gone", () => {
    expect(decide([0, 1], minute, 60_000)).toMatchObject({ allowed: true, log: [1, 60_000] });
    expect(decide([0, 1], minute, 59_999)).toMatchObject({ allowed: false, retryAfterSeconds: 1 });
  });

  it("prunes requests that left the window even when it rejects", () => {
    const rule = { limit: 2, windowMs: 10_000 };
    expect(decide([0, 5_000, 6_000], rule, 10_000)).toEqual({
      allowed: false,
      log: [5_000, 6_000],
      retryAfterSeconds: 5,
      remaining: 0,
    });
  });

  it("rounds Retry-After up to whole seconds and never below 1", () => {
    const rule = { limit: 1, windowMs: 10_000 };
    expect(decide([0], rule, 1).retryAfterSeconds).toBe(10);
    expect(decide([0], rule, 1_000).retryAfterSeconds).toBe(9);
    expect(decide([0], rule, 9_999).retryAfterSeconds).toBe(1);
    expect(decide([0.5], rule, 9_999.9).retryAfterSeconds).toBe(1);
  });

  it("waits for enough requests to leave when the log is fuller than a lowered limit", () => {
    expect(decide([0, 1_000, 2_000], { limit: 2, windowMs: 60_000 }, 3_000).retryAfterSeconds).toBe(58);
    expect(decide([0, 1_000, 2_000], { limit: 1, windowMs: 60_000 }, 3_000).retryAfterSeconds).toBe(59);
  });

  it("rejects everything under limit 0 and suggests retrying after one window", () => {
    expect(decide([], { limit: 0, windowMs: 60_000 }, 0)).toEqual({
      allowed: false,
      log: [],
      retryAfterSeconds: 60,
      remaining: 0,
    });
  });

  it("does not mutate the log it is given, and accepts it in any order", () => {
    const log = Object.freeze([3_000, 1_000]);
    expect(decide(log, { limit: 5, windowMs: 60_000 }, 4_000).log).toEqual([1_000, 3_000, 4_000]);
    expect(log).toEqual([3_000, 1_000]);
  });

  it("keeps the log sorted when the clock steps backwards", () => {
    expect(decide([1_000, 3_000], { limit: 5, windowMs: 60_000 }, 2_000).log).toEqual([1_000, 2_000, 3_000]);
  });

  it("does not bring back requests that left the window before the clock stepped back", () => {
    // What a log once dropped is gone; a Redis sorted set pruned by score behaves the same way.
    const rule = { limit: 1, windowMs: 1_000 };
    expect(replay(rule, [0, 1_000, 500]).map((d) => d.log)).toEqual([[0], [1_000], [1_000]]);
  });

  it.each([
    [{ limit: -1, windowMs: 1_000 }, 0],
    [{ limit: 1.5, windowMs: 1_000 }, 0],
    [{ limit: Number.NaN, windowMs: 1_000 }, 0],
    [{ limit: 1, windowMs: 0 }, 0],
    [{ limit: 1, windowMs: 1.5 }, 0],
    [{ limit: 1, windowMs: Number.POSITIVE_INFINITY }, 0],
    [{ limit: 1, windowMs: 1_000 }, Number.NaN],
    [{ limit: 1, windowMs: 1_000 }, Number.POSITIVE_INFINITY],
  ])("rejects the rule %j at now=%d with RangeError", (rule, now) => {
    expect(() => decide([], rule, now)).toThrow(RangeError);
  });

  it("defaults to 120 sessions and 30 chat requests per minute, frozen", () => {
    expect(RL_SESSIONS).toEqual({ limit: 120, windowMs: 60_000 });
    expect(RL_CHAT).toEqual({ limit: 30, windowMs: 60_000 });
    expect(Object.isFrozen(RL_SESSIONS) && Object.isFrozen(RL_CHAT)).toBe(true);
  });

  const rule = fc.record({
    limit: fc.integer({ min: 0, max: 6 }),
    windowMs: fc.integer({ min: 1, max: 5_000 }),
  });
  const forwardTimes = fc
    .array(fc.integer({ min: 0, max: 1_500 }), { maxLength: 60 })
    .map((gaps) => gaps.map((_, i) => gaps.slice(0, i + 1).reduce((a, b) => a + b, 0)));
  const anyTimes = fc.array(fc.integer({ min: 0, max: 20_000 }), { maxLength: 60 });

  it("allows a request iff fewer than `limit` allowed requests lie in (now − windowMs, now]", () => {
    fc.assert(
      fc.property(rule, forwardTimes, (r, times) => {
        // Brute force: every allowed timestamp ever, filtered per decision.
        const allowedSoFar: number[] = [];
        for (const [i, decision] of replay(r, times).entries()) {
          const now = times[i]!;
          const inWindow = allowedSoFar.filter((t) => t > now - r.windowMs);
          expect(decision.allowed).toBe(inWindow.length < r.limit);
          if (decision.allowed) allowedSoFar.push(now);
          const expectedLog = (decision.allowed ? [...inWindow, now] : inWindow).sort((a, b) => a - b);
          expect(decision.log).toEqual(expectedLog);
          expect(decision.remaining).toBe(decision.allowed ? r.limit - expectedLog.length : 0);
        }
      }),
    );
  });

  it("never lets more than `limit` requests into any window", () => {
    fc.assert(
      fc.property(rule, forwardTimes, (r, times) => {
        const decisions = replay(r, times);
        const allowed = times.filter((_, i) => decisions[i]!.allowed);
        for (let i = 0; i + r.limit < allowed.length; i++) {
          expect(allowed[i + r.limit]! - allowed[i]!).toBeGreaterThanOrEqual(r.windowMs);
        }
      }),
    );
  });

  it("gives the shortest whole-second Retry-After after which a retry passes", () => {
    const positiveRule = fc.record({
      limit: fc.integer({ min: 1, max: 6 }),
      windowMs: fc.integer({ min: 1, max: 10_000 }),
    });
    fc.assert(
      fc.property(positiveRule, anyTimes, fc.integer({ min: 0, max: 20_000 }), (r, times, now) => {
        const log = replay(r, times).at(-1)?.log ?? [];
        const decision = decide(log, r, now);
        if (decision.allowed) return;
        const wait = decision.retryAfterSeconds;
        expect(decide(log, r, now + wait * 1_000).allowed).toBe(true);
        if (wait > 1) expect(decide(log, r, now + (wait - 1) * 1_000).allowed).toBe(false);
      }),
    );
  });
});

describe("SlidingLog", () => {
  it("agrees with decide() over thousands of hits on one long-lived log", () => {
    const manyTimes = fc
      .array(fc.integer({ min: -50, max: 400 }), { minLength: 500, maxLength: 3_000 })
      .map((gaps) => {
        let now = 0;
        return gaps.map((gap) => (now += gap));
      });
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 1, max: 20_000 }),
        manyTimes,
        (limit, windowMs, times) => {
          const r = { limit, windowMs };
          const sliding = SlidingLog.empty();
          for (const expected of replay(r, times).map((d, i) => ({ d, now: times[i]! }))) {
            const { log, ...outcome } = expected.d;
            expect(sliding.hit(r, expected.now)).toEqual(outcome);
            expect(sliding.toArray()).toEqual(log);
          }
        },
      ),
      { numRuns: 30 },
    );
  });

  it("agrees with a plain sorted list through thousands of live entries, drains and clock steps back", () => {
    const rule = { limit: 2_000, windowMs: 1_000 };
    const sliding = SlidingLog.empty();
    let list: number[] = [];
    let now = 0;
    let seed = 7;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    let largest = 0;
    let rejected = 0;
    for (let i = 0; i < 40_000; i++) {
      // Mostly bursts within a millisecond; rarely a pause that empties the window or a step back.
      const r = random();
      now +=
        r < 0.9 ? 0 : r < 0.9995 ? Math.floor(random() * 2) : r < 0.9998 ? 1_500 : -Math.floor(random() * 50);
      list = list.filter((t) => t > now - rule.windowMs);
      const allowed = list.length < rule.limit;
      if (allowed) list = [...list, now].sort((a, b) => a - b);
      else rejected++;
      largest = Math.max(largest, list.length);
      expect(sliding.hit(rule, now).allowed).toBe(allowed);
      if (i % 997 === 0) expect(sliding.toArray()).toEqual(list);
    }
    expect(sliding.toArray()).toEqual(list);
    expect(largest).toBe(rule.limit); // it grew to the limit…
    expect(rejected).toBeGreaterThan(0); // …was full, and drained after pauses
  });

  it("reports its window as empty once the newest request is windowMs old", () => {
    const sliding = SlidingLog.empty();
    expect(sliding.isEmptyAt(0, 1_000)).toBe(true);
    sliding.hit({ limit: 5, windowMs: 1_000 }, 0);
    sliding.hit({ limit: 5, windowMs: 1_000 }, 500);
    expect(sliding.isEmptyAt(1_499, 1_000)).toBe(false);
    expect(sliding.isEmptyAt(1_500, 1_000)).toBe(true);
  });
});
