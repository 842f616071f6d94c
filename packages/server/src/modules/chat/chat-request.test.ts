import { describe, expect, it } from "vitest";
import { parseCatalogue } from "./catalogue.js";
import {
  type MaxPrice,
  OVERHEAD_TOKENS,
  parseChatRequest,
  planAdmission,
  renderUpstreamBody,
} from "./chat-request.js";

const CAP: MaxPrice = { prompt: 0.15, completion: 0.6, request: 0, image: 0.000217 };

/** The upstream body's text for a caller's body, with 100 output tokens admitted. */
const rendered = (body: string) =>
  renderUpstreamBody(parseChatRequest(Buffer.from(body)), 100, CAP, "app1", "alice");
const render = (body: string) => JSON.parse(rendered(body)) as Record<string, unknown>;

describe("renderUpstreamBody", () => {
  it("forwards the caller's body with max_tokens as admitted and a pseudonymous user", () => {
    const out = render('{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.5}');
    expect(out).toMatchObject({ model: "m", temperature: 0.5, max_tokens: 100 });
    expect(out.user).toMatch(/^wf_[0-9a-f]{32}$/);
  });

  it("forwards exactly the validated value of a key the caller sent twice, once", () => {
    const sent = rendered(
      '{"model":"m","messages":[{"role":"user","content":"hi"}],"n":100,"n":1,"plugins":[{"id":"web"}],"plugins":null}',
    );
    expect(sent.match(/"n"/g)).toHaveLength(1);
    expect(sent.match(/"plugins"/g)).toHaveLength(1);
    expect(JSON.parse(sent)).toMatchObject({ n: 1, plugins: null });
  });

  it("asks for usage on a stream when the caller set no stream options", () => {
    const out = render('{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}');
    expect(out).toMatchObject({ stream: true, max_tokens: 100, stream_options: { include_usage: true } });
  });

  it("sets the caller's own max_tokens, max_completion_tokens and user fields in place, once each", () => {
    const sent = rendered(
      '{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":9000,"max_tokens":5000}',
    );
    expect(sent.match(/"max_tokens"/g)).toHaveLength(1);
    expect(JSON.parse(sent)).toMatchObject({ max_tokens: 100 });
    const withBoth = render(
      '{"model":"m","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":50,"max_tokens":50,"user":"mine"}',
    );
    expect(withBoth).toMatchObject({ max_completion_tokens: 100, max_tokens: 100, user: "mine" });
  });

  it("asks for usage on a stream, keeping the caller's other stream options", () => {
    const out = render(
      '{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"x":1}}',
    );
    expect(out.stream_options).toEqual({ x: 1, include_usage: true });
  });

  it("keeps a caller's own __proto__ key a plain key, so the pseudonymous user is still set", () => {
    const out = render(
      '{"model":"m","messages":[{"role":"user","content":"hi"}],"__proto__":{"user":"spoof"}}',
    );
    expect(out.user).toMatch(/^wf_/);
    expect(Object.hasOwn(out, "__proto__")).toBe(true);
  });

  it("caps provider prices at those admitted, keeping the caller's other preferences and lower caps", () => {
    const out = render(
      '{"model":"m","messages":[{"role":"user","content":"hi"}],"provider":{"order":["a"],"max_price":{"prompt":0.1,"completion":9}}}',
    );
    expect(out.provider).toEqual({
      order: ["a"],
      max_price: { prompt: 0.1, completion: 0.6, request: 0, image: 0.000217 },
    });
    expect(render('{"model":"m","messages":[{"role":"user","content":"hi"}]}').provider).toEqual({
      max_price: CAP,
    });
  });

  it("does not change the parsed request it renders from", () => {
    const request = parseChatRequest(
      Buffer.from('{"model":"m","messages":[{"role":"user","content":"hi"}]}'),
    );
    renderUpstreamBody(request, 100, CAP, "app1", "alice");
    expect(request.body).toEqual({ model: "m", messages: [{ role: "user", content: "hi" }] });
  });
});

describe("parseChatRequest refuses what cannot be priced in advance", () => {
  const parse =
    (extra: Record<string, unknown>, content: unknown = "hi") =>
    () =>
      parseChatRequest(
        Buffer.from(JSON.stringify({ model: "m", messages: [{ role: "user", content }], ...extra })),
      );

  it.each([["order"], [{ max_price: 5 }]])(
    "refuses a provider %j whose max_price Wattfare could not cap, naming provider",
    (provider) => {
      expect(parse({ provider })).toThrow(expect.objectContaining({ param: "provider" }));
    },
  );

  it.each([
    [{ type: "openrouter:web_search" }],
    [{ type: "web_search_preview" }],
    [{ function: { name: "f" } }],
  ])("refuses a tool %j that is not a function tool, naming tools", (tool) => {
    expect(parse({ tools: [{ type: "function", function: { name: "ok" } }, tool] })).toThrow(
      expect.objectContaining({ code: "invalid_request", param: "tools" }),
    );
  });

  it.each([
    [{ type: "file", file: { filename: "a.pdf", file_data: "https://example.com/1000-pages.pdf" } }],
    [{ type: "video_url", video_url: { url: "https://example.com/v.mp4" } }],
    [{ type: "mystery" }],
    ["plain string"],
  ])("refuses a content part %j other than text, image_url or input_audio", (part) => {
    expect(parse({}, [{ type: "text", text: "hi" }, part])).toThrow(
      expect.objectContaining({ code: "invalid_request", param: "messages" }),
    );
  });

  it("takes text, image and audio parts and function tools", () => {
    const request = parse({ tools: [{ type: "function", function: { name: "f" } }] }, [
      { type: "text", text: "hi" },
      { type: "image_url", image_url: { url: "https://example.com/a.png" } },
      { type: "input_audio", input_audio: { data: "AAAA", format: "wav" } },
    ])();
    expect(request.imageParts).toBe(1);
  });

  it("refuses a body that is not valid UTF-8, whose re-encoding would outgrow the prompt bound", () => {
    const body = Buffer.concat([
      Buffer.from('{"model":"m","messages":[{"role":"user","content":"'),
      Buffer.from([0xff, 0xfe, 0xff]),
      Buffer.from('"}]}'),
    ]);
    expect(() => parseChatRequest(body)).toThrow(
      expect.objectContaining({ code: "invalid_request", message: "The request body is not valid UTF-8." }),
    );
  });
});

describe("parseChatRequest's prompt bound", () => {
  /** The prompt bound less the per-item overhead: the bytes it counted. */
  const countedBytes = (text: string) => {
    const request = parseChatRequest(Buffer.from(text));
    const items = BigInt((request.body.messages as unknown[]).length + 1);
    return Number(request.promptBoundTokens - items * BigInt(OVERHEAD_TOKENS));
  };

  it("counts the bytes as received when the body re-serializes no longer", () => {
    const text = '{ "model": "m", "messages": [ { "role": "user", "content": "caf\\u00e9 1.5 2e" } ] }';
    expect(countedBytes(text)).toBe(Buffer.byteLength(text));
  });

  it("counts numbers written with exponents as they will be sent, in full", () => {
    const pad = Array.from({ length: 100 }, () => "1e20").join(",");
    const text = `{"model":"m","messages":[{"role":"user","content":"hi","pad":[${pad}]}]}`;
    const reserialized = Buffer.byteLength(JSON.stringify(JSON.parse(text)));
    expect(reserialized).toBeGreaterThan(4 * Buffer.byteLength(text));
    expect(countedBytes(text)).toBe(reserialized);
  });
});

describe("planAdmission", () => {
  const catalogue = parseCatalogue(
    JSON.stringify({
      data: [
        { id: "a/dear-prompt", pricing: { prompt: "0.00001", completion: "0.000001" } },
        { id: "b/dear-output", pricing: { prompt: "0.000001", completion: "0.00001", request: "0.002" } },
      ],
    }),
  );
  const plan = (body: Record<string, unknown>) =>
    planAdmission(parseChatRequest(Buffer.from(JSON.stringify(body))), catalogue, {
      defaultMaxTokens: 100,
      clampOff: false,
    });

  it("reserves a fallback chain at each price's dearest across it, the cap any of its models' providers may charge", () => {
    const chain = plan({
      model: "a/dear-prompt",
      models: ["b/dear-output"],
      messages: [{ role: "user", content: "hi" }],
    });
    // Each a billionth above the listed price and at least one pico-USD, so an endpoint at that price
    // qualifies whatever the float comparison; free stays free.
    expect(chain.maxPrice).toEqual({
      prompt: 10.000001,
      completion: 10.000001,
      request: 0.002000000002,
      image: 0,
    });
    // A provider of a/dear-prompt may charge b's output price under that cap: its prompt, b's output and fee.
    const prompt = chain.request.promptBoundTokens * 10_000_001n;
    const worstPico = prompt + 1000n * 10_000_001n + 2_000_000_002n;
    expect(chain.amountFor(1000)).toBe((worstPico * 105n + 99_999n) / 100_000n);
  });
});
