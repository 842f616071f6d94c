import { describe, expect, it } from "vitest";
import { periodBounds, periodOf } from "./period.js";

describe("periodOf", () => {
  it("names the UTC calendar month, at both edges of a month, in any order of asking", () => {
    const firstOfDec = Date.UTC(2026, 11, 1);
    expect(periodOf(Date.UTC(2026, 10, 15, 12))).toBe("2026-11");
    expect(periodOf(firstOfDec - 1)).toBe("2026-11");
    expect(periodOf(firstOfDec)).toBe("2026-12");
    expect(periodOf(firstOfDec - 1)).toBe("2026-11");
    expect(periodOf(Date.UTC(2027, 0, 1) - 1)).toBe("2026-12");
    expect(periodOf(Date.UTC(2027, 0, 1))).toBe("2027-01");
    expect(periodOf(Date.UTC(2024, 1, 29, 23, 59, 59, 999))).toBe("2024-02");
    expect(periodOf(Date.UTC(2024, 2, 1))).toBe("2024-03");
  });

  it("agrees with periodBounds for every millisecond it names", () => {
    for (const ms of [
      Date.UTC(2026, 10, 1),
      Date.UTC(2026, 10, 30, 23, 59, 59, 999),
      Date.UTC(2025, 11, 31, 23),
    ]) {
      const { start, end } = periodBounds(periodOf(ms));
      expect(ms / 1000).toBeGreaterThanOrEqual(start);
      expect(ms / 1000).toBeLessThan(end);
    }
  });
});
