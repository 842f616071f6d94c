import { describe, expect, it } from "vitest";
import { lastMonths } from "./service.js";

describe("lastMonths", () => {
  it("lists the months ending with the current one, oldest first, across a year boundary", () => {
    expect(lastMonths(Date.UTC(2026, 1, 10), 3)).toEqual(["2025-12", "2026-01", "2026-02"]);
    expect(lastMonths(Date.UTC(2026, 11, 31, 23, 59), 6)).toEqual([
      "2026-07",
      "2026-08",
      "2026-09",
      "2026-10",
      "2026-11",
      "2026-12",
    ]);
  });
});
