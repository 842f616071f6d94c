import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { MODEL_CATALOGUE } from "./models.js";
import { startSimulator } from "./server.js";
import {
  dataEvents,
  fundedSimulator,
  getJson,
  HI,
  HI_PROMPT_TOKENS,
  openai,
  postChat,
} from "./test-support.js";
import type { Simulator } from "./types.js";

let sim: Simulator;
let key: string;

beforeAll(async () => {
  ({ sim, key } = await fundedSimulator());
});
afterEach(() => {
  sim.control.resetFaults();
  sim.control.setTiming({ responseTokens: 16 });
});
afterAll(() => sim.close());

describe("POST /api/v1/chat/completions (JSON)", () => {
  it("answers in OpenAI's shape with OpenRouter's provider, native_finish_reason and full usage", async () => {
    const { data, response } = await openai(sim, key)
      .chat.completions.create({ model: "openai/gpt-4o-mini", messages: HI })
      .withResponse();
    const generationId = response.headers.get("x-generation-id");
    expect(generationId).toMatch(/^gen-\d+-[A-Za-z0-9]{20}$/);
    expect(data.id).toBe(generationId);
    expect(data.object).toBe("chat.completion");
    expect(data.model).toBe("openai/gpt-4o-mini");
    expect(data).toMatchObject({ provider: "OpenAI" });
    expect(data.choices).toHaveLength(1);
    expect(data.choices[0]).toMatchObject({
      index: 0,
      finish_reason: "stop",
      native_finish_reason: "stop",
      message: { role: "assistant" },
    });
    expect(data.choices[0]!.message.content!.split(" ")).toHaveLength(16);
    expect(data.usage).toEqual({
      prompt_tokens: HI_PROMPT_TOKENS,
      completion_tokens: 16,
      total_tokens: HI_PROMPT_TOKENS + 16,
      cost: 0.00001185, // 15 × 0.00000015 + 16 × 0.0000006
      is_byok: false,
      prompt_tokens_details: { cached_tokens: 0 },
      cost_details: {
        upstream_inference_cost: 0.00001185,
        upstream_inference_prompt_cost: 0.00000225,
        upstream_inference_completions_cost: 0.0000096,
      },
      completion_tokens_details: { reasoning_tokens: 0 },
    });
  });

  it("stops at max_tokens with finish_reason length", async () => {
    const completion = await openai(sim, key).chat.completions.create({
      model: "openai/gpt-4o-mini",
      messages: HI,
      max_tokens: 5,
    });
    expect(completion.choices[0]!.finish_reason).toBe("length");
    expect(completion.usage!.completion_tokens).toBe(5);
    expect(completion.choices[0]!.message.content!.split(" ")).toHaveLength(5);
  });

  it("treats max_completion_tokens like max_tokens and prefers it", async () => {
    const completion = await openai(sim, key).chat.completions.create({
      model: "openai/gpt-4o-mini",
      messages: HI,
      max_tokens: 9,
      max_completion_tokens: 4,
    });
    expect(completion.usage!.completion_tokens).toBe(4);
    expect(completion.choices[0]!.finish_reason).toBe("length");
  });

  it("finishes with stop when max_tokens leaves room for the whole response", async () => {
    const completion = await openai(sim, key).chat.completions.create({
      model: "openai/gpt-4o-mini",
      messages: HI,
      max_tokens: 16,
    });
    expect(completion.choices[0]!.finish_reason).toBe("stop");
  });

  it("generates n choices and sums their completion tokens", async () => {
    const completion = await openai(sim, key).chat.completions.create({
      model: "openai/gpt-4o-mini",
      messages: HI,
      n: 3,
      max_tokens: 4,
    });
    expect(completion.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(completion.usage!.completion_tokens).toBe(12);
    expect(new Set(completion.choices.map((c) => c.message.content)).size).toBeGreaterThan(1);
  });

  it("answers with the first model of the fallback chain that exists, named in model and billed at its price", async () => {
    const { data, response } = await openai(sim, key)
      .chat.completions.create({
        model: "nobody/unknown-model",
        messages: HI,
        // @ts-expect-error OpenRouter's extension of the request body
        models: ["nobody/also-unknown", "anthropic/claude-3.5-haiku", "openai/gpt-4o-mini"],
      })
      .withResponse();
    expect(data.model).toBe("anthropic/claude-3.5-haiku");
    expect(data.usage).toMatchObject({ cost: 0.000076 }); // 15 × 0.0000008 + 16 × 0.000004
    const record = await sim.control.waitForGeneration(response.headers.get("x-generation-id")!);
    expect(record).toMatchObject({
      model: "anthropic/claude-3.5-haiku",
      costText: "0.000076",
      costNano: 76_000n,
    });
  });

  it("lets the primary model answer when it exists, whatever the fallbacks", async () => {
    const completion = await openai(sim, key).chat.completions.create({
      model: "openai/gpt-4o-mini",
      messages: HI,
      // @ts-expect-error OpenRouter's extension of the request body
      models: ["anthropic/claude-3.5-haiku"],
    });
    expect(completion.model).toBe("openai/gpt-4o-mini");
  });

  it("moves down the fallback chain past a model whose provider is down or whose context is too small, billing the one that answers", async () => {
    sim.control.setFaults({ downModels: ["openai/gpt-4o-mini"] });
    const { data, response } = await openai(sim, key)
      .chat.completions.create({
        model: "openai/gpt-4o-mini",
        messages: HI,
        max_tokens: 40_000, // beyond wattfare/non-cancellable's context of 32,768
        // @ts-expect-error OpenRouter's extension of the request body
        models: ["wattfare/non-cancellable", "anthropic/claude-3.5-haiku"],
      })
      .withResponse();
    expect(data.model).toBe("anthropic/claude-3.5-haiku");
    const record = await sim.control.waitForGeneration(response.headers.get("x-generation-id")!);
    expect(record).toMatchObject({ model: "anthropic/claude-3.5-haiku", costNano: 76_000n });
  });

  it("answers the last candidate's error when every model of the chain fails, and a down model alone with 502", async () => {
    sim.control.setFaults({ downModels: ["openai/gpt-4o-mini", "anthropic/claude-3.5-haiku"] });
    const chain = await postChat(sim, key, {
      model: "openai/gpt-4o-mini",
      messages: HI,
      models: ["anthropic/claude-3.5-haiku"],
    });
    expect(chain.status).toBe(502);
    expect(await chain.json()).toMatchObject({
      error: {
        code: 502,
        message: "Provider returned error",
        metadata: { error_type: "provider_unavailable" },
      },
    });
    const alone = await postChat(sim, key, { model: "openai/gpt-4o-mini", messages: HI });
    expect(alone.status).toBe(502);
    await alone.arrayBuffer();
    const unknownLast = await postChat(sim, key, {
      model: "openai/gpt-4o-mini",
      messages: HI,
      models: ["nobody/unknown-model"],
    });
    expect(unknownLast.status).toBe(400);
    await unknownLast.arrayBuffer();
  });

  it("uses the account's default model when the request names none", async () => {
    const response = await postChat(sim, key, { messages: HI });
    expect(((await response.json()) as { model: string }).model).toBe("openai/gpt-4o-mini");
  });

  it("spends half of a reasoner's tokens on reasoning billed at the internal_reasoning price", async () => {
    const completion = await openai(sim, key).chat.completions.create({
      model: "wattfare/reasoner",
      messages: HI,
      max_tokens: 10,
    });
    expect(completion.usage).toMatchObject({
      completion_tokens: 10,
      completion_tokens_details: { reasoning_tokens: 5 },
      // 15 × 0.000001 + 5 × 0.000004 + 5 × 0.000008
      cost: 0.000075,
    });
    const message = completion.choices[0]!.message as { content: string | null; reasoning?: string | null };
    expect(message.reasoning!.split(" ")).toHaveLength(5);
    expect(message.content!.split(" ")).toHaveLength(5);
  });

  it("charges a per-request fee and a fee per image part on top of tokens", async () => {
    const completion = await openai(sim, key).chat.completions.create({
      model: "wattfare/fee-model",
      max_tokens: 1,
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "What is this?" },
            { type: "image_url", image_url: { url: `data:image/png;base64,${"A".repeat(4000)}` } },
          ],
        },
      ],
    });
    const prompt = completion.usage!.prompt_tokens;
    // A flat 85 tokens for the image, not its 4000 base64 bytes / 4.
    expect(prompt).toBeLessThan(150);
    const expectedMicro = prompt * 1 + 1 * 2 + 1000 + 500; // μUSD: prompt, completion, request, image
    expect(completion.usage).toMatchObject({ cost: expectedMicro / 1e6 });
  });

  it("gives the same text for the same seed and prompt, and other text for another seed", async () => {
    const body = { model: "openai/gpt-4o-mini", messages: HI };
    const first = await openai(sim, key).chat.completions.create(body);
    const second = await openai(sim, key).chat.completions.create(body);
    const other = await startSimulator({ seed: 8 });
    try {
      const third = await openai(other, other.control.createKey()).chat.completions.create(body);
      expect(second.choices[0]!.message.content).toBe(first.choices[0]!.message.content);
      expect(third.choices[0]!.message.content).not.toBe(first.choices[0]!.message.content);
    } finally {
      await other.close();
    }
  });

  it("sends a delayed answer's headers and blank lines at once under nonStreamBlankLines, then the JSON", async () => {
    const slow = await startSimulator({ ttftMs: 30, nonStreamBlankLines: 2 });
    try {
      const slowKey = slow.control.createKey();
      const response = await postChat(slow, slowKey, { model: "openai/gpt-4o-mini", messages: HI });
      expect(response.status).toBe(200);
      expect(response.headers.get("x-generation-id")).toMatch(/^gen-/);
      const text = await response.text();
      expect(text.startsWith("\n\n{")).toBe(true);
      expect(JSON.parse(text)).toMatchObject({ object: "chat.completion", usage: { completion_tokens: 16 } });
      // The official client reads it like any answer.
      const completion = await openai(slow, slowKey).chat.completions.create({
        model: "openai/gpt-4o-mini",
        messages: HI,
      });
      expect(completion.usage?.completion_tokens).toBe(16);
    } finally {
      await slow.close();
    }
  });

  it("records what the client forwarded, with the key redacted to its hash", async () => {
    sim.control.clearRequests();
    await openai(sim, key).chat.completions.create({
      model: "openai/gpt-4o-mini",
      messages: HI,
      user: "payer-7",
    });
    const [recorded] = sim.control.requests();
    const keyHash = sim.control.keyState(key).keyHash;
    expect(recorded).toMatchObject({
      method: "POST",
      path: "/api/v1/chat/completions",
      keyHash,
      status: 200,
      body: { model: "openai/gpt-4o-mini", messages: HI, user: "payer-7" },
    });
    expect(recorded!.headers.authorization).toBe(`Bearer sha256:${keyHash}`);
    expect(JSON.stringify(recorded!.headers)).not.toContain(key);
    expect(recorded!.generationId).toMatch(/^gen-/);
  });

  it("keeps only the last 1000 requests", async () => {
    sim.control.clearRequests();
    await Promise.all(
      Array.from({ length: 1005 }, () => postChat(sim, key, "not json").then((r) => r.text())),
    );
    expect(sim.control.requests()).toHaveLength(1000);
  });

  it("parses bodies with leading whitespace and any content type", async () => {
    const response = await fetch(`${sim.apiUrl}/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "text/plain" },
      body: `\n\n  ${JSON.stringify({ model: "openai/gpt-4o-mini", messages: HI })}`,
    });
    expect(response.status).toBe(200);
  });
});

describe("POST /api/v1/chat/completions (stream)", () => {
  it("sends comment lines, one chunk per token, a finish chunk, a usage chunk without choices, then [DONE]", async () => {
    const response = await postChat(sim, key, {
      model: "openai/gpt-4o-mini",
      messages: HI,
      stream: true,
      max_tokens: 3,
    });
    expect(response.headers.get("content-type")).toBe("text/event-stream");
    const generationId = response.headers.get("x-generation-id");
    const text = await response.text();
    expect(text.startsWith(": OPENROUTER PROCESSING\n\n")).toBe(true);
    const events = dataEvents(text);
    expect(events.at(-1)).toBe("[DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as Record<string, unknown>);
    expect(chunks).toHaveLength(5);
    for (const chunk of chunks) {
      expect(chunk).toMatchObject({
        id: generationId,
        provider: "OpenAI",
        model: "openai/gpt-4o-mini",
        object: "chat.completion.chunk",
      });
    }
    for (const chunk of chunks.slice(0, 3)) {
      expect(chunk.choices).toEqual([
        {
          index: 0,
          delta: { role: "assistant", content: expect.any(String), reasoning: null },
          finish_reason: null,
          native_finish_reason: null,
          logprobs: null,
        },
      ]);
    }
    expect(chunks[3]!.choices).toEqual([
      {
        index: 0,
        delta: { role: "assistant", content: "" },
        finish_reason: "length",
        native_finish_reason: "length",
        logprobs: null,
      },
    ]);
    expect(chunks[4]!.choices).toEqual([]);
    expect(chunks[4]!.usage).toMatchObject({
      prompt_tokens: HI_PROMPT_TOKENS,
      completion_tokens: 3,
      total_tokens: HI_PROMPT_TOKENS + 3,
      is_byok: false,
      cost_details: { upstream_inference_cost: expect.any(Number) },
    });
  });

  it("echoes the request body in a first chunk without choices under debug.echo_upstream_body, streams only", async () => {
    const body = {
      model: "openai/gpt-4o-mini",
      messages: HI,
      max_tokens: 2,
      debug: { echo_upstream_body: true },
    };
    const streamed = dataEvents(await (await postChat(sim, key, { ...body, stream: true })).text());
    const first = JSON.parse(streamed[0] ?? "{}") as Record<string, unknown>;
    expect(first).toMatchObject({ object: "chat.completion.chunk", choices: [] });
    expect(first.debug).toEqual({ echo_upstream_body: { ...body, stream: true } });
    expect(streamed.filter((event) => event.includes('"debug"'))).toHaveLength(1);
    const json = (await (await postChat(sim, key, body)).json()) as Record<string, unknown>;
    expect(json.debug).toBeUndefined();
  });

  it("sends as many processing comments as configured before the first data event", async () => {
    const quiet = await startSimulator({ processingComments: 3 });
    try {
      const response = await postChat(quiet, quiet.control.createKey(), { messages: HI, stream: true });
      const text = await response.text();
      expect(text.indexOf("data:")).toBe(": OPENROUTER PROCESSING\n\n".length * 3);
    } finally {
      await quiet.close();
    }
  });

  it("streams through the official client to the same text and usage as the JSON answer", async () => {
    const client = openai(sim, key);
    const body = { model: "openai/gpt-4o-mini", messages: HI, n: 2 };
    const json = await client.chat.completions.create(body);
    const stream = await client.chat.completions.create({ ...body, stream: true });
    const texts = ["", ""];
    let usage: unknown;
    for await (const chunk of stream) {
      for (const choice of chunk.choices) texts[choice.index] += choice.delta.content ?? "";
      if (chunk.usage) usage = chunk.usage;
    }
    expect(texts).toEqual(json.choices.map((c) => c.message.content));
    expect(usage).toEqual(json.usage);
  });

  it("streams a reasoner's reasoning tokens as delta.reasoning before its content", async () => {
    const response = await postChat(sim, key, {
      model: "wattfare/reasoner",
      messages: HI,
      stream: true,
      max_tokens: 4,
    });
    const deltas = dataEvents(await response.text())
      .slice(0, 4)
      .map(
        (e) =>
          (JSON.parse(e) as { choices: { delta: { content: string; reasoning: string | null } }[] })
            .choices[0]!.delta,
      );
    expect(deltas.map((d) => d.reasoning !== null)).toEqual([true, true, false, false]);
    expect(deltas[0]!.content).toBe("");
  });
});

describe("GET /api/v1/models", () => {
  it("lists the catalogue in OpenRouter's shape with prices as decimal strings", async () => {
    const { status, body } = await getJson(sim, "/models?output_modalities=all");
    expect(status).toBe(200);
    const data = body.data as Record<string, unknown>[];
    expect(data.map((m) => m.id)).toEqual(MODEL_CATALOGUE.map((m) => m.id));
    expect(body.total_count).toBe(MODEL_CATALOGUE.length);
    const mini = data.find((m) => m.id === "openai/gpt-4o-mini")!;
    expect(mini).toMatchObject({
      context_length: 128_000,
      pricing: { prompt: "0.00000015", completion: "0.0000006", request: "0", image: expect.any(String) },
      top_provider: { context_length: 128_000, max_completion_tokens: 16_384, is_moderated: true },
      architecture: { output_modalities: ["text"] },
    });
    for (const model of data) {
      const pricing = model.pricing as Record<string, unknown>;
      for (const field of ["prompt", "completion", "request", "image", "internal_reasoning"]) {
        expect(pricing[field]).toMatch(/^\d+(\.\d+)?$/);
      }
    }
  });

  it("lists only text-output models by default, as OpenRouter's output_modalities=text default does", async () => {
    const { body } = await getJson(sim, "/models");
    const ids = (body.data as { id: string }[]).map((m) => m.id);
    const textModels = MODEL_CATALOGUE.filter((m) => (m.outputModalities ?? ["text"]).includes("text"));
    expect(ids).toEqual(textModels.map((m) => m.id));
    expect(ids).not.toContain("wattfare/image-maker");
    expect(body.total_count).toBe(textModels.length);
    expect((await getJson(sim, "/models?output_modalities=text")).body).toEqual(body);
  });

  it("lists an image-output model, with its architecture and image_output price, for output_modalities=all, image or a comma list", async () => {
    const all = (await getJson(sim, "/models?output_modalities=all")).body.data as Record<string, unknown>[];
    expect(all.find((m) => m.id === "wattfare/image-maker")).toMatchObject({
      architecture: { modality: "text->image", input_modalities: ["text"], output_modalities: ["image"] },
      pricing: { image_output: "0.00003" },
    });
    const image = (await getJson(sim, "/models?output_modalities=image")).body;
    expect((image.data as { id: string }[]).map((m) => m.id)).toEqual(["wattfare/image-maker"]);
    expect(image.total_count).toBe(1);
    const both = (await getJson(sim, "/models?output_modalities=text,image")).body;
    expect(both.total_count).toBe(MODEL_CATALOGUE.length);
    expect((await getJson(sim, "/models?output_modalities=audio")).body.data).toEqual([]);
  });

  it("includes a fee model, a non-cancellable model, an expensive model and a reasoner", async () => {
    const { body } = await getJson(sim, "/models");
    const byId = new Map(
      (body.data as { id: string; pricing: Record<string, string> }[]).map((m) => [m.id, m.pricing]),
    );
    expect(byId.get("wattfare/fee-model")!.request).toBe("0.001");
    expect(byId.has("wattfare/non-cancellable")).toBe(true);
    expect(Number(byId.get("wattfare/expensive")!.completion)).toBeGreaterThanOrEqual(0.01);
    const reasoner = byId.get("wattfare/reasoner")!;
    expect(Number(reasoner.internal_reasoning)).toBeGreaterThan(Number(reasoner.completion));
    expect(byId.get("anthropic/claude-3.5-haiku")!.input_cache_write).toBe("0.000001");
  });
});
