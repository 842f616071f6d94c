import { randomUUID } from "node:crypto";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { decide, type RateRule, RL_CHAT } from "./decide.js";
import { chatGrantKey, chatUserKey } from "./keys.js";
import type { RateDecision, RateLimitStore } from "./store.js";

/** A realistic epoch in ms. Every hit passes its own clock reading; no test sleeps. */
const T0 = 1_700_000_000_000;

/**
 * The behaviour every rate-limit backend must show (DESIGN.md: "identical behaviour in both"). Register
 * it from each backend's test file: `rateLimitStoreContract("memory", () => new MemoryRateLimitStore())`.
 *
 * Each test uses keys under a fresh random app id, so a shared Redis carries nothing between tests or
 * runs. Windows are at least 10 s, so a backend that also sets a real-time TTL as garbage collection
 * cannot lose a key in the middle of a test.
 */
export function rateLimitStoreContract(
  name: string,
  makeStore: () => Promise<RateLimitStore> | RateLimitStore,
): void {
  describe(`RateLimitStore contract: ${name}`, () => {
    let store: RateLimitStore;
    let appId: string;
    let user: (id: string) => string;

    beforeEach(async () => {
      store = await makeStore();
      appId = `t${randomUUID().replaceAll("-", "")}`;
      user = (id) => chatUserKey(appId, id);
    });

    afterEach(async () => {
      await store.close();
    });

    /** `count` hits at the same instant, all in flight at once. */
    function burst(key: string, rule: RateRule, now: number, count: number): Promise<RateDecision[]> {
      return Promise.all(Array.from({ length: count }, () => store.hit(key, rule, now)));
    }

    it("allows exactly `limit` requests in a window and rejects the next one", async () => {
      const rule = { limit: 3, windowMs: 60_000 };
      const allowed = [];
      for (let i = 0; i < 3; i++) allowed.push(await store.hit(user("a"), rule, T0 + i * 1000));
      expect(allowed).toEqual([
        { allowed: true, retryAfterSeconds: 0, remaining: 2, limit: 3 },
        { allowed: true, retryAfterSeconds: 0, remaining: 1, limit: 3 },
        { allowed: true, retryAfterSeconds: 0, remaining: 0, limit: 3 },
      ]);
      expect(await store.hit(user("a"), rule, T0 + 3000)).toEqual({
        allowed: false,
        retryAfterSeconds: 57,
        remaining: 0,
        limit: 3,
      });
    });

    it("rejects the 31st chat request in a minute with Retry-After until the first one leaves", async () => {
      for (let i = 0; i < 30; i++)
        expect((await store.hit(user("a"), RL_CHAT, T0 + i * 1000)).allowed).toBe(true);
      const rejected = await store.hit(user("a"), RL_CHAT, T0 + 30_000);
      expect(rejected).toMatchObject({ allowed: false, retryAfterSeconds: 30, limit: 30 });
    });

    it("allows a request exactly windowMs after the oldest counted one, and not a millisecond earlier", async () => {
      const rule = { limit: 1, windowMs: 10_000 };
      expect((await store.hit(user("a"), rule, T0)).allowed).toBe(true);
      expect(await store.hit(user("a"), rule, T0 + 9_999)).toMatchObject({
        allowed: false,
        retryAfterSeconds: 1,
      });
      expect((await store.hit(user("a"), rule, T0 + 10_000)).allowed).toBe(true);
    });

    it("does not count rejected requests", async () => {
      const rule = { limit: 2, windowMs: 10_000 };
      expect((await store.hit(user("a"), rule, T0)).allowed).toBe(true);
      expect((await store.hit(user("a"), rule, T0 + 1_000)).allowed).toBe(true);
      for (let t = 2_000; t < 10_000; t += 1_000) {
        expect((await store.hit(user("a"), rule, T0 + t)).allowed).toBe(false);
      }
      expect((await store.hit(user("a"), rule, T0 + 10_000)).allowed).toBe(true);
      expect((await store.hit(user("a"), rule, T0 + 10_500)).allowed).toBe(false);
      // Had the rejections at 2 s … 9 s counted, they would still fill the window here.
      expect(await store.hit(user("a"), rule, T0 + 11_000)).toMatchObject({ allowed: true, remaining: 0 });
    });

    it("rounds Retry-After up to whole seconds, never below 1", async () => {
      const rule = { limit: 1, windowMs: 10_000 };
      await store.hit(user("a"), rule, T0);
      const wait = async (t: number) => (await store.hit(user("a"), rule, T0 + t)).retryAfterSeconds;
      expect(await wait(1)).toBe(10);
      expect(await wait(8_999)).toBe(2);
      expect(await wait(9_000)).toBe(1);
      expect(await wait(9_999)).toBe(1);
    });

    it("waits for enough requests to leave when the limit was lowered below the log", async () => {
      const wide = { limit: 5, windowMs: 60_000 };
      for (const t of [0, 1_000, 2_000]) await store.hit(user("a"), wide, T0 + t);
      // Three counted, limit now 2: the request at 1 s must leave too, not just the one at 0 s.
      expect(await store.hit(user("a"), { limit: 2, windowMs: 60_000 }, T0 + 3_000)).toEqual({
        allowed: false,
        retryAfterSeconds: 58,
        remaining: 0,
        limit: 2,
      });
      expect(await store.hit(user("a"), wide, T0 + 3_000)).toMatchObject({ allowed: true, remaining: 1 });
    });

    it("keeps keys independent, including a user and a grant with the same id", async () => {
      const rule = { limit: 1, windowMs: 60_000 };
      expect((await store.hit(user("x"), rule, T0)).allowed).toBe(true);
      expect((await store.hit(chatGrantKey(appId, "x"), rule, T0)).allowed).toBe(true);
      expect((await store.hit(user("y"), rule, T0)).allowed).toBe(true);
      expect((await store.hit(user("x"), rule, T0)).allowed).toBe(false);
    });

    it("lets exactly one of two simultaneous hits through when one slot is left", async () => {
      const rule = { limit: 2, windowMs: 60_000 };
      await store.hit(user("a"), rule, T0);
      const both = await burst(user("a"), rule, T0 + 1, 2);
      expect(both.filter((d) => d.allowed)).toHaveLength(1);
      expect(both.find((d) => !d.allowed)).toMatchObject({ retryAfterSeconds: 60, remaining: 0 });
    });

    it("lets exactly `limit` of many simultaneous hits through", async () => {
      const rule = { limit: 10, windowMs: 60_000 };
      const decisions = await burst(user("a"), rule, T0, 50);
      expect(decisions.filter((d) => d.allowed)).toHaveLength(10);
      expect(decisions.filter((d) => d.allowed).map((d) => d.remaining)).toEqual(
        expect.arrayContaining([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]),
      );
    });

    it("counts every request that arrives in the same millisecond", async () => {
      const rule = { limit: 500, windowMs: 60_000 };
      const decisions = await burst(user("a"), rule, T0, 500);
      expect(decisions.every((d) => d.allowed)).toBe(true);
      expect(await store.hit(user("a"), rule, T0)).toMatchObject({ allowed: false, retryAfterSeconds: 60 });
    });

    it("handles large limits", async () => {
      const huge = { limit: 1_000_000_000, windowMs: 3_600_000 };
      await burst(user("a"), huge, T0, 100);
      expect(await store.hit(user("a"), huge, T0 + 1)).toMatchObject({
        allowed: true,
        remaining: 999_999_899,
      });

      const rule = { limit: 5_000, windowMs: 60_000 };
      for (let batch = 0; batch < 10; batch++) await burst(user("b"), rule, T0 + batch, 500);
      expect(await store.hit(user("b"), rule, T0 + 59_999)).toMatchObject({
        allowed: false,
        retryAfterSeconds: 1,
      });
      // The first batch of 500 leaves together, freeing 500 slots at once.
      expect(await store.hit(user("b"), rule, T0 + 60_000)).toMatchObject({ allowed: true, remaining: 499 });
    });

    it("rejects an invalid rule or clock reading with RangeError", async () => {
      await expect(store.hit(user("a"), { limit: -1, windowMs: 1_000 }, T0)).rejects.toThrow(RangeError);
      await expect(store.hit(user("a"), { limit: 1, windowMs: 0 }, T0)).rejects.toThrow(RangeError);
      await expect(store.hit(user("a"), { limit: 1, windowMs: 1_000 }, Number.NaN)).rejects.toThrow(
        RangeError,
      );
    });

    it("rejects hits after close, and close can be called again", async () => {
      await store.close();
      await expect(store.hit(user("a"), RL_CHAT, T0)).rejects.toThrow();
      await expect(store.close()).resolves.toBeUndefined();
    });

    it("decides exactly like decide() for any sequence of hits, even when the clock steps back", async () => {
      let run = 0;
      const rule = fc.record({
        limit: fc.integer({ min: 0, max: 5 }),
        windowMs: fc.constantFrom(10_000, 15_500, 60_000),
      });
      const steps = fc.array(fc.integer({ min: -3_000, max: 9_000 }), { maxLength: 30 });
      await fc.assert(
        fc.asyncProperty(rule, steps, async (r, gaps) => {
          const key = user(`property-${run++}`);
          let log: number[] = [];
          let now = T0;
          for (const gap of gaps) {
            now += gap;
            const expected = decide(log, r, now);
            log = expected.log;
            const { log: _, ...outcome } = expected;
            expect(await store.hit(key, r, now)).toEqual({ ...outcome, limit: r.limit });
          }
        }),
        { numRuns: 100 },
      );
    });
  });
}
