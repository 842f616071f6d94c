/**
 * The upstream price catalogue (`GET /models`), cached. Prices are per-token decimal strings; they are
 * parsed to pico-USD (1e-12) rounded up, so every bound computed from them is a true upper bound.
 * No catalogue → 503: unpriced traffic is never admitted (DESIGN.md "Admission").
 */
import type { Clock } from "../../deps.js";
import { ApiError } from "../../errors.js";
import { type Pico, parsePriceToPico } from "../../money.js";

export interface ModelPricing {
  id: string;
  /** The highest per-token price any prompt-side token can cost: prompt, cache writes (5 min and 1 h), audio, in any tier. */
  inputPico: Pico;
  /** The highest per-token price any output token can cost: completion, internal reasoning, audio/image output, in any tier. */
  outputPico: Pico;
  requestPico: Pico;
  imagePico: Pico;
  /** `top_provider.max_completion_tokens`; null when the upstream does not say. */
  maxOutput: number | null;
}

/** Price keys billed per prompt-side token, and per output token (openrouter-api.md §6). */
const INPUT_KEYS = ["prompt", "input_cache_write", "input_cache_write_1h", "audio", "input_audio_cache"];
const OUTPUT_KEYS = ["completion", "internal_reasoning", "audio_output", "image_output", "image_token"];

export interface Catalogue {
  byId: ReadonlyMap<string, ModelPricing>;
  /** The upstream body (every output modality), filtered for `GET /api/v1/models`. */
  raw: string;
}

interface RawModel {
  id?: unknown;
  pricing?: Record<string, unknown>;
  top_provider?: { max_completion_tokens?: unknown } | null;
}

function price(pricing: Record<string, unknown>, key: string): Pico {
  const value = pricing[key];
  if (value === undefined || value === null || value === "") return 0n;
  // "-1" marks a variable price upstream (e.g. the auto router): it cannot be bounded.
  const pico = parsePriceToPico(String(value));
  if (pico < 0n) throw new Error(`negative price for ${key}`);
  return pico;
}

/**
 * The highest of `keys` across the current prices and every conditional tier in `overrides`
 * (long-context thresholds, time windows): a bound must hold whichever tier applies.
 */
function highest(pricing: Record<string, unknown>, keys: readonly string[]): Pico {
  const tiers = [
    pricing,
    ...(Array.isArray(pricing.overrides) ? (pricing.overrides as Record<string, unknown>[]) : []),
  ];
  let max = 0n;
  for (const tier of tiers) {
    for (const key of keys) {
      const p = price(tier, key);
      if (p > max) max = p;
    }
  }
  return max;
}

export function parseCatalogue(raw: string): Catalogue {
  const parsed = JSON.parse(raw) as { data?: RawModel[] };
  if (!Array.isArray(parsed.data)) throw new Error("catalogue has no data array");
  const byId = new Map<string, ModelPricing>();
  for (const model of parsed.data) {
    if (typeof model.id !== "string" || !model.pricing) continue;
    try {
      const p = model.pricing;
      const maxOutput = model.top_provider?.max_completion_tokens;
      byId.set(model.id, {
        id: model.id,
        inputPico: highest(p, INPUT_KEYS),
        outputPico: highest(p, OUTPUT_KEYS),
        requestPico: highest(p, ["request"]),
        imagePico: highest(p, ["image"]),
        maxOutput:
          typeof maxOutput === "number" && Number.isInteger(maxOutput) && maxOutput > 0 ? maxOutput : null,
      });
    } catch {
      // An unparseable price leaves the model out: it is then refused as unpriceable, never guessed.
    }
  }
  return { byId, raw };
}

interface ListedModel {
  id?: unknown;
  architecture?: { output_modalities?: unknown } | null;
}

/**
 * The catalogue body as `GET /models?output_modalities=` answers it upstream (openrouter-api.md §6):
 * text-output models when the parameter is absent or empty, every model for `all`, else the models that
 * output any of a comma list. Wattfare caches the whole catalogue (fetched with `all`, so that image- and
 * audio-output models can be priced) and filters its own listing the same way.
 */
export function filterByOutputModalities(raw: string, param: string | undefined): string {
  const wanted = (param || "text")
    .split(",")
    .map((m) => m.trim())
    .filter((m) => m !== "");
  if (wanted.includes("all")) return raw;
  const parsed = JSON.parse(raw) as { data?: ListedModel[]; total_count?: unknown };
  const data = (parsed.data ?? []).filter((model) => {
    const outputs = model.architecture?.output_modalities;
    // An entry that does not say what it outputs is kept under the default, as a text model.
    if (!Array.isArray(outputs)) return wanted.includes("text");
    return outputs.some((m) => wanted.includes(String(m)));
  });
  return JSON.stringify({
    ...parsed,
    data,
    ...(parsed.total_count === undefined ? {} : { total_count: data.length }),
  });
}

/** Fetches lazily, serves from cache for `ttlMs`, and keeps serving the last good copy if a refresh fails. */
export class ModelCatalogue {
  private current: { catalogue: Catalogue; fetchedAt: number } | undefined;
  private inflight: Promise<Catalogue> | undefined;

  constructor(
    private readonly fetchRaw: () => Promise<string>,
    private readonly ttlMs: number,
    private readonly clock: Clock,
  ) {}

  /**
   * The cached copy without waiting (stale ones start a background refresh), or undefined before the
   * first fetch. The hot path uses it to skip an await per request; get() when it is undefined.
   */
  cached(): Catalogue | undefined {
    const cached = this.current;
    if (cached === undefined) return undefined;
    if (this.clock.now() - cached.fetchedAt >= this.ttlMs) {
      // Stale: refresh in the background, answer now with the last good copy.
      void this.refresh().catch(() => undefined);
    }
    return cached.catalogue;
  }

  async get(): Promise<Catalogue> {
    const cached = this.cached();
    if (cached) return cached;
    try {
      return await this.refresh();
    } catch (error) {
      throw new ApiError("unavailable", "The model price catalogue is unavailable; try again shortly.", {
        cause: error,
      });
    }
  }

  private refresh(): Promise<Catalogue> {
    this.inflight ??= (async () => {
      try {
        const catalogue = parseCatalogue(await this.fetchRaw());
        this.current = { catalogue, fetchedAt: this.clock.now() };
        return catalogue;
      } finally {
        this.inflight = undefined;
      }
    })();
    return this.inflight;
  }
}
