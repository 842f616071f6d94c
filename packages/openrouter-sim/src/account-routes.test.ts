import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSimulator } from "./server.js";
import { getJson, HI, HI_PROMPT_TOKENS, postChat } from "./test-support.js";
import type { Simulator } from "./types.js";

let sim: Simulator;
let clock = Date.parse("2026-03-01T12:00:00Z");

beforeAll(async () => {
  sim = await startSimulator({ now: () => clock, generationNotFoundMs: 2000 });
});
afterAll(() => sim.close());

async function completeOne(key: string, body: Record<string, unknown> = {}): Promise<string> {
  const response = await postChat(sim, key, { model: "openai/gpt-4o-mini", messages: HI, ...body });
  await response.text();
  return response.headers.get("x-generation-id")!;
}

describe("GET /api/v1/generation", () => {
  it("answers 404 until generationNotFoundMs after the end, then the record", async () => {
    const key = sim.control.createKey();
    const id = await completeOne(key, { user: "payer-1" });
    expect((await getJson(sim, `/generation?id=${id}`, key)).status).toBe(404);
    clock += 1999;
    expect((await getJson(sim, `/generation?id=${id}`, key)).status).toBe(404);
    clock += 1;
    const { status, body } = await getJson(sim, `/generation?id=${id}`, key);
    expect(status).toBe(200);
    expect(body.data).toMatchObject({
      id,
      model: "openai/gpt-4o-mini",
      provider_name: "OpenAI",
      total_cost: 0.00001185,
      usage: 0.00001185,
      is_byok: false,
      upstream_inference_cost: null,
      tokens_prompt: HI_PROMPT_TOKENS,
      tokens_completion: 16,
      native_tokens_prompt: HI_PROMPT_TOKENS,
      native_tokens_completion: 16,
      native_tokens_reasoning: 0,
      streamed: false,
      cancelled: false,
      finish_reason: "stop",
      external_user: "payer-1",
      created_at: "2026-03-01T12:00:00.000Z",
      api_type: "completions",
    });
  });

  it("reports BYOK upstream_inference_cost", async () => {
    sim.control.setTiming({ generationNotFoundMs: 0 });
    try {
      const key = sim.control.createKey({ byok: true });
      const id = await completeOne(key);
      const { body } = await getJson(sim, `/generation?id=${id}`, key);
      expect(body.data).toMatchObject({
        is_byok: true,
        total_cost: 5.925e-7,
        upstream_inference_cost: 0.00001185,
      });
    } finally {
      sim.control.setTiming({ generationNotFoundMs: 2000 });
    }
  });

  it("answers 403 for another key's generation, 404 for an unknown id and 401 for a bad key", async () => {
    const owner = sim.control.createKey();
    const id = await completeOne(owner);
    clock += 2000;
    expect((await getJson(sim, `/generation?id=${id}`, sim.control.createKey())).status).toBe(403);
    expect((await getJson(sim, "/generation?id=gen-0-nothing", owner)).status).toBe(404);
    const bad = await getJson(sim, `/generation?id=${id}`, "sk-or-v1-bad");
    expect(bad).toMatchObject({ status: 401, body: { error: { code: 401, message: "User not found." } } });
    expect((await getJson(sim, "/generation", owner)).status).toBe(400);
  });
});

describe("GET /api/v1/key", () => {
  it("describes an unlimited key: limit and limit_remaining null, usage in USD", async () => {
    const key = sim.control.createKey({ label: "payer key" });
    await completeOne(key);
    const { status, body } = await getJson(sim, "/key", key);
    expect(status).toBe(200);
    expect(body.data).toMatchObject({
      label: "payer key",
      limit: null,
      limit_remaining: null,
      limit_reset: null,
      usage: 0.00001185,
      usage_daily: 0.00001185,
      usage_weekly: 0.00001185,
      usage_monthly: 0.00001185,
      byok_usage: 0,
      is_free_tier: false,
      is_management_key: false,
      is_provisioning_key: false,
      include_byok_in_limit: false,
      expires_at: null,
    });
  });

  it("reports limit_remaining as the limit minus usage, also on the legacy /auth/key path", async () => {
    const key = sim.control.createKey({ limit: 2 });
    await completeOne(key);
    for (const path of ["/key", "/auth/key"]) {
      const { body } = await getJson(sim, path, key);
      expect(body.data).toMatchObject({ limit: 2, limit_remaining: 1.99998815 });
    }
  });

  it("counts usage in UTC windows: the day, the week from Monday and the month", async () => {
    const key = sim.control.createKey();
    clock = Date.parse("2026-06-07T23:30:00Z"); // a Sunday
    await completeOne(key);
    clock = Date.parse("2026-06-08T00:30:00Z"); // Monday: a new day and a new week
    await completeOne(key);
    expect((await getJson(sim, "/key", key)).body.data).toMatchObject({
      usage: 0.0000237,
      usage_daily: 0.00001185,
      usage_weekly: 0.00001185,
      usage_monthly: 0.0000237,
    });
    clock = Date.parse("2026-06-14T23:59:59Z"); // the same week's Sunday
    expect((await getJson(sim, "/key", key)).body.data).toMatchObject({
      usage_daily: 0,
      usage_weekly: 0.00001185,
      usage_monthly: 0.0000237,
    });
    clock = Date.parse("2026-07-01T00:00:00Z");
    expect((await getJson(sim, "/key", key)).body.data).toMatchObject({
      usage: 0.0000237,
      usage_weekly: 0,
      usage_monthly: 0,
    });
  });

  it("refuses a key over its daily limit with 403 until midnight UTC, then lets it spend again", async () => {
    const key = sim.control.createKey({ limit: 0.00001185, limitReset: "daily" });
    clock = Date.parse("2026-07-02T23:00:00Z");
    await completeOne(key, { max_tokens: 16 });
    expect((await getJson(sim, "/key", key)).body.data).toMatchObject({
      limit: 0.00001185,
      limit_remaining: 0,
      limit_reset: "daily",
    });
    const refused = await postChat(sim, key, { model: "openai/gpt-4o-mini", messages: HI, max_tokens: 16 });
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toBe(
      "Key limit exceeded (daily limit). Manage it using https://openrouter.ai/settings/keys",
    );
    clock = Date.parse("2026-07-03T00:00:00Z");
    expect((await getJson(sim, "/key", key)).body.data).toMatchObject({ limit_remaining: 0.00001185 });
    expect(
      (await postChat(sim, key, { model: "openai/gpt-4o-mini", messages: HI, max_tokens: 16 })).status,
    ).toBe(200);
  });

  it("labels keys like OpenRouter by default and flags management keys", async () => {
    const key = sim.control.createKey({ management: true });
    const { body } = await getJson(sim, "/key", key);
    expect(body.data).toMatchObject({
      label: `${key.slice(0, 12)}...${key.slice(-3)}`,
      is_management_key: true,
    });
  });

  it("answers 401 without a key or with an unknown one", async () => {
    expect((await getJson(sim, "/key")).status).toBe(401);
    expect((await getJson(sim, "/key", "sk-or-v1-unknown")).status).toBe(401);
  });
});

describe("GET /api/v1/credits", () => {
  it("shows the balance to management keys only", async () => {
    const management = sim.control.createKey({ management: true, credits: 25 });
    expect((await getJson(sim, "/credits", management)).body).toEqual({
      data: { total_credits: 25, total_usage: 0 },
    });
    expect((await getJson(sim, "/credits", sim.control.createKey())).status).toBe(403);
  });
});
