/**
 * The secret key never leaves the Authorization header: not through the client object, not through
 * any error (message, stack, cause, JSON, util.inspect), not through log lines, not through what the
 * session handler or a piped stream sends to a browser.
 */
import { format, inspect } from "node:util";
import { type ChatHarness, createChatHarness, ManualClock } from "@wattfare/server/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isWattfareError } from "../core/errors.js";
import type { Fetch } from "../core/http.js";
import type { Logger } from "../core/logger.js";
import { type ClientOptions, Wattfare } from "./client.js";
import { createSessionHandler } from "./session-handler.js";

let h: ChatHarness;
let logLines: string[];
let logger: Logger;

beforeEach(async () => {
  const clock = new ManualClock();
  h = await createChatHarness({ clock, sim: { responseTokens: 8, now: () => clock.now() } });
  logLines = [];
  const capture =
    (level: string) =>
    (message: string, fields?: Record<string, unknown>): void => {
      logLines.push(`${level} ${message} ${JSON.stringify(fields)} ${inspect(fields, { depth: Infinity })}`);
    };
  logger = { debug: capture("debug"), info: capture("info"), warn: capture("warn"), error: capture("error") };
});
afterEach(async () => h.close());

/** The part of the key that is actually secret. */
const secretOf = (key: string): string => key.slice(key.lastIndexOf("_") + 1);

function client(options: ClientOptions = {}): Wattfare {
  return new Wattfare({ secretKey: h.secretKey, baseUrl: h.url, logger, ...options });
}

/** Every way an object is commonly turned into text. */
function renderings(value: unknown): string[] {
  const texts = [
    String(value),
    JSON.stringify(value) ?? "",
    inspect(value, { depth: Infinity, showHidden: true, getters: true }),
    inspect(value, { depth: Infinity, showHidden: true, customInspect: false }),
    format("%o %O %j", value, value, value),
  ];
  if (value instanceof Error) {
    texts.push(value.message, value.stack ?? "", inspect(value.cause, { depth: Infinity, showHidden: true }));
  }
  return texts;
}

function expectNoSecret(texts: string[], secret: string): void {
  expect(secret.length).toBeGreaterThanOrEqual(40);
  for (const text of texts) expect(text).not.toContain(secret);
}

async function failure(promise: PromiseLike<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    expect(isWattfareError(error)).toBe(true);
    return error;
  }
  throw new Error("expected the call to fail");
}

describe("the client object", () => {
  it("never shows its key through String, JSON, util.inspect or console formatting", () => {
    const wattfare = client();
    const texts = [
      ...renderings(wattfare),
      ...renderings(wattfare.sessions),
      ...renderings(wattfare.chat),
      ...renderings(wattfare.chat.completions),
      JSON.stringify(Object.entries(wattfare)),
    ];
    expectNoSecret(texts, secretOf(h.secretKey));
    expect(JSON.stringify(wattfare)).toBe(JSON.stringify({ baseUrl: h.url }));
  });

  it("never echoes a malformed key in the constructor's error", () => {
    const secret = "SECRETMARKER0123456789abcdefghijklmnopqrstuvwxyz";
    for (const secretKey of [
      `sk-live-app-${secret}`,
      `Bearer sk_live_app12345_${secret}`,
      `sk_live_app12345_${secret}\r\nx-injected: 1`,
    ]) {
      let thrown: unknown;
      try {
        new Wattfare({ secretKey, baseUrl: h.url, logger });
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(TypeError);
      expectNoSecret(renderings(thrown), secret);
    }
  });

  it("sends the key only in the Authorization header, never in a URL or body", async () => {
    const seen: string[] = [];
    const spy: Fetch = async (input, init) => {
      const headers = new Headers(init?.headers);
      expect(headers.get("authorization")).toBe(`Bearer ${h.secretKey}`);
      headers.delete("authorization");
      seen.push(String(input), JSON.stringify([...headers]), String(init?.body ?? ""));
      return fetch(input, init);
    };
    await h.connect("alice", 5);
    const wattfare = client({ fetch: spy });
    await wattfare.status("alice");
    await wattfare.sessions.create({ appUserId: "alice" });
    await wattfare.chat.completions.create(
      { model: "openai/gpt-4o-mini", messages: [{ role: "user", content: "Hi" }] },
      { user: "alice" },
    );
    expect(seen).toHaveLength(9);
    expectNoSecret(seen, secretOf(h.secretKey));
  });
});

describe("errors", () => {
  it("never contain the key, whatever failed", async () => {
    await h.connect("alice", 5);
    await h.store.setAppLimits(h.appId, { sessionsPerMinute: 1 });
    const wattfare = client({ maxRetries: 0, timeoutMs: 5_000 });
    const hello = { model: "openai/gpt-4o-mini", messages: [{ role: "user" as const, content: "Hi" }] };
    const errors: unknown[] = [];
    errors.push(await failure(wattfare.chat.completions.create(hello, { user: "stranger" }))); // 402
    errors.push(await failure(wattfare.status("has spaces"))); // 400
    await wattfare.sessions.create({ appUserId: "alice" });
    errors.push(await failure(wattfare.sessions.create({ appUserId: "alice" }))); // 429
    errors.push(await failure(client({ baseUrl: "http://127.0.0.1:9", maxRetries: 0 }).status("alice"))); // network
    errors.push(await failure(wattfare.status("alice", { signal: AbortSignal.abort() }))); // abort
    const hanging: Fetch = (_input, init) =>
      new Promise((_, reject) => init?.signal?.addEventListener("abort", () => reject(new Error("aborted"))));
    errors.push(await failure(client({ fetch: hanging, timeoutMs: 1, maxRetries: 0 }).status("alice"))); // timeout
    h.sim.control.setFaults({ errorAfterChunks: 1 });
    const stream = await wattfare.chat.completions.create({ ...hello, stream: true }, { user: "alice" });
    errors.push(
      await failure(
        (async () => {
          for await (const _ of stream) {
            // until the mid-stream error
          }
        })(),
      ),
    );
    expect(errors.map((e) => (e as { code: string }).code)).toEqual([
      "not_connected",
      "invalid_request",
      "rate_limited",
      "connection_error",
      "aborted",
      "timeout",
      "upstream",
    ]);
    expectNoSecret(errors.flatMap(renderings), secretOf(h.secretKey));
  });

  it("never contain a rejected key", async () => {
    const wrongSecret = `${"Zq9".repeat(14)}Z`;
    const wrong = client({ secretKey: `sk_live_${h.appId}_${wrongSecret}` });
    const error = await failure(wrong.sessions.create({ appUserId: "alice" }));
    expect((error as { code: string }).code).toBe("auth");
    expectNoSecret(renderings(error), wrongSecret);
  });
});

describe("logs", () => {
  it("never contain the key, at any level, through successes, retries and failures", async () => {
    await h.connect("alice", 5);
    await h.store.setAppLimits(h.appId, { sessionsPerMinute: 1 });
    const wattfare = client({ sleep: async (ms) => h.clock.advance(ms) });
    await wattfare.status("alice");
    await wattfare.sessions.create({ appUserId: "alice" });
    await wattfare.sessions.create({ appUserId: "alice" }); // 429, retried after Retry-After
    const stream = await wattfare.chat.completions.create(
      { model: "openai/gpt-4o-mini", messages: [{ role: "user", content: "Hi" }], stream: true },
      { user: "alice" },
    );
    for await (const _ of stream) {
      // drain
    }
    await failure(
      wattfare.chat.completions.create({ model: "nobody/nothing", messages: [] }, { user: "alice" }),
    );
    await failure(client({ baseUrl: "http://127.0.0.1:9", sleep: async () => {} }).status("alice"));
    client({ baseUrl: "http://wattfare.internal" }); // the plain-http warning
    expect(logLines.some((line) => line.startsWith("info retrying"))).toBe(true);
    expect(logLines.some((line) => line.startsWith("warn"))).toBe(true);
    expect(logLines.length).toBeGreaterThan(10);
    expectNoSecret(logLines, secretOf(h.secretKey));
  });
});

describe("what reaches the browser", () => {
  it("the session handler's failure responses and logs never contain the key", async () => {
    const wrongSecret = `${"Yx8".repeat(14)}Y`;
    const handler = createSessionHandler(() => ({ appUserId: "alice" }), {
      client: client({ secretKey: `sk_live_${h.appId}_${wrongSecret}` }),
    });
    const res = await handler(new Request("http://app.test/session", { method: "POST" }));
    expect(res.status).toBe(500);
    expectNoSecret([await res.text(), JSON.stringify([...res.headers]), ...logLines], wrongSecret);
  });

  it("a piped stream that fails part-way never carries the key", async () => {
    await h.connect("alice", 5);
    h.sim.control.setFaults({ errorAfterChunks: 1 });
    const stream = await client().chat.completions.create(
      { model: "openai/gpt-4o-mini", messages: [{ role: "user", content: "Hi" }], stream: true },
      { user: "alice" },
    );
    const bytes = await new Response(stream.toReadableStream()).text();
    expect(bytes).toContain('"finish_reason":"error"'); // the provider's error event, passed on as sent
    expectNoSecret([bytes], secretOf(h.secretKey));
  });
});
