import { describe, expect, it } from "vitest";
import { displayDuration, displayTime, displayUsd } from "./format.js";

describe("displayUsd", () => {
  it.each([
    [10_000_000_000n, "up", "$10.00"],
    [1_500_000_000n, "up", "$1.50"],
    [21_000n, "up", "$0.000021"],
    [20_001n, "up", "$0.000021"],
    [20_999n, "down", "$0.00002"],
    [0n, "up", "$0.00"],
    [1_234_567_000_000_000n, "down", "$1,234,567.00"],
    [-1_000n, "up", "-$0.000001"],
  ] as const)("shows %s nano-USD rounded %s as %s", (nano, rounding, text) => {
    expect(displayUsd(nano, rounding)).toBe(text);
  });
});

describe("displayDuration and displayTime", () => {
  it("names the largest whole unit", () => {
    expect(displayDuration(86_400)).toBe("1 day");
    expect(displayDuration(30 * 86_400)).toBe("30 days");
    expect(displayDuration(3_600)).toBe("1 hour");
    expect(displayDuration(5_400)).toBe("90 minutes");
    expect(displayDuration(61)).toBe("61 seconds");
  });

  it("shows a moment in UTC to the minute", () => {
    expect(displayTime(Date.UTC(2026, 10, 15, 12, 34, 56))).toBe("2026-11-15 12:34 UTC");
  });
});
