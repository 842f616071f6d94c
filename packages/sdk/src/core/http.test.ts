import { describe, expect, it } from "vitest";
import {
  APIConnectionError,
  APIConnectionTimeoutError,
  APIUserAbortError,
  NotConnectedError,
  RateLimitedError,
  UnavailableError,
} from "./errors.js";
import { type Fetch, HttpClient, type RequestSpec } from "./http.js";
import type { Logger } from "./logger.js";

type Step = Response | Error | "hang";

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** A client whose fetch plays `steps` in order and whose sleep records delays instead of waiting. */
function setup(steps: Step[], maxRetries = 2) {
  const calls: { url: string; init: RequestInit }[] = [];
  const delays: number[] = [];
  const fetch: Fetch = async (input, init = {}) => {
    calls.push({ url: String(input), init });
    const step = steps[calls.length - 1];
    if (step === undefined) throw new Error("no more steps");
    if (step === "hang") {
      return new Promise((_, reject) =>
        init.signal?.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError"))),
      );
    }
    if (step instanceof Error) throw step;
    return step;
  };
  const http = new HttpClient({
    apiUrl: "https://wattfare.test/api/v1",
    fetch,
    timeoutMs: 60_000,
    maxRetries,
    logger: silent,
    sleep: async (ms) => {
      delays.push(ms);
    },
    random: () => 0,
    authorization: () => "Bearer sk_live_app_secret",
  });
  return { http, calls, delays };
}

const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
const errorBody = (code: string, status: number, headers: Record<string, string> = {}) =>
  json({ error: { code, message: `${code} happened` } }, status, headers);
const networkDown = () => new TypeError("fetch failed");

const getStatus: RequestSpec = {
  method: "GET",
  path: "/status",
  query: { appUserId: "u 1" },
  idempotent: true,
};
const postChat: RequestSpec = {
  method: "POST",
  path: "/chat/completions",
  body: { a: 1 },
  idempotent: false,
};

describe("sending", () => {
  it("sends the bearer key, the query and a JSON body to the API root", async () => {
    const { http, calls } = setup([json({ ok: true }), json({ ok: true })]);
    await http.json(getStatus);
    await http.json({ ...postChat, headers: { "x-wattfare-user": "alice" } });
    expect(calls[0]?.url).toBe("https://wattfare.test/api/v1/status?appUserId=u+1");
    const get = new Headers(calls[0]?.init.headers);
    expect(get.get("authorization")).toBe("Bearer sk_live_app_secret");
    expect(get.get("content-type")).toBeNull();
    const post = new Headers(calls[1]?.init.headers);
    expect(post.get("content-type")).toBe("application/json");
    expect(post.get("x-wattfare-user")).toBe("alice");
    expect(calls[1]?.init.body).toBe('{"a":1}');
  });

  it("returns the data with the response and its request id", async () => {
    const { http } = setup([json({ connected: true }, 200, { "x-request-id": "req_9" })]);
    const result = await http.json<{ connected: boolean }>(getStatus);
    expect(result.data).toEqual({ connected: true });
    expect(result.requestId).toBe("req_9");
    expect(result.response.status).toBe(200);
  });

  it("reports a 200 whose body is not JSON as a connection problem, without retrying", async () => {
    const { http, calls } = setup([new Response("<html>login</html>", { status: 200 })]);
    await expect(http.json(getStatus)).rejects.toBeInstanceOf(APIConnectionError);
    expect(calls).toHaveLength(1);
  });

  it("lets a header fetch cannot send surface as the caller's TypeError, not a network error", async () => {
    const { http, calls } = setup([json({})]);
    await expect(http.json({ ...postChat, headers: { "x-wattfare-user": "bad\nid" } })).rejects.toThrow(
      TypeError,
    );
    expect(calls).toHaveLength(0);
  });
});

describe("retries", () => {
  it("retries a network error on an idempotent call after a backoff, then succeeds", async () => {
    const { http, calls, delays } = setup([networkDown(), json({ ok: 1 })]);
    expect((await http.json(getStatus)).data).toEqual({ ok: 1 });
    expect(calls).toHaveLength(2);
    expect(delays).toEqual([500]);
  });

  it("never retries a chat completion, even after a network error", async () => {
    const { http, calls, delays } = setup([networkDown(), json({})]);
    const error = await http.json(postChat).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(APIConnectionError);
    expect((error as APIConnectionError).cause).toBeInstanceOf(TypeError);
    expect(calls).toHaveLength(1);
    expect(delays).toEqual([]);
  });

  it("never retries a rate-limited chat completion either", async () => {
    const { http, calls } = setup([errorBody("rate_limited", 429, { "retry-after": "1" }), json({})]);
    await expect(http.json(postChat)).rejects.toBeInstanceOf(RateLimitedError);
    expect(calls).toHaveLength(1);
  });

  it("waits exactly Retry-After before retrying a 429", async () => {
    const { http, delays } = setup([errorBody("rate_limited", 429, { "retry-after": "7" }), json({})]);
    await http.json(getStatus);
    expect(delays).toEqual([7000]);
  });

  it("throws the RateLimitedError at once when Retry-After is longer than 60 s", async () => {
    const { http, calls, delays } = setup([
      errorBody("rate_limited", 429, { "retry-after": "61" }),
      json({}),
    ]);
    const error = await http.json(getStatus).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RateLimitedError);
    expect((error as RateLimitedError).retryAfterMs).toBe(61_000);
    expect(calls).toHaveLength(1);
    expect(delays).toEqual([]);
  });

  it("never retries a 402", async () => {
    const { http, calls } = setup([errorBody("not_connected", 402, { "x-should-retry": "false" }), json({})]);
    await expect(http.json(getStatus)).rejects.toBeInstanceOf(NotConnectedError);
    expect(calls).toHaveLength(1);
  });

  it("never retries when the server says x-should-retry: false, even on a 429", async () => {
    const { http, calls } = setup([
      errorBody("rate_limited", 429, { "retry-after": "1", "x-should-retry": "false" }),
      json({}),
    ]);
    await expect(http.json(getStatus)).rejects.toBeInstanceOf(RateLimitedError);
    expect(calls).toHaveLength(1);
  });

  it("does not retry a 503: only 429s and network errors are retried", async () => {
    const { http, calls } = setup([errorBody("unavailable", 503), json({})]);
    await expect(http.json(getStatus)).rejects.toBeInstanceOf(UnavailableError);
    expect(calls).toHaveLength(1);
  });

  it("gives up after maxRetries with the last error, backing off exponentially", async () => {
    const { http, calls, delays } = setup([networkDown(), networkDown(), networkDown(), json({})]);
    await expect(http.json(getStatus)).rejects.toBeInstanceOf(APIConnectionError);
    expect(calls).toHaveLength(3);
    expect(delays).toEqual([500, 1000]);
  });

  it("lets a call override maxRetries", async () => {
    const { http, calls } = setup([networkDown(), json({})]);
    await expect(http.json({ ...getStatus, maxRetries: 0 })).rejects.toBeInstanceOf(APIConnectionError);
    expect(calls).toHaveLength(1);
  });
});

describe("timeouts and aborts", () => {
  it("throws APIConnectionTimeoutError when no answer arrives within timeoutMs", async () => {
    const { http } = setup(["hang"]);
    await expect(http.json({ ...getStatus, timeoutMs: 1, maxRetries: 0 })).rejects.toBeInstanceOf(
      APIConnectionTimeoutError,
    );
  });

  it("retries a timed-out idempotent call", async () => {
    const { http, calls } = setup(["hang", json({ ok: true })]);
    expect((await http.json({ ...getStatus, timeoutMs: 1 })).data).toEqual({ ok: true });
    expect(calls).toHaveLength(2);
  });

  it("rejects with APIUserAbortError when the caller aborts, without retrying", async () => {
    const { http, calls } = setup(["hang", json({})]);
    const controller = new AbortController();
    const pending = http.json({ ...getStatus, signal: controller.signal });
    controller.abort();
    await expect(pending).rejects.toBeInstanceOf(APIUserAbortError);
    expect(calls).toHaveLength(1);
  });

  it("does not send at all when the signal is already aborted", async () => {
    const { http, calls } = setup([json({})]);
    await expect(http.json({ ...getStatus, signal: AbortSignal.abort() })).rejects.toBeInstanceOf(
      APIUserAbortError,
    );
    expect(calls).toHaveLength(0);
  });

  it("stops between retries when the caller aborts during the wait", async () => {
    const controller = new AbortController();
    const calls: number[] = [];
    const http = new HttpClient({
      apiUrl: "https://wattfare.test/api/v1",
      fetch: async () => {
        calls.push(1);
        throw networkDown();
      },
      timeoutMs: 60_000,
      maxRetries: 5,
      logger: silent,
      sleep: async (_ms, signal) => {
        controller.abort();
        if (signal?.aborted) throw new Error("sleep interrupted");
      },
      random: () => 0,
      authorization: () => "Bearer k",
    });
    await expect(http.json({ ...getStatus, signal: controller.signal })).rejects.toBeInstanceOf(
      APIUserAbortError,
    );
    expect(calls).toHaveLength(1);
  });
});
