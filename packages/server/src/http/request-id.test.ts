import { describe, expect, it } from "vitest";
import { newRequestId } from "./request-id.js";

describe("newRequestId", () => {
  it("is req_ and 32 hex digits, the first 12 of them the millisecond time", () => {
    const id = newRequestId(Date.UTC(2026, 10, 27, 12, 0, 0, 5));
    expect(id).toMatch(/^req_[0-9a-f]{32}$/);
    expect(Number.parseInt(id.slice(4, 16), 16)).toBe(Date.UTC(2026, 10, 27, 12, 0, 0, 5));
  });

  it("sorts ids of later milliseconds after earlier ones, so index inserts append", () => {
    const ids = [3, 1, 2].map((ms) => newRequestId(1_790_000_000_000 + ms));
    expect([...ids].sort()).toEqual([ids[1], ids[2], ids[0]]);
  });

  it("differs between two ids of the same millisecond", () => {
    const ids = new Set(Array.from({ length: 1000 }, () => newRequestId(1_790_000_000_000)));
    expect(ids.size).toBe(1000);
  });
});
