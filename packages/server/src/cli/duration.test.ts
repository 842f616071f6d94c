import { describe, expect, it } from "vitest";
import { parseDuration } from "./duration.js";

describe("parseDuration", () => {
  it.each([
    ["90s", 90_000],
    ["30m", 1_800_000],
    ["24h", 86_400_000],
    ["7d", 604_800_000],
    [" 0s ", 0],
    ["365d", 31_536_000_000],
  ])("reads %j as %i ms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(["24", "90ms", "1y", "366d", "-1h", "1.5h", "999999999999999999d", ""])(
    "refuses %j: a unit is required, from 0s to 365d",
    (text) => {
      expect(() => parseDuration(text)).toThrow(/use a number and a unit/);
    },
  );
});
