import { describe, expect, it } from "vitest";
import { filterByOutputModalities, ModelCatalogue, parseCatalogue } from "./catalogue.js";

const model = (pricing: Record<string, unknown>, maxOut: number | null = 1000) =>
  JSON.stringify({ data: [{ id: "m/x", pricing, top_provider: { max_completion_tokens: maxOut } }] });

describe("the price catalogue", () => {
  it("bounds an input token by the dearest prompt-side price, 1-hour cache writes included", () => {
    const p = parseCatalogue(
      model({
        prompt: "0.000001",
        completion: "0.000002",
        input_cache_write: "0.00000125",
        input_cache_write_1h: "0.000002",
      }),
    ).byId.get("m/x");
    expect(p?.inputPico).toBe(2_000_000n); // $0.000002 per token = 2,000,000 pico-USD
  });

  it("bounds an output token by the dearest output-side price (reasoning, audio or image output)", () => {
    const p = parseCatalogue(
      model({ prompt: "0", completion: "0.000002", internal_reasoning: "0.000003", audio_output: "0.00001" }),
    ).byId.get("m/x");
    expect(p?.outputPico).toBe(10_000_000n);
  });

  it("takes every conditional tier in overrides into account (a long-context tier costs more)", () => {
    const p = parseCatalogue(
      model({
        prompt: "0.000001",
        completion: "0.000002",
        overrides: [{ min_prompt_tokens: 200000, prompt: "0.000002", completion: "0.000004" }],
      }),
    ).byId.get("m/x");
    expect(p).toMatchObject({ inputPico: 2_000_000n, outputPico: 4_000_000n });
  });

  it("leaves out a model whose price cannot be bounded (a variable -1 price), so it is refused, never guessed", () => {
    expect(parseCatalogue(model({ prompt: "-1", completion: "-1" })).byId.has("m/x")).toBe(false);
  });

  it("rounds prices up to the pico-dollar", () => {
    expect(parseCatalogue(model({ prompt: "1e-13", completion: "0" })).byId.get("m/x")?.inputPico).toBe(1n);
  });
});

describe("the /models listing by output_modalities", () => {
  const raw = JSON.stringify({
    data: [
      { id: "a/text", architecture: { output_modalities: ["text"] } },
      { id: "a/image", architecture: { output_modalities: ["image"] } },
      { id: "a/both", architecture: { output_modalities: ["text", "audio"] } },
      { id: "a/unsaid" },
    ],
    total_count: 4,
    links: { next: null },
  });
  const ids = (param: string | undefined) =>
    (JSON.parse(filterByOutputModalities(raw, param)) as { data: { id: string }[] }).data.map((m) => m.id);

  it("keeps the models that output text by default, one that does not say counting as text", () => {
    expect(ids(undefined)).toEqual(["a/text", "a/both", "a/unsaid"]);
    expect(ids("")).toEqual(ids(undefined));
    expect(JSON.parse(filterByOutputModalities(raw, undefined))).toMatchObject({
      total_count: 3,
      links: { next: null },
    });
  });

  it("passes the whole catalogue through for all, and keeps models outputting any of a comma list", () => {
    expect(filterByOutputModalities(raw, "all")).toBe(raw);
    expect(ids("image")).toEqual(["a/image"]);
    expect(ids("image, audio")).toEqual(["a/image", "a/both"]);
  });
});

describe("the cached catalogue", () => {
  it("has nothing before the first fetch, serves a fresh copy without fetching, and a stale one while refreshing it", async () => {
    let now = 0;
    let fetches = 0;
    const prices = ["0.000001", "0.000003"];
    const catalogue = new ModelCatalogue(
      async () => model({ prompt: prices[fetches++] ?? "0.000009", completion: "0" }),
      1000,
      { now: () => now },
    );
    expect(catalogue.cached()).toBeUndefined();
    expect((await catalogue.get()).byId.get("m/x")?.inputPico).toBe(1_000_000n);
    now = 999;
    expect(catalogue.cached()?.byId.get("m/x")?.inputPico).toBe(1_000_000n);
    expect(fetches).toBe(1);
    now = 1000;
    // Stale: answered at once with the last good copy, one refresh started behind it.
    expect(catalogue.cached()?.byId.get("m/x")?.inputPico).toBe(1_000_000n);
    expect(fetches).toBe(2);
    await new Promise<void>((resolve) => setImmediate(resolve)); // the refresh lands within this turn
    expect(catalogue.cached()?.byId.get("m/x")?.inputPico).toBe(3_000_000n);
    expect(fetches).toBe(2);
  });
});
