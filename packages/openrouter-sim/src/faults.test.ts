import OpenAI from "openai";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startSimulator } from "./server.js";
import { dataEvents, HI, HI_PROMPT_TOKENS, openai, postChat, readEvents } from "./test-support.js";
import type { Simulator } from "./types.js";

let sim: Simulator;
let key: string;

beforeAll(async () => {
  sim = await startSimulator();
  key = sim.control.createKey({ credits: 100 });
});
afterEach(() => {
  sim.control.resetFaults();
  sim.control.setTiming({ ttftMs: 0, interTokenMs: 0, responseTokens: 16, nonStreamBlankLines: 0 });
});
afterAll(() => sim.close());

const STREAM = { model: "openai/gpt-4o-mini", messages: HI, stream: true };

describe("faults", () => {
  it.each([
    [408, "Operation timed out. Please try again later.", null],
    [429, "Provider returned error", "7"],
    [500, "Internal Server Error", null],
    [502, "Provider returned error", null],
    [503, "Provider returned error", "7"],
    [504, "Provider returned error", null],
    [524, "Infrastructure timeout: the provider did not answer in time", null],
    [529, "Provider returned error", null],
  ] as const)(
    "answers %i in OpenRouter's envelope before any body, billing nothing",
    async (status, message, retryAfter) => {
      const billed = sim.control.billedNano(key);
      sim.control.setFaults({ status });
      const response = await postChat(sim, key, { messages: HI });
      expect(response.status).toBe(status);
      expect(response.headers.get("retry-after")).toBe(retryAfter);
      expect(response.headers.get("x-generation-id")).toMatch(/^gen-/);
      expect(await response.json()).toEqual({
        error: {
          code: status,
          message,
          metadata: { error_type: expect.any(String), provider_name: "OpenAI" },
        },
      });
      expect(sim.control.billedNano(key)).toBe(billed);
    },
  );

  it("keeps a fault for every following request until resetFaults()", async () => {
    sim.control.setFaults({ status: 502 });
    expect((await postChat(sim, key, { messages: HI })).status).toBe(502);
    expect((await postChat(sim, key, { messages: HI })).status).toBe(502);
    sim.control.resetFaults();
    expect((await postChat(sim, key, { messages: HI })).status).toBe(200);
  });

  it("surfaces a 429 to the official client as RateLimitError", async () => {
    sim.control.setFaults({ status: 429 });
    const call = openai(sim, key).chat.completions.create({ model: "openai/gpt-4o-mini", messages: HI });
    await expect(call).rejects.toBeInstanceOf(OpenAI.RateLimitError);
  });

  it("resets the connection before headers, billing nothing", async () => {
    const before = sim.control.generations(key).length;
    sim.control.setFaults({ resetBeforeHeaders: true });
    await expect(postChat(sim, key, { messages: HI })).rejects.toThrow();
    expect(sim.control.generations(key)).toHaveLength(before);
  });

  it("drops a stream after N content chunks and bills the tokens sent", async () => {
    sim.control.setFaults({ resetAfterChunks: 3 });
    const response = await postChat(sim, key, STREAM);
    expect(response.status).toBe(200);
    const id = response.headers.get("x-generation-id")!;
    await expect(response.text()).rejects.toThrow();
    const record = await sim.control.waitForGeneration(id);
    expect(record).toMatchObject({ completionTokens: 3, finishReason: null, cancelled: false });
    // 15 × 0.00000015 + 3 × 0.0000006
    expect(record.costText).toBe("0.00000405");
  });

  it("sends headers before dropping even with zero chunks and no comment lines, billing nothing", async () => {
    const bare = await startSimulator({ processingComments: 0 });
    try {
      const bareKey = bare.control.createKey();
      bare.control.setFaults({ resetAfterChunks: 0 });
      const response = await postChat(bare, bareKey, STREAM);
      expect(response.status).toBe(200);
      await expect(response.text()).rejects.toThrow();
      const record = await bare.control.waitForGeneration(response.headers.get("x-generation-id")!);
      expect(record).toMatchObject({ completionTokens: 0, costText: "0" });
    } finally {
      await bare.close();
    }
  });

  it("delivers the N chunks before the drop", async () => {
    sim.control.setFaults({ resetAfterChunks: 2 });
    const response = await postChat(sim, key, STREAM);
    const text = await readEvents(response, 2);
    expect(dataEvents(text)).toHaveLength(2);
  });

  it("sends OpenRouter's mid-stream error event after N chunks, then ends, billing nothing (zero completion insurance)", async () => {
    const billedBefore = sim.control.billedNano(key);
    sim.control.setFaults({ errorAfterChunks: 2 });
    const response = await postChat(sim, key, STREAM);
    const events = dataEvents(await response.text());
    expect(events).toHaveLength(3);
    expect(events).not.toContain("[DONE]");
    expect(JSON.parse(events[2]!)).toMatchObject({
      object: "chat.completion.chunk",
      error: {
        code: 502,
        message: "Provider returned error",
        metadata: { error_type: "provider_unavailable" },
      },
      choices: [{ index: 0, delta: { content: "" }, finish_reason: "error", native_finish_reason: "error" }],
    });
    const record = await sim.control.waitForGeneration(response.headers.get("x-generation-id")!);
    expect(record).toMatchObject({
      completionTokens: 2,
      finishReason: "error",
      promptTokens: HI_PROMPT_TOKENS,
      costNano: 0n,
    });
    expect(sim.control.billedNano(key)).toBe(billedBefore);
  });

  it("makes the official client throw an APIError at the mid-stream error", async () => {
    sim.control.setFaults({ errorAfterChunks: 1 });
    const stream = await openai(sim, key).chat.completions.create({
      model: "openai/gpt-4o-mini",
      messages: HI,
      stream: true,
    });
    const seen: string[] = [];
    const consume = async () => {
      for await (const chunk of stream) seen.push(chunk.choices[0]?.delta.content ?? "");
    };
    await expect(consume()).rejects.toMatchObject({
      message: expect.stringMatching(/Provider returned error/),
    });
    expect(seen).toHaveLength(1);
  });

  it("answers a non-stream request with finish_reason error and partial content under errorAfterChunks", async () => {
    sim.control.setFaults({ errorAfterChunks: 4 });
    const completion = await openai(sim, key).chat.completions.create({
      model: "openai/gpt-4o-mini",
      messages: HI,
    });
    expect(completion.choices[0]).toMatchObject({
      finish_reason: "error",
      error: { code: 502, message: "Provider returned error" },
    });
    expect(completion.choices[0]!.message.content!.split(" ")).toHaveLength(4);
    expect(completion.usage!.completion_tokens).toBe(4);
    expect((completion.usage as unknown as { cost: number }).cost).toBe(0);
  });

  it("never answers under hangBeforeHeaders, and bills nothing", async () => {
    const before = sim.control.generations(key).length;
    sim.control.setFaults({ hangBeforeHeaders: true });
    const call = openai(sim, key, { timeout: 100 }).chat.completions.create({
      model: "openai/gpt-4o-mini",
      messages: HI,
    });
    await expect(call).rejects.toBeInstanceOf(OpenAI.APIConnectionTimeoutError);
    expect(sim.control.generations(key)).toHaveLength(before);
  });

  it("stops a stream after N chunks under hangAfterChunks and bills those tokens when the client leaves", async () => {
    sim.control.setFaults({ hangAfterChunks: 2 });
    const controller = new AbortController();
    const response = await postChat(sim, key, STREAM, { signal: controller.signal });
    const id = response.headers.get("x-generation-id")!;
    const text = await readEvents(response, 2);
    expect(dataEvents(text)).toHaveLength(2);
    expect(sim.control.generations(key).some((g) => g.id === id)).toBe(false);
    controller.abort();
    const record = await sim.control.waitForGeneration(id);
    expect(record).toMatchObject({ completionTokens: 2, cancelled: true, finishReason: null });
  });

  it("closes with hung requests still open", async () => {
    const other = await startSimulator();
    other.control.setFaults({ hangBeforeHeaders: true });
    const request = postChat(other, other.control.createKey(), { messages: HI });
    // Wait until the simulator holds the request, then close under it.
    while (other.control.requests().length === 0) await new Promise((resolve) => setImmediate(resolve));
    await other.close();
    await expect(request).rejects.toThrow();
  });
});

describe("timing", () => {
  it("waits ttftMs before the first content chunk but sends headers and comments at once", async () => {
    sim.control.setTiming({ ttftMs: 200 });
    const started = performance.now();
    const response = await postChat(sim, key, STREAM);
    await readEvents(response, 1);
    expect(performance.now() - started).toBeGreaterThanOrEqual(190);
    await response.body!.cancel();
    // At once: with the first token a minute away the headers and a comment still come (a slow machine
    // can only fail this by timing out, not by a few milliseconds).
    sim.control.setTiming({ ttftMs: 60_000 });
    const early = await postChat(sim, key, STREAM);
    const reader = early.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toMatch(/^: /);
    await reader.cancel();
  });

  it("spaces content chunks by interTokenMs", async () => {
    sim.control.setTiming({ interTokenMs: 20, responseTokens: 6 });
    const started = performance.now();
    const response = await postChat(sim, key, STREAM);
    await response.text();
    expect(performance.now() - started).toBeGreaterThanOrEqual(5 * 20 - 5);
  });

  it("sends a delayed non-stream answer's headers with its body, and at once (with a blank line) after setTiming sets nonStreamBlankLines", async () => {
    sim.control.setTiming({ ttftMs: 300 });
    let started = performance.now();
    let response = await postChat(sim, key, { messages: HI });
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    await response.text();
    // The answer itself a minute away: its headers and blank line come at once (a slow machine can only
    // fail this by timing out, not by a few milliseconds).
    sim.control.setTiming({ ttftMs: 60_000, nonStreamBlankLines: 1 });
    started = performance.now();
    response = await postChat(sim, key, { messages: HI });
    const reader = response.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe("\n");
    expect(performance.now() - started).toBeLessThan(30_000);
    await reader.cancel();
  });
});
