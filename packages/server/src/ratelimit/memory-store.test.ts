import { afterEach, describe, expect, it, vi } from "vitest";
import { rateLimitStoreContract } from "./contract.js";
import { MemoryRateLimitStore } from "./memory-store.js";

rateLimitStoreContract("memory", () => new MemoryRateLimitStore());

const T0 = 1_700_000_000_000;
const minute = { limit: 2, windowMs: 60_000 };
const second = { limit: 2, windowMs: 1_000 };

describe("MemoryRateLimitStore", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("lets a flood of new keys displace only keys of its own partition: one app's chat users, not another app's nor a sign-in throttle", async () => {
    const store = new MemoryRateLimitStore({ maxKeys: 3 });
    const limited = [
      "rl:payer:signin:email-ip:10.0.0.1 alice@example.com",
      "rl:chat:victimapp:user:bob",
      "rl:sessions:victimapp",
    ];
    for (const key of limited) {
      await store.hit(key, minute, T0);
      await store.hit(key, minute, T0);
    }
    for (let i = 0; i < 10; i++) await store.hit(`rl:chat:floodapp:user:made-up-${i}`, minute, T0 + 1);
    for (const key of limited) expect((await store.hit(key, minute, T0 + 2)).allowed, key).toBe(false);
    expect(store.size).toBe(3 + 3);
  });

  it("when full, evicts the least recently used key if its window is empty", async () => {
    const store = new MemoryRateLimitStore({ maxKeys: 2 });
    await store.hit("short", second, T0);
    await store.hit("long", minute, T0 + 1);
    await store.hit("new", minute, T0 + 2_000);
    expect(store.size).toBe(2);
    await store.hit("long", minute, T0 + 2_001);
    expect((await store.hit("long", minute, T0 + 2_002)).allowed).toBe(false);
  });

  it("when full, evicts keys whose window is empty before any live key", async () => {
    const store = new MemoryRateLimitStore({ maxKeys: 3 });
    await store.hit("live-a", minute, T0);
    await store.hit("short", second, T0 + 1);
    await store.hit("live-b", minute, T0 + 2);
    await store.hit("new", minute, T0 + 5_000);
    expect(store.size).toBe(3);
    // live-a, the least recently used, kept its counted request.
    await store.hit("live-a", minute, T0 + 5_001);
    expect((await store.hit("live-a", minute, T0 + 5_002)).allowed).toBe(false);
  });

  it("when full of live keys, evicts the least recently used one", async () => {
    const store = new MemoryRateLimitStore({ maxKeys: 2 });
    await store.hit("a", minute, T0);
    await store.hit("b", minute, T0 + 1);
    await store.hit("a", minute, T0 + 2);
    await store.hit("c", minute, T0 + 3);
    // "b" was forgotten, "a" (used more recently) kept both of its requests.
    expect((await store.hit("a", minute, T0 + 4)).allowed).toBe(false);
    expect(await store.hit("b", minute, T0 + 5)).toMatchObject({ allowed: true, remaining: 1 });
    expect(store.size).toBe(2);
  });

  /** Full of three keys: live "c" and "d", then "b" (100 ms window) most recently used; last scan at T0+3. */
  async function fullWithEmptyKeyBehindLiveOnes(): Promise<MemoryRateLimitStore> {
    const store = new MemoryRateLimitStore({ maxKeys: 3 });
    const blink = { limit: 2, windowMs: 100 };
    await store.hit("a", minute, T0);
    await store.hit("b", blink, T0 + 1);
    await store.hit("c", minute, T0 + 2);
    await store.hit("d", minute, T0 + 3); // full: scans, finds nothing empty, evicts "a"
    await store.hit("b", blink, T0 + 4); // order now c, d, b; "b" empties at T0+104
    return store;
  }

  it("when full of live keys at the front, scans for an empty window once a second has passed", async () => {
    const store = await fullWithEmptyKeyBehindLiveOnes();
    await store.hit("e", minute, T0 + 1_003);
    expect(await store.hit("c", minute, T0 + 1_004)).toMatchObject({ allowed: true, remaining: 0 });
  });

  it("between scans, evicts the least recently used key instead of scanning again", async () => {
    const store = await fullWithEmptyKeyBehindLiveOnes();
    await store.hit("e", minute, T0 + 1_002);
    // "c" was forgotten although "b" had emptied: a flood of new keys costs O(1) each, not O(keys).
    expect(await store.hit("c", minute, T0 + 1_003)).toMatchObject({ allowed: true, remaining: 1 });
  });

  it("does not evict anyone for a hit with an invalid rule", async () => {
    const store = new MemoryRateLimitStore({ maxKeys: 1 });
    await store.hit("a", { limit: 1, windowMs: 60_000 }, T0);
    await expect(store.hit("b", { limit: 1, windowMs: -1 }, T0)).rejects.toThrow(RangeError);
    expect((await store.hit("a", { limit: 1, windowMs: 60_000 }, T0)).allowed).toBe(false);
  });

  it("sweep() drops exactly the keys whose window is empty", async () => {
    const store = new MemoryRateLimitStore();
    await store.hit("short", second, T0);
    await store.hit("long", minute, T0);
    await store.hit("rejected-only", { limit: 0, windowMs: 60_000 }, T0);
    expect(store.sweep(T0 + 999)).toBe(1);
    expect(store.sweep(T0 + 1_000)).toBe(1);
    expect(store.size).toBe(1);
    expect(store.sweep(T0 + 60_000)).toBe(1);
    expect(store.size).toBe(0);
  });

  it("sweeps in the background on its interval with its own clock, and stops at close", async () => {
    vi.useFakeTimers();
    let now = T0;
    const store = new MemoryRateLimitStore({ sweepIntervalMs: 10_000, clock: () => now });
    await store.hit("a", second, T0);
    now = T0 + 5_000;
    vi.advanceTimersByTime(9_999);
    expect(store.size).toBe(1);
    vi.advanceTimersByTime(1);
    expect(store.size).toBe(0);
    expect(vi.getTimerCount()).toBe(1);
    await store.close();
    expect(vi.getTimerCount()).toBe(0);
  });

  it("does not keep the process alive with its sweep timer", async () => {
    const setIntervalSpy = vi.spyOn(globalThis, "setInterval");
    const store = new MemoryRateLimitStore({ sweepIntervalMs: 60_000 });
    const timer = setIntervalSpy.mock.results[0]?.value as NodeJS.Timeout;
    expect(timer.hasRef()).toBe(false);
    await store.close();
    setIntervalSpy.mockRestore();
  });

  it("refuses a key cap or sweep interval that is not positive", () => {
    expect(() => new MemoryRateLimitStore({ maxKeys: 0 })).toThrow(RangeError);
    expect(() => new MemoryRateLimitStore({ maxKeys: 1.5 })).toThrow(RangeError);
    expect(() => new MemoryRateLimitStore({ sweepIntervalMs: 0 })).toThrow(RangeError);
    expect(() => new MemoryRateLimitStore({ sweepIntervalMs: Number.POSITIVE_INFINITY })).toThrow(RangeError);
  });

  it("keeps hits cheap for a key with a huge limit and a full window", async () => {
    // 300k hits, ~100k live at a time: a store copying or shifting the log per hit would take minutes.
    const store = new MemoryRateLimitStore();
    const rule = { limit: 1_000_000, windowMs: 100_000 };
    let last = await store.hit("busy", rule, T0);
    for (let i = 1; i < 300_000; i++) last = await store.hit("busy", rule, T0 + i);
    expect(last).toMatchObject({ allowed: true, remaining: 900_000 });
  });
});
