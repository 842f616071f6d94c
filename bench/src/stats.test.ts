import { describe, expect, it } from "vitest";
import { parseCpuSeconds, parseRssBytes, parseSystemTicks } from "./proc.js";
import { added, mean, median, percentile, ratio, summarize } from "./stats.js";

describe("percentile (nearest rank)", () => {
  it("returns the median of an odd sample whatever its order", () => {
    expect(percentile([5, 1, 3, 2, 4], 0.5)).toBe(3);
  });

  it("returns the smallest value with at least q of the samples at or below it", () => {
    const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(hundred, 0.99)).toBe(99);
    expect(percentile(hundred, 0.5)).toBe(50);
    expect(percentile(hundred, 1)).toBe(100);
    expect(percentile(hundred, 0)).toBe(1);
  });

  it("is undefined for an empty sample and refuses q outside [0, 1]", () => {
    expect(percentile([], 0.5)).toBeUndefined();
    expect(() => percentile([1], 1.5)).toThrow(RangeError);
    expect(() => percentile([1], Number.NaN)).toThrow(RangeError);
  });

  it("does not reorder its input", () => {
    const values = [3, 1, 2];
    percentile(values, 0.5);
    expect(values).toEqual([3, 1, 2]);
  });
});

describe("mean, ratio and added", () => {
  it("takes the middle value, or the mean of the two middle ones", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeUndefined();
  });

  it("averages, and is undefined for nothing", () => {
    expect(mean([1, 2, 3, 6])).toBe(3);
    expect(mean([])).toBeUndefined();
  });

  it("divides only by a positive measured value", () => {
    expect(ratio(90, 100)).toBeCloseTo(0.9);
    expect(ratio(1, 0)).toBeUndefined();
    expect(ratio(undefined, 1)).toBeUndefined();
  });

  it("subtracts only two measured values, keeping the sign", () => {
    expect(added(1.25, 1)).toBeCloseTo(0.25);
    expect(added(0.9, 1)).toBeCloseTo(-0.1);
    expect(added(1, undefined)).toBeUndefined();
  });

  it("summarizes a latency sample", () => {
    expect(summarize([4, 1, 3, 2])).toEqual({ count: 4, p50: 2, p90: 4, p99: 4, mean: 2.5, max: 4 });
  });
});

describe("/proc parsing", () => {
  it("reads utime + stime even when the command name holds spaces and parentheses", () => {
    const stat = "4242 (node (bench) x) S 1 4242 4242 0 -1 4194560 1 0 0 0 250 50 0 0 20 0 11 0 100 0 0";
    expect(parseCpuSeconds(stat)).toBeCloseTo(3);
  });

  it("reads VmRSS in bytes", () => {
    expect(parseRssBytes("Name:\tnode\nVmRSS:\t  102400 kB\nVmSwap:\t0 kB\n")).toBe(100 * 1024 * 1024);
    expect(() => parseRssBytes("Name:\tnode\n")).toThrow();
  });

  it("reads the machine's total, idle and stolen ticks", () => {
    expect(parseSystemTicks("cpu  100 0 50 800 10 0 5 35 0 0\ncpu0 1 2 3\n")).toEqual({
      total: 1000,
      idle: 810,
      steal: 35,
    });
  });
});
