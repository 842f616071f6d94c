import { describe, expect, it } from "vitest";
import { isRetryable, MAX_RETRY_AFTER_MS, parseRetryAfterMs, retryDelayMs } from "./retry.js";

const base = { idempotent: true, retriesLeft: 2, status: undefined, shouldRetryHeader: null };

describe("isRetryable", () => {
  it("retries a failure without any answer on an idempotent call", () => {
    expect(isRetryable(base)).toBe(true);
  });

  it("retries a 429 on an idempotent call", () => {
    expect(isRetryable({ ...base, status: 429 })).toBe(true);
  });

  it("never retries a non-idempotent call, even after a network error", () => {
    expect(isRetryable({ ...base, idempotent: false })).toBe(false);
    expect(isRetryable({ ...base, idempotent: false, status: 429 })).toBe(false);
  });

  it.each([400, 401, 402, 403, 404, 413, 500, 502, 503])("never retries a %i", (status) => {
    expect(isRetryable({ ...base, status })).toBe(false);
  });

  it("retries a 503 that says x-should-retry: true (sent before any work started), but not another call's", () => {
    expect(isRetryable({ ...base, status: 503, shouldRetryHeader: "true" })).toBe(true);
    expect(isRetryable({ ...base, status: 503, shouldRetryHeader: "true", idempotent: false })).toBe(false);
    expect(isRetryable({ ...base, status: 500, shouldRetryHeader: "true" })).toBe(false);
  });

  it("never retries when the server says x-should-retry: false", () => {
    expect(isRetryable({ ...base, status: 429, shouldRetryHeader: "false" })).toBe(false);
  });

  it("stops when no retries are left", () => {
    expect(isRetryable({ ...base, retriesLeft: 0 })).toBe(false);
  });
});

describe("parseRetryAfterMs", () => {
  const now = Date.UTC(2026, 0, 1, 12, 0, 0);

  it("reads delta-seconds", () => {
    expect(parseRetryAfterMs("60", now)).toBe(60_000);
    expect(parseRetryAfterMs(" 0 ", now)).toBe(0);
  });

  it("reads an HTTP date relative to now, never negative", () => {
    expect(parseRetryAfterMs(new Date(now + 5000).toUTCString(), now)).toBe(5000);
    expect(parseRetryAfterMs(new Date(now - 5000).toUTCString(), now)).toBe(0);
  });

  it("reads fractional seconds as seconds, not as a date the lenient Date.parse makes of them (2001)", () => {
    expect(parseRetryAfterMs("1.5", now)).toBe(1500);
    expect(parseRetryAfterMs("30.25", now)).toBe(30_250);
    // Neither seconds nor an HTTP date: ignored (backoff), never "retry at once".
    expect(parseRetryAfterMs("-1", now)).toBeUndefined();
    expect(parseRetryAfterMs("2.5.1", now)).toBeUndefined();
  });

  it("ignores a missing or unreadable value", () => {
    expect(parseRetryAfterMs(null, now)).toBeUndefined();
    expect(parseRetryAfterMs("soon", now)).toBeUndefined();
  });
});

describe("retryDelayMs", () => {
  it("waits exactly what Retry-After says", () => {
    expect(retryDelayMs(0, 7000, 0.9)).toBe(7000);
    expect(retryDelayMs(1, MAX_RETRY_AFTER_MS, 0.9)).toBe(MAX_RETRY_AFTER_MS);
  });

  it("refuses to wait longer than 60 s inside a request", () => {
    expect(retryDelayMs(0, MAX_RETRY_AFTER_MS + 1, 0)).toBeUndefined();
  });

  it("backs off exponentially from 500 ms up to 8 s without Retry-After", () => {
    expect([0, 1, 2, 3, 4, 5, 10].map((retry) => retryDelayMs(retry, undefined, 0))).toEqual([
      500, 1000, 2000, 4000, 8000, 8000, 8000,
    ]);
  });

  it("shortens each backoff by up to a quarter of jitter", () => {
    expect(retryDelayMs(1, undefined, 0.999999)).toBe(750);
    expect(retryDelayMs(1, undefined, 0.5)).toBe(875);
  });
});
