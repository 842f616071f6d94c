import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MODERATION_TRIGGER } from "./chat-route.js";
import { startSimulator } from "./server.js";
import { HI, openai, postChat } from "./test-support.js";
import type { Simulator } from "./types.js";

let sim: Simulator;

beforeAll(async () => {
  sim = await startSimulator();
});
afterAll(() => sim.close());

async function errorOf(response: Response): Promise<{ status: number; error: Record<string, unknown> }> {
  const body = (await response.json()) as { error: Record<string, unknown> };
  return { status: response.status, error: body.error };
}

describe("chat completion errors", () => {
  it("answers 401 'No auth credentials found' without a key", async () => {
    expect(await errorOf(await postChat(sim, null, { messages: HI }))).toEqual({
      status: 401,
      error: { code: 401, message: "No auth credentials found" },
    });
  });

  it("answers 401 'User not found.' for an unknown key, through the official client", async () => {
    const call = openai(sim, `sk-or-v1-${"0".repeat(64)}`).chat.completions.create({
      messages: HI,
      model: "openai/gpt-4o-mini",
    });
    await expect(call).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    await expect(call).rejects.toMatchObject({
      status: 401,
      error: { code: 401, message: "User not found." },
    });
  });

  it("refuses management keys on completions with 401", async () => {
    const key = sim.control.createKey({ management: true });
    const { status, error } = await errorOf(await postChat(sim, key, { messages: HI }));
    expect(status).toBe(401);
    expect(error.message).toMatch(/Management API keys cannot be used for inference/);
  });

  it("answers 400 for an unknown model without a fallback", async () => {
    const call = openai(sim, sim.control.createKey()).chat.completions.create({
      model: "nobody/nothing",
      messages: HI,
    });
    await expect(call).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    await expect(call).rejects.toMatchObject({
      error: { message: "nobody/nothing is not a valid model ID" },
    });
  });

  it("answers 404 no_endpoints when provider.max_price excludes the model, and moves down a fallback chain past it", async () => {
    const key = sim.control.createKey();
    const capped = (model: string, maxPrice: Record<string, number>, models?: string[]) =>
      postChat(sim, key, {
        model,
        ...(models ? { models } : {}),
        messages: HI,
        provider: { max_price: maxPrice },
      });
    const below = await errorOf(await capped("openai/gpt-4o-mini", { prompt: 0.1 }));
    expect(below.status).toBe(404);
    expect(below.error).toMatchObject({ metadata: { error_type: "no_endpoints" } });
    expect((await capped("openai/gpt-4o-mini", { prompt: 0.15, completion: 0.6 })).status).toBe(200);
    // Compared as floats per million: $3.30 written as 3.3 is below 0.0000033 × 1e6.
    expect((await capped("wattfare/odd-price", { prompt: 3.3 })).status).toBe(404);
    expect((await capped("wattfare/odd-price", { prompt: 3.300001 })).status).toBe(200);
    const fallback = await capped("wattfare/odd-price", { prompt: 1 }, ["openai/gpt-4o-mini"]);
    expect(fallback.status).toBe(200);
    expect(((await fallback.json()) as { model: string }).model).toBe("openai/gpt-4o-mini");
    expect(
      (await postChat(sim, key, { messages: HI, provider: { max_price: { prompt: "1" } } })).status,
    ).toBe(400);
  });

  it("answers 400 for a body that is not JSON, or has no messages", async () => {
    const key = sim.control.createKey();
    expect(await errorOf(await postChat(sim, key, "{nope"))).toEqual({
      status: 400,
      error: { code: 400, message: "Invalid JSON in request body" },
    });
    expect((await errorOf(await postChat(sim, key, { model: "openai/gpt-4o-mini" }))).error.message).toBe(
      'Input required: specify "prompt" or "messages"',
    );
    expect((await postChat(sim, key, { messages: HI, max_tokens: 0 })).status).toBe(400);
    expect((await postChat(sim, key, { messages: HI, n: 0 })).status).toBe(400);
  });

  it("answers 400 when prompt plus max_tokens exceed the context length", async () => {
    const response = await postChat(sim, sim.control.createKey({ credits: 1000 }), {
      model: "wattfare/expensive",
      messages: HI,
      max_tokens: 32_768,
    });
    const { status, error } = await errorOf(response);
    expect(status).toBe(400);
    expect(error.message).toMatch(/maximum context length is 32768 tokens/);
  });

  it("answers 402 when the worst case (prompt + the model's max output) exceeds what the key can spend", async () => {
    const key = sim.control.createKey({ credits: 1 });
    const call = openai(sim, key).chat.completions.create({ model: "wattfare/expensive", messages: HI });
    await expect(call).rejects.toMatchObject({ status: 402 });
    // (1 − 15 × 0.001) / 0.01 = 98.5 → 98 output tokens are affordable.
    await expect(call).rejects.toMatchObject({
      error: {
        code: 402,
        message: expect.stringMatching(
          /^This request requires more credits, or fewer max_tokens\. You requested up to 4096 tokens, but can only afford 98\./,
        ),
      },
    });
    // The same request fits once max_tokens is small enough.
    const ok = await openai(sim, key).chat.completions.create({
      model: "wattfare/expensive",
      messages: HI,
      max_tokens: 98,
    });
    expect(ok.choices).toHaveLength(1);
    expect(sim.control.generations(key)).toHaveLength(1);
  });

  it("counts n and the key limit in the preflight", async () => {
    const key = sim.control.createKey({ credits: 100, limit: 0.5 });
    const body = { model: "wattfare/expensive", messages: HI, max_tokens: 30 };
    // 15 × 0.001 + 30 × 0.01 × 2 = 0.615 > 0.5 limit, though credits are plenty.
    const { status, error } = await errorOf(await postChat(sim, key, { ...body, n: 2 }));
    expect(status).toBe(402);
    expect(error.message).toMatch(/can only afford 24\. .*higher total limit/);
    expect((await postChat(sim, key, body)).status).toBe(200);
  });

  it("answers 402 'Insufficient credits' once the balance is gone, even for a tiny request", async () => {
    const key = sim.control.createKey();
    sim.control.setCredits(key, 0);
    expect(await errorOf(await postChat(sim, key, { messages: HI, max_tokens: 1 }))).toEqual({
      status: 402,
      error: { code: 402, message: "Insufficient credits. Add more using https://openrouter.ai/credits" },
    });
  });

  it("answers 403 'Key limit exceeded' once the key's own limit is used up", async () => {
    const key = sim.control.createKey({ limit: 0.2 });
    const body = { model: "wattfare/expensive", messages: HI, max_tokens: 16 };
    expect((await postChat(sim, key, body)).status).toBe(200); // 0.175 USD
    // 0.025 left of the limit: the preflight refuses with 402 …
    expect((await postChat(sim, key, body)).status).toBe(402);
    // … and once usage reaches the limit, every request is a 403.
    sim.control.setLimit(key, 0.175);
    expect(await errorOf(await postChat(sim, key, { ...body, max_tokens: 1 }))).toEqual({
      status: 403,
      error: {
        code: 403,
        message: "Key limit exceeded (total limit). Manage it using https://openrouter.ai/settings/keys",
      },
    });
  });

  it("answers 403 in OpenRouter's moderation shape when the input is flagged, and bills nothing", async () => {
    const key = sim.control.createKey();
    const content = `${"x".repeat(80)} ${MODERATION_TRIGGER} ${"y".repeat(80)}`;
    const call = openai(sim, key).chat.completions.create({
      model: "openai/gpt-4o-mini",
      messages: [{ role: "user", content }],
    });
    await expect(call).rejects.toBeInstanceOf(OpenAI.PermissionDeniedError);
    const error = ((await call.catch((e: unknown) => e)) as { error: { metadata: Record<string, unknown> } })
      .error;
    expect(error).toMatchObject({
      code: 403,
      message: expect.stringMatching(/flagged for "harassment"/),
      metadata: { reasons: ["harassment"], provider_name: "OpenAI", model_slug: "openai/gpt-4o-mini" },
    });
    const flagged = error.metadata.flagged_input as string;
    expect(flagged.length).toBeLessThanOrEqual(100);
    expect(flagged.startsWith("xxxx")).toBe(true);
    expect(flagged.endsWith("yyyy")).toBe(true);
    expect(flagged).toContain("...");
    expect(sim.control.billedNano(key)).toBe(0n);
  });

  it("sends X-Generation-Id on error responses too", async () => {
    const response = await postChat(sim, null, { messages: HI });
    expect(response.headers.get("x-generation-id")).toMatch(/^gen-/);
  });
});

describe("routing", () => {
  it("answers unknown paths with a 404 JSON envelope", async () => {
    const response = await fetch(`${sim.apiUrl}/nothing/here`);
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ error: { code: 404, message: "Not Found" } });
  });

  it("answers a wrong method on a known path with 405", async () => {
    const response = await fetch(`${sim.apiUrl}/chat/completions`);
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("POST");
  });

  it("answers CORS preflights for browser clients", async () => {
    const response = await fetch(`${sim.apiUrl}/auth/keys`, { method: "OPTIONS" });
    expect(response.status).toBe(204);
    expect(response.headers.get("access-control-allow-origin")).toBe("*");
  });
});
