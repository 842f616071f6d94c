/**
 * The server client against a real Wattfare in front of the real simulator: every method, the typed
 * error for each failure, retries driven by Wattfare's own rate limiter and a manual clock, and proof
 * that streams stop the model and bill exactly what was generated.
 */
import { getEventListeners } from "node:events";
import { createServer } from "node:net";
import { type ChatHarness, createChatHarness, ManualClock } from "@wattfare/server/testing";
import { Stream as OpenAIStream } from "openai/streaming";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { ChatCompletionChunk } from "../core/chat-types.js";
import {
  APIConnectionError,
  AuthError,
  BudgetExceededError,
  FundingInvalidError,
  InvalidRequestError,
  NotConnectedError,
  NotFoundError,
  PayloadTooLargeError,
  RateLimitedError,
  UpstreamError,
} from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import { type ClientOptions, Wattfare } from "./client.js";

let h: ChatHarness;
afterEach(async () => {
  vi.unstubAllEnvs();
  await h?.close();
});

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {} };
const hello = [{ role: "user" as const, content: "Tell me a story" }];
const model = "openai/gpt-4o-mini";

/** A harness whose simulator shares Wattfare's manual clock, so reconciliation can be driven. */
async function start(options: Parameters<typeof createChatHarness>[0] = {}): Promise<ChatHarness> {
  const clock = new ManualClock();
  h = await createChatHarness({
    clock,
    ...options,
    sim: { responseTokens: 12, now: () => clock.now(), ...options.sim },
  });
  return h;
}

function wattfare(options: ClientOptions = {}): Wattfare {
  return new Wattfare({ secretKey: h.secretKey, baseUrl: h.url, logger: silent, ...options });
}

async function expectBilledExactly(key: string): Promise<void> {
  await h.drain();
  await h.reconcile();
  expect(await h.openReservations()).toBe(0);
  expect(await h.ledgerTotal()).toBe(h.sim.control.billedNano(key));
}

function jwtClaims(token: string): Record<string, unknown> {
  const payload = token.split(".")[1] ?? "";
  return JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as Record<string, unknown>;
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return typeof address === "object" && address ? address.port : 0;
}

describe("new Wattfare()", () => {
  it("reads WATTFARE_SECRET_KEY and WATTFARE_BASE_URL when no options are given", async () => {
    await start();
    vi.stubEnv("WATTFARE_SECRET_KEY", `${h.secretKey}\n`);
    vi.stubEnv("WATTFARE_BASE_URL", `${h.url}/`);
    const client = new Wattfare({ logger: silent });
    expect(client.baseUrl).toBe(h.url);
    expect((await client.status("alice")).connected).toBe(false);
  });

  it("prefers options over the environment", async () => {
    await start();
    vi.stubEnv("WATTFARE_SECRET_KEY", "sk_live_someoneelse1_AAAA");
    vi.stubEnv("WATTFARE_BASE_URL", "https://elsewhere.example");
    const client = wattfare();
    expect(client.baseUrl).toBe(h.url);
    expect((await client.status("alice")).connected).toBe(false);
  });

  it("defaults to https://wattfare.com", () => {
    vi.stubEnv("WATTFARE_BASE_URL", undefined);
    expect(new Wattfare({ secretKey: "sk_live_abcdefgh_secret" }).baseUrl).toBe("https://wattfare.com");
  });

  it("defaults to https://wattfare.com also when WATTFARE_BASE_URL is set but blank, as the secret key's blank variable counts as unset", () => {
    // `WATTFARE_BASE_URL=${WATTFARE_BASE_URL}` in a compose file sets it to "" when the host has none.
    vi.stubEnv("WATTFARE_BASE_URL", "");
    expect(new Wattfare({ secretKey: "sk_live_abcdefgh_secret" }).baseUrl).toBe("https://wattfare.com");
    vi.stubEnv("WATTFARE_BASE_URL", " \n");
    expect(new Wattfare({ secretKey: "sk_live_abcdefgh_secret" }).baseUrl).toBe("https://wattfare.com");
  });

  it("refuses to start without a secret key, naming the variable", () => {
    vi.stubEnv("WATTFARE_SECRET_KEY", undefined);
    expect(() => new Wattfare()).toThrow(/WATTFARE_SECRET_KEY/);
    expect(() => new Wattfare({ secretKey: "   " })).toThrow(/WATTFARE_SECRET_KEY/);
  });

  it("refuses something that is not a secret key, such as a session token", () => {
    expect(() => new Wattfare({ secretKey: "eyJhbGciOiJIUzI1NiJ9.e30.sig" })).toThrow(
      /not a Wattfare secret key/,
    );
  });

  it("refuses a baseUrl that already ends in /api/v1, or is not an http(s) URL", () => {
    const secretKey = "sk_live_abcdefgh_secret";
    expect(() => new Wattfare({ secretKey, baseUrl: "https://wattfare.com/api/v1" })).toThrow(
      /appends \/api\/v1/,
    );
    expect(() => new Wattfare({ secretKey, baseUrl: "wattfare.com" })).toThrow(/absolute URL/);
    expect(() => new Wattfare({ secretKey, baseUrl: "ftp://wattfare.com" })).toThrow(/https/);
  });

  it("refuses a timeout no timer can hold, and retries that are not a whole number, for the client and per call", async () => {
    const secretKey = "sk_live_abcdefgh_secret";
    const thirtyDays = 30 * 24 * 3600 * 1000; // a timer would fire after 1 ms instead
    expect(() => new Wattfare({ secretKey, timeoutMs: thirtyDays })).toThrow(/timeoutMs/);
    expect(() => new Wattfare({ secretKey, timeoutMs: 0 })).toThrow(/timeoutMs/);
    expect(() => new Wattfare({ secretKey, maxRetries: 1.5 })).toThrow(/maxRetries/);
    const fetch = () => Promise.reject(new Error("must not be called"));
    const client = new Wattfare({ secretKey, fetch });
    await expect(client.status("u", { timeoutMs: thirtyDays })).rejects.toThrow(/timeoutMs/);
    await expect(client.status("u", { maxRetries: -1 })).rejects.toThrow(/maxRetries/);
  });

  it("stops listening to the caller's signal once a stream is aborted, even if it is never read", async () => {
    const sse = () =>
      new Response(new ReadableStream({ start: (c) => c.enqueue(new TextEncoder().encode(": wait\n\n")) }), {
        headers: { "content-type": "text/event-stream" },
      });
    const client = new Wattfare({
      secretKey: "sk_live_abcdefgh_secret",
      fetch: async () => sse(),
      logger: silent,
    });
    const controller = new AbortController();
    for (let i = 0; i < 3; i++) {
      const stream = await client.chat.completions.create(
        { model: "m", messages: [{ role: "user", content: "hi" }], stream: true },
        { user: "u", signal: controller.signal },
      );
      stream.abort();
    }
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
  });

  it("takes the origin with or without a trailing slash, and refuses a path: Wattfare serves from the root", () => {
    const client = new Wattfare({ secretKey: "sk_live_abcdefgh_secret", baseUrl: "https://example.com/" });
    expect(client.openaiOptions({ user: "u" }).baseURL).toBe("https://example.com/api/v1");
    expect(
      () => new Wattfare({ secretKey: "sk_live_abcdefgh_secret", baseUrl: "https://example.com/wattfare/" }),
    ).toThrow(/without a path/);
  });

  it("warns when the secret key would cross the network over plain http", () => {
    const warnings: string[] = [];
    const logger: Logger = { ...silent, warn: (message) => warnings.push(message) };
    new Wattfare({ secretKey: "sk_live_abcdefgh_secret", baseUrl: "http://wattfare.internal", logger });
    new Wattfare({ secretKey: "sk_live_abcdefgh_secret", baseUrl: "http://localhost:8080", logger });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/unencrypted/);
  });

  it("refuses to run in a browser, where the secret key would be public", () => {
    vi.stubGlobal("document", {});
    try {
      expect(() => new Wattfare({ secretKey: "sk_live_abcdefgh_secret" })).toThrow(/never run in a browser/);
    } finally {
      vi.unstubAllGlobals();
    }
  });
});

describe("sessions.create", () => {
  it("mints a 10-minute session token for the user with the requested monthly limit", async () => {
    await start();
    const session = await wattfare().sessions.create({
      appUserId: "alice",
      requestLimit: { monthlyUsd: 20 },
    });
    expect(session.expiresAt).toBe(Math.floor(h.clock.now() / 1000) + 600);
    expect(jwtClaims(session.token)).toMatchObject({ typ: "user", sub: "alice", app: h.appId, lim: 20 });
  });

  it("mints without a limit when none is requested", async () => {
    await start();
    const session = await wattfare().sessions.create({ appUserId: "bob" });
    expect(jwtClaims(session.token).lim).toBeUndefined();
  });

  it("throws InvalidRequestError naming the field for an invalid user id", async () => {
    await start();
    const error = await wattfare()
      .sessions.create({ appUserId: "has spaces" })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidRequestError);
    expect(error).toMatchObject({ status: 400, code: "invalid_request", param: "appUserId" });
  });

  it("waits out Wattfare's Retry-After on a 429 and then succeeds", async () => {
    await start();
    await h.store.setAppLimits(h.appId, { sessionsPerMinute: 1 });
    const delays: number[] = [];
    // The wait is the test's manual clock moving, so Wattfare's own sliding window really frees up.
    const client = wattfare({
      sleep: async (ms) => {
        delays.push(ms);
        h.clock.advance(ms);
      },
    });
    await client.sessions.create({ appUserId: "alice" });
    const second = await client.sessions.create({ appUserId: "alice" }).withResponse();
    expect(delays).toEqual([60_000]);
    expect(jwtClaims(second.data.token).sub).toBe("alice");
  });

  it("throws RateLimitedError with retryAfterMs when retries are off", async () => {
    await start();
    await h.store.setAppLimits(h.appId, { sessionsPerMinute: 1 });
    const client = wattfare({ maxRetries: 0 });
    await client.sessions.create({ appUserId: "alice" });
    const error = await client.sessions.create({ appUserId: "alice" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RateLimitedError);
    expect((error as RateLimitedError).retryAfterMs).toBe(60_000);
  });

  it("throws AuthError for a well-formed but wrong secret key", async () => {
    await start();
    const error = await wattfare({ secretKey: `sk_live_${h.appId}_${"x".repeat(43)}` })
      .sessions.create({ appUserId: "alice" })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthError);
    expect(error).toMatchObject({ status: 401, code: "auth" });
  });
});

describe("status", () => {
  it("reports a user who never connected as not connected, with zero amounts", async () => {
    await start();
    const status = await wattfare().status("nobody");
    expect(status).toMatchObject({
      connected: false,
      limits: { monthlyUsd: 0 },
      usage: { monthlyUsd: 0 },
      remainingUsd: 0,
      funding: "missing",
      paused: false,
    });
    expect(status.period.end).toBeGreaterThan(status.period.start);
  });

  it("reports a connected user's cap, settled usage and remaining budget", async () => {
    await start();
    await h.connect("alice", 5);
    const client = wattfare();
    await client.chat.completions.create({ model, messages: hello }, { user: "alice" });
    await h.drain();
    const status = await client.status("alice");
    expect(status).toMatchObject({
      connected: true,
      limits: { monthlyUsd: 5 },
      funding: "ok",
      paused: false,
    });
    expect(status.usage.monthlyUsd).toBeGreaterThan(0);
    expect(status.remainingUsd).toBeLessThan(5);
  });

  it("retries an unreachable Wattfare, then throws APIConnectionError", async () => {
    await start();
    const delays: number[] = [];
    const client = wattfare({
      baseUrl: `http://127.0.0.1:${await closedPort()}`,
      sleep: async (ms) => void delays.push(ms),
    });
    await expect(client.status("alice")).rejects.toBeInstanceOf(APIConnectionError);
    expect(delays).toHaveLength(2);
  });

  it("throws NotFoundError when baseUrl points at a server without Wattfare's API", async () => {
    await start();
    await expect(wattfare({ baseUrl: h.sim.url }).status("alice")).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe("chat.completions.create", () => {
  it("answers a completion in OpenAI's shape and Wattfare bills exactly what the provider charged", async () => {
    await start();
    const key = await h.connect("alice", 5);
    const completion = await wattfare().chat.completions.create(
      { model, messages: hello },
      { user: "alice" },
    );
    expect(completion.object).toBe("chat.completion");
    expect(completion.choices[0]?.message.role).toBe("assistant");
    expect(completion.choices[0]?.message.content?.length).toBeGreaterThan(0);
    expect(completion.usage?.completion_tokens).toBe(12);
    expect(h.sim.control.requests().at(-1)?.body).toMatchObject({ model, messages: hello });
    await expectBilledExactly(key);
  });

  it("streams chunks ending with usage, and Wattfare bills exactly", async () => {
    await start();
    const key = await h.connect("alice", 5);
    const stream = await wattfare().chat.completions.create(
      { model, messages: hello, stream: true },
      { user: "alice" },
    );
    let text = "";
    let usage: ChatCompletionChunk["usage"];
    for await (const chunk of stream) {
      expect(chunk.object).toBe("chat.completion.chunk");
      text += chunk.choices[0]?.delta.content ?? "";
      usage ??= chunk.usage;
    }
    expect(text.length).toBeGreaterThan(0);
    expect(usage?.completion_tokens).toBe(12);
    await expectBilledExactly(key);
  });

  it("shows Wattfare's max_tokens decision and the request id through withResponse()", async () => {
    await start();
    await h.connect("alice", 5);
    const { data, response, requestId } = await wattfare()
      .chat.completions.create({ model, messages: hello }, { user: "alice" })
      .withResponse();
    expect(data.choices).toHaveLength(1);
    expect(response.headers.get("x-wattfare-max-tokens")).toBe("4096");
    expect(requestId).toMatch(/^req_/);
  });

  it("stops the model and bills only what was generated when the loop breaks early", async () => {
    await start({ sim: { responseTokens: 200 } });
    const key = await h.connect("alice", 5);
    h.sim.control.setFaults({ hangAfterChunks: 3 }); // the model goes quiet: only our break can end it
    const { data: stream, response } = await wattfare()
      .chat.completions.create({ model, messages: hello, stream: true }, { user: "alice" })
      .withResponse();
    let chunks = 0;
    for await (const _ of stream) if (++chunks === 2) break;
    const generation = await h.sim.control.waitForGeneration(response.headers.get("x-generation-id") ?? "");
    expect(generation.cancelled).toBe(true);
    expect(generation.completionTokens).toBeLessThan(200);
    await expectBilledExactly(key);
  });

  it("pipes the stream as SSE bytes that the official openai parser reads back", async () => {
    await start();
    const key = await h.connect("alice", 5);
    const stream = await wattfare().chat.completions.create(
      { model, messages: hello, stream: true },
      { user: "alice" },
    );
    const browserResponse = new Response(stream.toReadableStream(), {
      headers: { "content-type": "text/event-stream" },
    });
    let text = "";
    let sawUsage = false;
    for await (const chunk of OpenAIStream.fromSSEResponse<ChatCompletionChunk>(
      browserResponse,
      new AbortController(),
    )) {
      text += chunk.choices[0]?.delta.content ?? "";
      if (chunk.usage) sawUsage = true;
    }
    expect(text.length).toBeGreaterThan(0);
    expect(sawUsage).toBe(true);
    await expectBilledExactly(key);
  });

  it("stops the model when the piped stream is cancelled (the browser left)", async () => {
    await start({ sim: { responseTokens: 200 } });
    const key = await h.connect("alice", 5);
    h.sim.control.setFaults({ hangAfterChunks: 3 });
    const { data: stream, response } = await wattfare()
      .chat.completions.create({ model, messages: hello, stream: true }, { user: "alice" })
      .withResponse();
    const reader = stream.toReadableStream().getReader();
    await reader.read();
    await reader.cancel();
    const generation = await h.sim.control.waitForGeneration(response.headers.get("x-generation-id") ?? "");
    expect(generation.cancelled).toBe(true);
    await expectBilledExactly(key);
  });

  it("throws UpstreamError from the loop when the provider fails mid-stream", async () => {
    await start();
    const key = await h.connect("alice", 5);
    h.sim.control.setFaults({ errorAfterChunks: 3 });
    const stream = await wattfare().chat.completions.create(
      { model, messages: hello, stream: true },
      { user: "alice" },
    );
    let chunks = 0;
    const error = await (async () => {
      for await (const _ of stream) chunks++;
    })().catch((e: unknown) => e);
    expect(chunks).toBe(3);
    expect(error).toBeInstanceOf(UpstreamError);
    expect(error).toMatchObject({ code: "upstream", status: 502, message: "Provider returned error" });
    await expectBilledExactly(key);
  });

  it("resolves a non-stream completion whose provider failed part-way, with finish_reason error and choices[0].error, as OpenRouter answers it", async () => {
    await start();
    const key = await h.connect("alice", 5);
    h.sim.control.setFaults({ errorAfterChunks: 3 });
    const completion = await wattfare().chat.completions.create(
      { model, messages: hello },
      { user: "alice" },
    );
    const choice = completion.choices[0];
    expect(choice?.finish_reason).toBe("error");
    expect(choice?.error).toMatchObject({ code: 502, message: "Provider returned error" });
    expect(choice?.message.content?.length).toBeGreaterThan(0); // the part generated before the failure
    await expectBilledExactly(key);
  });

  it("throws UpstreamError when the provider breaks off a non-stream answer after Wattfare already sent 200", async () => {
    // OpenRouter sends the headers and blank lines of a slow answer at once; Wattfare passes them on,
    // so when the provider then breaks off, all it can still send is the error envelope, under a 200.
    await start({ sim: { ttftMs: 100, interTokenMs: 10, nonStreamBlankLines: 1 } });
    await h.connect("alice", 5);
    h.sim.control.setFaults({ resetAfterChunks: 3 });
    const error = await wattfare()
      .chat.completions.create({ model, messages: hello }, { user: "alice" })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UpstreamError);
    expect(error).toMatchObject({
      code: "upstream",
      status: 502,
      message: "The model provider's response was interrupted.",
    });
    expect((error as UpstreamError).requestId).toMatch(/^req_/);
  });

  it("throws UpstreamError when Wattfare's own connection to the provider breaks mid-stream", async () => {
    await start();
    await h.connect("alice", 5);
    h.sim.control.setFaults({ resetAfterChunks: 2 });
    const stream = await wattfare().chat.completions.create(
      { model, messages: hello, stream: true },
      { user: "alice" },
    );
    const error = await (async () => {
      for await (const _ of stream) {
        // drain
      }
    })().catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: "upstream",
      message: "The model provider's stream was interrupted.",
    });
  });

  it("throws NotConnectedError for a user who never connected, saying not to retry", async () => {
    await start();
    const error = await wattfare()
      .chat.completions.create({ model, messages: hello }, { user: "stranger" })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotConnectedError);
    const typed = error as NotConnectedError;
    expect(typed).toMatchObject({ status: 402, code: "not_connected" });
    expect(typed.requestId).toMatch(/^req_/);
    expect(typed.headers.get("x-should-retry")).toBe("false");
  });

  it("throws BudgetExceededError when the payer paused all spending", async () => {
    await start();
    await h.connect("alice", 5);
    h.store.db.prepare("UPDATE payers SET paused = 1").run();
    await expect(
      wattfare().chat.completions.create({ model, messages: hello }, { user: "alice" }),
    ).rejects.toBeInstanceOf(BudgetExceededError);
  });

  it("throws FundingInvalidError when the payer's funding was rejected", async () => {
    await start();
    await h.connect("alice", 5);
    h.store.db.prepare("UPDATE funding SET state = 'invalid'").run();
    await expect(
      wattfare().chat.completions.create({ model, messages: hello }, { user: "alice" }),
    ).rejects.toBeInstanceOf(FundingInvalidError);
  });

  it("throws InvalidRequestError for a model Wattfare cannot price", async () => {
    await start();
    await h.connect("alice", 5);
    await expect(
      wattfare().chat.completions.create({ model: "nobody/nothing", messages: hello }, { user: "alice" }),
    ).rejects.toBeInstanceOf(InvalidRequestError);
  });

  it("throws UpstreamError when the provider fails before answering", async () => {
    await start();
    await h.connect("alice", 5);
    h.sim.control.setFaults({ status: 502 });
    await expect(
      wattfare().chat.completions.create({ model, messages: hello }, { user: "alice" }),
    ).rejects.toBeInstanceOf(UpstreamError);
  });

  it("throws PayloadTooLargeError for a body above Wattfare's chat limit", async () => {
    await start({ env: { WATTFARE_CHAT_BODY_LIMIT_BYTES: "2048" } });
    await h.connect("alice", 5);
    const big = [{ role: "user" as const, content: "x".repeat(4096) }];
    await expect(
      wattfare().chat.completions.create({ model, messages: big }, { user: "alice" }),
    ).rejects.toBeInstanceOf(PayloadTooLargeError);
  });

  it("throws RateLimitedError at once and never retries a chat completion", async () => {
    await start();
    await h.connect("alice", 5);
    await h.store.setAppLimits(h.appId, { chatPerMinute: 1 });
    const sleep = vi.fn(async () => {});
    const client = wattfare({ sleep, maxRetries: 5 });
    await client.chat.completions.create({ model, messages: hello }, { user: "alice" });
    const error = await client.chat.completions
      .create({ model, messages: hello }, { user: "alice" })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RateLimitedError);
    expect((error as RateLimitedError).retryAfterMs).toBe(60_000);
    expect(sleep).not.toHaveBeenCalled();
    expect(h.sim.control.requests()).toHaveLength(1);
  });
});
