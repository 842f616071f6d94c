import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startSimulator } from "./server.js";
import { getJson, HI, openai, postChat, readEvents } from "./test-support.js";
import type { Simulator } from "./types.js";

let sim: Simulator;

beforeAll(async () => {
  sim = await startSimulator();
});
afterEach(() => {
  sim.control.resetFaults();
  sim.control.setTiming({ ttftMs: 0, interTokenMs: 0, responseTokens: 16 });
});
afterAll(() => sim.close());

/** Streams a long response slowly, reads the first content chunk, then hangs up. */
async function disconnectAfterFirstChunk(key: string, model: string, interTokenMs = 60_000): Promise<string> {
  // By default the second chunk is due in a minute: the client is long gone by then.
  sim.control.setTiming({ interTokenMs, responseTokens: 200 });
  const controller = new AbortController();
  const response = await postChat(
    sim,
    key,
    { model, messages: HI, stream: true },
    { signal: controller.signal },
  );
  await readEvents(response, 1);
  controller.abort();
  return response.headers.get("x-generation-id")!;
}

describe("billing", () => {
  it("bills the exact cost text it emitted, exponent included, rounded up to the nano-USD", async () => {
    const key = sim.control.createKey();
    const response = await postChat(sim, key, {
      model: "meta-llama/llama-3.2-1b-instruct",
      messages: HI,
      max_tokens: 3,
    });
    const text = await response.text();
    // 15 × 0.000000005 + 3 × 0.0000000075 = 0.0000000975 USD = 97.5 nano-USD
    expect(text).toContain('"cost":9.75e-8,');
    const [record] = sim.control.generations(key);
    expect(record).toMatchObject({ costText: "9.75e-8", costNano: 98n, billedNano: 98n });
    expect(sim.control.billedNano(key)).toBe(98n);
  });

  it("sums billed nano-USD per key and across keys, and takes it from the key's credits", async () => {
    const first = sim.control.createKey({ credits: 1 });
    const second = sim.control.createKey({ credits: 1 });
    const before = sim.control.totalBilledNano();
    for (const key of [first, first, second]) {
      await openai(sim, key).chat.completions.create({
        model: "meta-llama/llama-3.2-1b-instruct",
        messages: HI,
        max_tokens: 3,
      });
    }
    expect(sim.control.billedNano(first)).toBe(196n);
    expect(sim.control.billedNano(second)).toBe(98n);
    expect(sim.control.totalBilledNano() - before).toBe(294n);
    expect(sim.control.keyState(first).creditsNano).toBe(1_000_000_000n - 196n);
    expect(sim.control.credits(first)).toBe(0.999999804);
  });

  it("bills BYOK keys 5% from credits and reports the provider's price as upstream_inference_cost", async () => {
    const key = sim.control.createKey({ byok: true });
    const completion = await openai(sim, key).chat.completions.create({
      model: "openai/gpt-4o-mini",
      messages: HI,
    });
    // Normal price 0.00001185; 5% of it is 0.0000005925.
    expect(completion.usage).toMatchObject({
      cost: 5.925e-7,
      is_byok: true,
      cost_details: {
        upstream_inference_cost: 0.00001185,
        upstream_inference_prompt_cost: 0.00000225,
        upstream_inference_completions_cost: 0.0000096,
      },
    });
    const [record] = sim.control.generations(key);
    expect(record).toMatchObject({
      isByok: true,
      costText: "5.925e-7",
      costNano: 593n,
      upstreamCostText: "0.00001185",
      upstreamCostNano: 11_850n,
      billedNano: 593n + 11_850n,
    });
    // The payer pays both: OpenRouter's fee and the provider's bill.
    expect(sim.control.billedNano(key)).toBe(12_443n);
    expect(sim.control.keyState(key)).toMatchObject({ usageNano: 593n, byokUsageNano: 11_850n });
  });

  it("reports a BYOK provider price as null under byokUpstreamCostNull, and still bills it", async () => {
    const key = sim.control.createKey({ byok: true });
    sim.control.setFaults({ byokUpstreamCostNull: true });
    try {
      const response = await postChat(sim, key, { model: "openai/gpt-4o-mini", messages: HI });
      const body = (await response.json()) as { usage: Record<string, unknown> };
      expect(body.usage).toMatchObject({
        cost: 5.925e-7,
        is_byok: true,
        cost_details: { upstream_inference_cost: null },
      });
      const id = response.headers.get("x-generation-id") ?? "";
      const record = await sim.control.waitForGeneration(id);
      expect(record).toMatchObject({ upstreamCostText: null, upstreamCostNano: 11_850n });
      expect(sim.control.billedNano(key)).toBe(12_443n);
    } finally {
      sim.control.resetFaults();
    }
  });

  it("bills a streaming disconnect only for the tokens already sent", async () => {
    const key = sim.control.createKey();
    const id = await disconnectAfterFirstChunk(key, "openai/gpt-4o-mini");
    const record = await sim.control.waitForGeneration(id);
    expect(record).toMatchObject({
      completionTokens: 1,
      cancelled: true,
      streamed: true,
      finishReason: null,
    });
    // 15 × 0.00000015 + 1 × 0.0000006
    expect(record.costText).toBe("0.00000285");
    expect(sim.control.billedNano(key)).toBe(2850n);
  });

  it("bills a non-cancellable model's streaming disconnect for the full response, once it would have finished", async () => {
    const key = sim.control.createKey();
    const leftAt = Date.now();
    const id = await disconnectAfterFirstChunk(key, "wattfare/non-cancellable", 2);
    const record = await sim.control.waitForGeneration(id);
    // The 199 tokens left, 2 ms apart, were still generated: only then does /generation know it.
    expect(record.endedAt).toBeGreaterThanOrEqual(leftAt + 199 * 2);
    expect(record).toMatchObject({ completionTokens: 200, cancelled: true, finishReason: "stop" });
    // 15 × 0.0000005 + 200 × 0.0000015
    expect(record.costText).toBe("0.0003075");
    expect(sim.control.billedNano(key)).toBe(307_500n);
  });

  it("bills a non-stream request in full when its client disconnects before the answer", async () => {
    const key = sim.control.createKey();
    sim.control.setTiming({ ttftMs: 150 });
    const request = postChat(
      sim,
      key,
      { model: "openai/gpt-4o-mini", messages: HI },
      { signal: AbortSignal.timeout(30) },
    );
    await expect(request).rejects.toThrow();
    const id = sim.control.requests().at(-1)!.generationId!;
    const record = await sim.control.waitForGeneration(id);
    expect(record).toMatchObject({
      completionTokens: 16,
      cancelled: true,
      streamed: false,
      finishReason: "stop",
    });
    expect(sim.control.billedNano(key)).toBe(11_850n);
  });

  it("charges nothing for a stream cancelled before its first token (zero completion insurance)", async () => {
    const key = sim.control.createKey();
    sim.control.setTiming({ ttftMs: 60_000 });
    const controller = new AbortController();
    const response = await postChat(sim, key, { messages: HI, stream: true }, { signal: controller.signal });
    controller.abort();
    const record = await sim.control.waitForGeneration(response.headers.get("x-generation-id")!);
    expect(record).toMatchObject({ completionTokens: 0, cancelled: true, costText: "0", billedNano: 0n });
  });

  it("reports the billed cost as total_cost in /generation with the same text", async () => {
    const key = sim.control.createKey();
    const response = await postChat(sim, key, {
      model: "meta-llama/llama-3.2-1b-instruct",
      messages: HI,
      max_tokens: 3,
    });
    await response.text();
    const { text } = await getJson(sim, `/generation?id=${response.headers.get("x-generation-id")}`, key);
    expect(text).toContain('"total_cost":9.75e-8,');
    expect(text).toContain('"usage":9.75e-8,');
  });

  it("lets concurrent requests overspend into a negative balance, as OpenRouter's preflight does", async () => {
    // Each request's worst case (15 × 0.001 + 5 × 0.01 = 0.065) fits 0.1 USD alone, not together.
    const key = sim.control.createKey({ credits: 0.1 });
    sim.control.setTiming({ ttftMs: 20 });
    const body = { model: "wattfare/expensive", messages: HI, max_tokens: 5 };
    const statuses = await Promise.all([1, 2].map(() => postChat(sim, key, body).then((r) => r.status)));
    expect(statuses).toEqual([200, 200]);
    expect(sim.control.credits(key)).toBeCloseTo(-0.03, 9);
  });
});

describe("prompt caching", () => {
  const system = {
    role: "system",
    content: [
      { type: "text", text: "You answer briefly. ".repeat(60), cache_control: { type: "ephemeral" } },
    ],
  };
  // The cached prefix is the request overhead plus the system message; "Hi" adds 12 tokens after it.
  const prefixTokens = 3 + Math.ceil(Buffer.byteLength(JSON.stringify(system)) / 4) + 4;
  const body = { model: "anthropic/claude-3.5-haiku", messages: [system, ...HI], max_tokens: 16 };
  // Haiku's prices in nano-USD per token: prompt 800, cache write 1,000, cache read 80, completion 4,000.
  const costNano = (written: number, read: number) =>
    BigInt(12 * 800 + written * 1_000 + read * 80 + 16 * 4_000);

  it("bills a cache write above the prompt price, then reads of the same prefix below it, until 5 minutes pass unused", async () => {
    let now = Date.UTC(2026, 10, 28);
    const cached = await startSimulator({ now: () => now });
    try {
      const key = cached.control.createKey();
      const usage = async (k = key) => {
        const res = await postChat(cached, k, body);
        return ((await res.json()) as { usage: Record<string, unknown> }).usage;
      };
      const first = await usage();
      expect(first).toMatchObject({
        prompt_tokens: prefixTokens + 12,
        prompt_tokens_details: { cached_tokens: 0, cache_write_tokens: prefixTokens },
      });
      expect(cached.control.billedNano(key)).toBe(costNano(prefixTokens, 0));
      now += 4 * 60_000;
      expect(await usage()).toMatchObject({
        prompt_tokens_details: { cached_tokens: prefixTokens, cache_write_tokens: 0 },
      });
      expect(cached.control.billedNano(key)).toBe(costNano(prefixTokens, 0) + costNano(0, prefixTokens));
      // Another key has a cache of its own.
      const other = cached.control.createKey();
      expect(await usage(other)).toMatchObject({
        prompt_tokens_details: { cache_write_tokens: prefixTokens },
      });
      // The hit kept it 5 more minutes; 5 minutes unused, it is gone.
      now += 5 * 60_000;
      expect(await usage()).toMatchObject({
        prompt_tokens_details: { cached_tokens: 0, cache_write_tokens: prefixTokens },
      });
    } finally {
      await cached.close();
    }
  });

  it("caches nothing for a model without cache-write pricing, nor without a breakpoint", async () => {
    const key = sim.control.createKey();
    const plain = await postChat(sim, key, { ...body, model: "openai/gpt-4o-mini" });
    expect(((await plain.json()) as { usage: unknown }).usage).toMatchObject({
      prompt_tokens_details: { cached_tokens: 0 },
    });
    const noBreakpoint = await postChat(sim, key, {
      ...body,
      messages: [{ role: "system", content: "You answer briefly." }, ...HI],
    });
    expect(((await noBreakpoint.json()) as { usage: unknown }).usage).toMatchObject({
      prompt_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 },
    });
  });
});
