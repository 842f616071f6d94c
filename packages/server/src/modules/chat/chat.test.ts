import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type ChatHarness, createChatHarness } from "../../testing/chat-harness.js";

let h: ChatHarness;

beforeEach(async () => {
  h = await createChatHarness({ sim: { responseTokens: 12 } });
});
afterEach(async () => h.close());

const hello = [{ role: "user" as const, content: "Hello there" }];
const U_ALICE = { "x-wattfare-user": "alice" };

/** The body of the last request the simulator received. */
function lastSent<T = Record<string, unknown>>(): T {
  const last = h.sim.control.requests().at(-1);
  if (!last) throw new Error("the simulator received nothing");
  return last.body as T;
}

async function expectExact(key: string): Promise<void> {
  await h.drain();
  expect(await h.openReservations()).toBe(0);
  expect(await h.ledgerTotal()).toBe(h.sim.control.billedNano(key));
}

describe("chat completions through the official openai client", () => {
  it("answers a JSON completion and meters exactly what the upstream billed", async () => {
    const key = await h.connect("alice", 5);
    const completion = await h
      .openai("alice")
      .chat.completions.create({ model: "openai/gpt-4o-mini", messages: hello });
    expect(completion.choices[0]?.message.content?.length).toBeGreaterThan(0);
    expect(completion.usage?.completion_tokens).toBe(12);
    expect(h.sim.control.billedNano(key)).toBeGreaterThan(0n);
    await expectExact(key);
  });

  it("passes a slow answer's early blank lines through and still meters it exactly", async () => {
    await h.close();
    // OpenRouter keeps a slow non-stream request alive with headers and blank lines before the JSON.
    h = await createChatHarness({ sim: { responseTokens: 12, ttftMs: 30, nonStreamBlankLines: 3 } });
    const key = await h.connect("alice", 5);
    const res = await h.post(
      { model: "openai/gpt-4o-mini", messages: hello },
      { "x-wattfare-user": "alice" },
    );
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text.startsWith("\n\n\n{")).toBe(true);
    const completion = await h
      .openai("alice")
      .chat.completions.create({ model: "openai/gpt-4o-mini", messages: hello });
    expect(completion.usage?.completion_tokens).toBe(12);
    await expectExact(key);
  });

  it("streams chunks with the final usage chunk and meters them exactly", async () => {
    const key = await h.connect("alice", 5);
    const stream = await h
      .openai("alice")
      .chat.completions.create({ model: "openai/gpt-4o-mini", messages: hello, stream: true });
    let text = "";
    let usageSeen = false;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? "";
      if (chunk.usage) usageSeen = true;
    }
    expect(text.length).toBeGreaterThan(0);
    expect(usageSeen).toBe(true);
    await expectExact(key);
  });

  it("meters prompt caching exactly: a cache write dearer than the prompt, then a cheaper read of the same prefix", async () => {
    const key = await h.connect("alice", 5);
    const system = {
      role: "system" as const,
      content: [{ type: "text", text: "Answer briefly. ".repeat(80), cache_control: { type: "ephemeral" } }],
    };
    const ask = () =>
      h.post({ model: "anthropic/claude-3.5-haiku", messages: [system, ...hello], stream: true }, U_ALICE);
    const written = await ask();
    expect(await written.text()).toMatch(/"cache_write_tokens":[1-9]/);
    await expectExact(key);
    const writeCost = h.sim.control.billedNano(key);
    const read = await ask();
    expect(await read.text()).toMatch(/"cached_tokens":[1-9]/);
    await expectExact(key);
    expect(h.sim.control.billedNano(key) - writeCost).toBeLessThan(writeCost);
  });

  it("names each answer's request id in x-request-id, the key of its ledger entry (JSON and stream)", async () => {
    await h.connect("alice", 5);
    const json = await h.post(
      { model: "openai/gpt-4o-mini", messages: hello },
      { "x-wattfare-user": "alice" },
    );
    await json.text();
    const stream = await h.post(
      { model: "openai/gpt-4o-mini", messages: hello, stream: true },
      { "x-wattfare-user": "alice" },
    );
    await stream.text();
    await h.drain();
    const ids = [json, stream].map((r) => r.headers.get("x-request-id"));
    expect(ids.every((id) => /^req_[0-9a-f]{32}$/.test(id ?? ""))).toBe(true);
    expect((await h.store.ledger()).map((e) => e.requestId)).toEqual(ids);
  });

  it("lists the upstream catalogue at /models", async () => {
    await h.connect("alice", 5);
    const models = await h.openai("alice").models.list();
    const ids = models.data.map((m) => m.id);
    expect(ids).toContain("openai/gpt-4o-mini");
  });

  it("prices an image-output model, which the upstream lists only for output_modalities=all, and meters it exactly", async () => {
    const key = await h.connect("alice", 5);
    const completion = await h
      .openai("alice")
      .chat.completions.create({ model: "wattfare/image-maker", messages: hello, max_tokens: 16 });
    expect(completion.model).toBe("wattfare/image-maker");
    await expectExact(key);
  });

  it("filters /models by output_modalities as OpenRouter does: text models by default, all, or a comma list", async () => {
    await h.connect("alice", 5);
    const list = async (query: string) => {
      const res = await fetch(`${h.url}/api/v1/models${query}`, {
        headers: { authorization: `Bearer ${h.secretKey}` },
      });
      const body = (await res.json()) as { data: { id: string }[]; total_count: number };
      expect(body.total_count).toBe(body.data.length);
      return body.data.map((m) => m.id);
    };
    const text = await list("");
    expect(text).toContain("openai/gpt-4o-mini");
    expect(text).not.toContain("wattfare/image-maker");
    expect(await list("?output_modalities=text")).toEqual(text);
    expect(await list("?output_modalities=all")).toEqual([...text, "wattfare/image-maker"]);
    expect(await list("?output_modalities=image")).toEqual(["wattfare/image-maker"]);
    expect(await list("?output_modalities=text,image")).toEqual([...text, "wattfare/image-maker"]);
    const model = await h.openai("alice").models.retrieve("wattfare/image-maker");
    expect(model.id).toBe("wattfare/image-maker");
  });

  it("retrieves one model of the catalogue by its id, as the openai client asks for it, and 404s an unknown one", async () => {
    await h.connect("alice", 5);
    const openai = h.openai("alice");
    const model = await openai.models.retrieve("openai/gpt-4o-mini");
    expect(model.id).toBe("openai/gpt-4o-mini");
    expect((model as unknown as { pricing: { prompt: string } }).pricing.prompt).toMatch(/^\d/);
    await expect(openai.models.retrieve("nobody/nothing")).rejects.toMatchObject({
      status: 404,
      code: "not_found",
    });
    const plain = await fetch(`${h.url}/api/v1/models/openai/gpt-4o-mini`, {
      headers: { authorization: `Bearer ${h.secretKey}` },
    });
    expect(((await plain.json()) as { id: string }).id).toBe("openai/gpt-4o-mini");
  });

  it("forwards the caller's other parameters untouched and always asks for usage", async () => {
    await h.connect("alice", 5);
    const tools = [
      {
        type: "function" as const,
        function: { name: "lookup", parameters: { type: "object", properties: { q: { type: "string" } } } },
      },
    ];
    await h
      .openai("alice")
      .chat.completions.create({
        model: "openai/gpt-4o-mini",
        messages: hello,
        tools,
        temperature: 0.25,
        response_format: { type: "json_object" },
        stream: true,
        max_tokens: 100,
      })
      .then(async (s) => {
        for await (const _ of s) {
          /* drain */
        }
      });
    const sent = lastSent();
    expect(sent.tools).toEqual(tools);
    expect(sent.temperature).toBe(0.25);
    expect(sent.response_format).toEqual({ type: "json_object" });
    expect(sent.max_tokens).toBe(100);
    expect(sent.stream_options).toEqual({ include_usage: true });
    expect(typeof sent.user).toBe("string");
    expect(String(sent.user)).not.toContain("alice");
  });
});

describe("authentication and the user header", () => {
  it("requires x-wattfare-user with 400", async () => {
    const res = await h.post({ model: "openai/gpt-4o-mini", messages: hello });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("invalid_request");
  });

  it("answers 402 not_connected for an unknown user, with x-should-retry false", async () => {
    const res = await h.post(
      { model: "openai/gpt-4o-mini", messages: hello },
      { "x-wattfare-user": "stranger" },
    );
    expect(res.status).toBe(402);
    expect(res.headers.get("x-should-retry")).toBe("false");
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("not_connected");
  });

  it("answers 401 for a wrong secret key before reading the body", async () => {
    // Headers promise a 1 MB body that never comes: only an answer that did not wait for it arrives.
    const { request } = await import("node:http");
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${h.url}/api/v1/chat/completions`, {
        method: "POST",
        headers: {
          authorization: "Bearer sk_live_nope",
          "content-type": "application/json",
          "content-length": String(1024 * 1024),
          "x-wattfare-user": "u",
        },
      });
      req.on("response", (res) => {
        resolve(res.statusCode ?? 0);
        res.resume();
        req.destroy();
      });
      req.on("error", reject);
      req.write("{");
    });
    expect(status).toBe(401);
  });

  it("forwards a caller's max_tokens below 16 as asked", async () => {
    await h.connect("alice", 5);
    const res = await h.post(
      { model: "openai/gpt-4o-mini", messages: hello, max_tokens: 1 },
      { "x-wattfare-user": "alice" },
    );
    expect(res.status).toBe(200);
    expect(lastSent<{ max_tokens: number }>().max_tokens).toBe(1);
  });

  it("serves an app whose name is not ASCII (sent upstream as a safe title)", async () => {
    h.store.db.prepare("UPDATE apps SET name = ?").run("Chat 🤖 日本");
    await h.store.setAppLimits(h.appId, {}); // any admin write clears the app cache
    await h.connect("alice", 5);
    const res = await h.post(
      { model: "openai/gpt-4o-mini", messages: hello },
      { "x-wattfare-user": "alice" },
    );
    expect(res.status).toBe(200);
    expect(h.sim.control.requests().at(-1)?.headers["x-title"]).toBe("Chat");
  });

  it("answers 402 budget_exceeded when the payer paused all spending", async () => {
    await h.connect("alice", 5);
    h.store.db.prepare("UPDATE payers SET paused = 1").run();
    const res = await h.post(
      { model: "openai/gpt-4o-mini", messages: hello },
      { "x-wattfare-user": "alice" },
    );
    expect(res.status).toBe(402);
    expect(((await res.json()) as { error: { code: string; message: string } }).error).toMatchObject({
      code: "budget_exceeded",
      message: "Spending paused by the payer.",
    });
  });

  it("answers 402 funding_invalid when the payer's funding is marked invalid", async () => {
    await h.connect("alice", 5);
    h.store.db.prepare("UPDATE funding SET state = 'invalid'").run();
    const res = await h.post(
      { model: "openai/gpt-4o-mini", messages: hello },
      { "x-wattfare-user": "alice" },
    );
    expect(res.status).toBe(402);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("funding_invalid");
  });

  it("rejects the 31st chat request in a minute for one user with 429 and Retry-After", async () => {
    await h.store.setAppLimits(h.appId, { chatPerMinute: null });
    await h.connect("alice", 50);
    for (let i = 0; i < 30; i++) {
      const ok = await h.post(
        { model: "openai/gpt-4o-mini", messages: hello, max_tokens: 16 },
        { "x-wattfare-user": "alice" },
      );
      expect(ok.status).toBe(200);
      await ok.arrayBuffer();
    }
    const limited = await h.post(
      { model: "openai/gpt-4o-mini", messages: hello },
      { "x-wattfare-user": "alice" },
    );
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("60");
    expect(((await limited.json()) as { error: { code: string } }).error.code).toBe("rate_limited");
    // Another user of the same app is unaffected.
    await h.connect("bob", 5);
    expect(
      (await h.post({ model: "openai/gpt-4o-mini", messages: hello }, { "x-wattfare-user": "bob" })).status,
    ).toBe(200);
  });
});

describe("request validation", () => {
  it.each([
    ["a body that is not JSON", "{nope"],
    ["a missing model", { messages: hello }],
    ["empty messages", { model: "openai/gpt-4o-mini", messages: [] }],
    ["a non-integer max_tokens", { model: "openai/gpt-4o-mini", messages: hello, max_tokens: 1.5 }],
    ["an unknown model", { model: "nobody/nothing", messages: hello }],
    [
      "an unknown fallback model",
      { model: "openai/gpt-4o-mini", models: ["nobody/nothing"], messages: hello },
    ],
    [
      "plugins that cannot be priced",
      { model: "openai/gpt-4o-mini", messages: hello, plugins: [{ id: "web" }] },
    ],
    [
      "web search options that cannot be priced",
      { model: "openai/gpt-4o-mini", messages: hello, web_search_options: {} },
    ],
    ["a priority service tier", { model: "openai/gpt-4o-mini", messages: hello, service_tier: "priority" }],
    [
      "a body nested too deeply to forward",
      `{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"Hi"}],"metadata":${"[".repeat(100_000)}${"]".repeat(100_000)}}`,
    ],
  ])("rejects %s with 400 invalid_request and reserves nothing", async (_name, body) => {
    await h.connect("alice", 5);
    const res = await h.post(body, { "x-wattfare-user": "alice" });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("invalid_request");
    expect(await h.ledgerTotal()).toBe(0n);
    expect(await h.openReservations()).toBe(0);
  });

  it("names the Bearer scheme in WWW-Authenticate on a 401, as RFC 9110 requires", async () => {
    const res = await h.post(
      { model: "openai/gpt-4o-mini", messages: hello },
      { authorization: "Bearer sk_live_nope", "x-wattfare-user": "alice" },
    );
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe('Bearer realm="wattfare"');
    await res.arrayBuffer();
  });

  it("answers 401 to an OpenRouter key sent as the secret key saying to send the app's Wattfare key instead", async () => {
    const res = await h.post(
      { model: "openai/gpt-4o-mini", messages: hello },
      { authorization: `Bearer sk-or-v1-${"0".repeat(64)}`, "x-wattfare-user": "alice" },
    );
    expect(res.status).toBe(401);
    const error = ((await res.json()) as { error: { code: string; message: string } }).error;
    expect(error.code).toBe("auth");
    expect(error.message).toMatch(/^That is an OpenRouter API key.*Bearer sk_live_…/);
  });

  it.each([
    [
      "a bare OpenAI name with a catalogue match",
      { model: "gpt-4o-mini" },
      "model",
      'model "gpt-4o-mini" is unknown or cannot be priced; GET /api/v1/models lists the models, by provider/model id: did you mean "openai/gpt-4o-mini"?',
    ],
    [
      "a bare name without one",
      { model: "gpt-4o" },
      "model",
      'model "gpt-4o" is unknown or cannot be priced; GET /api/v1/models lists the models, by provider/model id (e.g. "openai/gpt-4o-mini").',
    ],
    [
      "an unknown provider/model id among the fallbacks",
      { model: "openai/gpt-4o-mini", models: ["nobody/nothing"] },
      "models",
      'model "nobody/nothing" is unknown or cannot be priced; GET /api/v1/models lists the models, by provider/model id.',
    ],
  ])(
    "refuses %s pointing to GET /api/v1/models and the provider/model id form",
    async (_name, fields, param, message) => {
      await h.connect("alice", 5);
      const res = await h.post({ ...fields, messages: hello }, U_ALICE);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: unknown }).error).toEqual({
        code: "invalid_request",
        message,
        param,
        type: "invalid_request_error",
      });
    },
  );

  it("rejects a non-JSON content type and an empty body with 400, each with a request id", async () => {
    await h.connect("alice", 5);
    const form = await fetch(`${h.url}/api/v1/chat/completions`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${h.secretKey}`,
        "content-type": "text/plain",
        "x-wattfare-user": "alice",
      },
      body: JSON.stringify({ model: "openai/gpt-4o-mini", messages: hello }),
    });
    expect(form.status).toBe(400);
    expect(((await form.json()) as { error: { message: string } }).error.message).toBe(
      "Content-Type must be application/json.",
    );
    expect(form.headers.get("x-request-id")).toMatch(/^req_[0-9a-f]{32}$/);
    const empty = await h.post("", { "x-wattfare-user": "alice" });
    expect(empty.status).toBe(400);
    expect(empty.headers.get("x-request-id")).toMatch(/^req_/);
  });

  it("answers 413 naming the chat limit and its setting, for a declared and for a chunked body alike", async () => {
    await h.close();
    h = await createChatHarness({ env: { WATTFARE_CHAT_BODY_LIMIT_BYTES: "3072" } });
    await h.connect("alice", 5);
    const body = JSON.stringify({
      model: "openai/gpt-4o-mini",
      messages: [{ role: "user", content: "x".repeat(4096) }],
    });
    const declared = await h.post(body, { "x-wattfare-user": "alice" });
    // Without Content-Length: the limit is found while reading.
    const chunked = await fetch(`${h.url}/api/v1/chat/completions`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${h.secretKey}`,
        "content-type": "application/json",
        "x-wattfare-user": "alice",
      },
      body: new Blob([body]).stream(),
      duplex: "half",
    } as RequestInit);
    for (const res of [declared, chunked]) {
      expect(res.status).toBe(413);
      expect(((await res.json()) as { error: unknown }).error).toEqual({
        code: "payload_too_large",
        message:
          "The request body is larger than this endpoint accepts (at most 3 KiB; the server's WATTFARE_CHAT_BODY_LIMIT_BYTES sets it).",
        type: "invalid_request_error",
      });
    }
  });
});

describe("max_tokens admission", () => {
  it("injects a default max_tokens and says so in x-wattfare-max-tokens", async () => {
    await h.connect("alice", 5);
    const res = await h.post(
      { model: "openai/gpt-4o-mini", messages: hello },
      { "x-wattfare-user": "alice" },
    );
    expect(res.status).toBe(200);
    expect(res.headers.get("x-wattfare-max-tokens")).toBe("4096");
    expect(lastSent<{ max_tokens: number }>().max_tokens).toBe(4096);
  });

  it("keeps a caller's max_tokens that fits and sends no header", async () => {
    await h.connect("alice", 5);
    const res = await h.post(
      { model: "openai/gpt-4o-mini", messages: hello, max_completion_tokens: 300 },
      { "x-wattfare-user": "alice" },
    );
    expect(res.status).toBe(200);
    expect(res.headers.get("x-wattfare-max-tokens")).toBeNull();
    expect(lastSent<{ max_completion_tokens: number }>().max_completion_tokens).toBe(300);
  });

  it("lowers a max_tokens that does not fit the remaining budget", async () => {
    // wattfare/expensive costs $0.01 per output token: a $1 cap affords well under 100 of them.
    await h.connect("alice", 1);
    const res = await h.post(
      { model: "wattfare/expensive", messages: hello, max_tokens: 1000 },
      { "x-wattfare-user": "alice" },
    );
    expect(res.status).toBe(200);
    const lowered = Number(res.headers.get("x-wattfare-max-tokens"));
    expect(lowered).toBeGreaterThanOrEqual(16);
    expect(lowered).toBeLessThan(100);
    expect(lastSent<{ max_tokens: number }>().max_tokens).toBe(lowered);
  });

  it("refuses instead of lowering when x-wattfare-clamp is off", async () => {
    await h.connect("alice", 1);
    const res = await h.post(
      { model: "wattfare/expensive", messages: hello, max_tokens: 1000 },
      { "x-wattfare-user": "alice", "x-wattfare-clamp": "off" },
    );
    expect(res.status).toBe(402);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("budget_exceeded");
    expect(h.sim.control.requests()).toHaveLength(0);
  });

  it("takes x-wattfare-clamp: OFF in any case, and refuses a value it does not know instead of silently clamping", async () => {
    await h.connect("alice", 1);
    const send = (clamp: string) =>
      h.post(
        { model: "wattfare/expensive", messages: hello, max_tokens: 1000 },
        { "x-wattfare-user": "alice", "x-wattfare-clamp": clamp },
      );
    const upper = await send("OFF");
    expect(upper.status).toBe(402);
    expect(((await upper.json()) as { error: { code: string } }).error.code).toBe("budget_exceeded");
    for (const value of ["false", "0", "no"]) {
      const res = await send(value);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: unknown }).error).toEqual({
        code: "invalid_request",
        message: `x-wattfare-clamp: the only value it takes is off, not ${JSON.stringify(value)}.`,
        param: "x-wattfare-clamp",
        type: "invalid_request_error",
      });
    }
    expect(h.sim.control.requests()).toHaveLength(0);
  });

  it("refuses with budget_exceeded when fewer than 16 output tokens fit", async () => {
    await h.connect("alice", 0.1);
    const res = await h.post(
      { model: "wattfare/expensive", messages: hello },
      { "x-wattfare-user": "alice" },
    );
    expect(res.status).toBe(402);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("budget_exceeded");
  });

  it("reserves for a large tools schema even with a short message", async () => {
    const key = await h.connect("alice", 0.2);
    const tools = Array.from({ length: 40 }, (_, i) => ({
      type: "function",
      function: {
        name: `tool_${i}`,
        description: "d".repeat(2000),
        parameters: { type: "object", properties: {} },
      },
    }));
    // ~80 KB of tools at $0.001/prompt token would cost ~$20 worst case: far over a $0.20 cap.
    const res = await h.post(
      { model: "wattfare/expensive", messages: hello, tools },
      { "x-wattfare-user": "alice" },
    );
    expect(res.status).toBe(402);
    // The same tools on a cheap model fit, and the bill stays exact.
    const ok = await h.post(
      { model: "openai/gpt-4o-mini", messages: hello, tools, max_tokens: 50 },
      { "x-wattfare-user": "alice" },
    );
    expect(ok.status).toBe(200);
    await ok.arrayBuffer();
    await expectExact(key);
  });
});
