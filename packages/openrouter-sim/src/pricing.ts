/**
 * Exact pricing: per-token prices are held as BigInt atto-USD (1e-18), so every product of a token
 * count and a catalogue price is exact. Floats appear only where OpenRouter itself emits JSON numbers.
 */
import { formatScaled, parseDecimalCeil, toJsonNumber } from "./decimal.js";
import type { SimModel } from "./models.js";

/** Atto-USD: fine enough that every catalogue price string is an integer count. */
export const PRICE_SCALE = 18;
const NANO_SCALE = 9;
const ATTO_PER_NANO = 10n ** BigInt(PRICE_SCALE - NANO_SCALE);

/** BYOK: OpenRouter deducts 5% of the normal price from credits; the provider bills the rest directly. */
const BYOK_FEE_PERCENT = 5n;

export interface PriceTable {
  prompt: bigint;
  completion: bigint;
  request: bigint;
  image: bigint;
  internalReasoning: bigint;
  /** Prompt tokens read from / written to the prompt cache; the prompt price where the model has none. */
  cacheRead: bigint;
  cacheWrite: bigint;
  /** max(completion, internal_reasoning): the price any output token can cost at most. */
  worstOutput: bigint;
}

// Math.max does not take bigints.
function maxBigInt(a: bigint, b: bigint): bigint {
  if (a > b) return a;
  return b;
}

const tables = new WeakMap<SimModel, PriceTable>();

export function priceTable(model: SimModel): PriceTable {
  let table = tables.get(model);
  if (!table) {
    const p = model.pricing;
    const completion = parseDecimalCeil(p.completion, PRICE_SCALE);
    const internalReasoning = parseDecimalCeil(p.internal_reasoning, PRICE_SCALE);
    const prompt = parseDecimalCeil(p.prompt, PRICE_SCALE);
    const priced = (price: string | undefined) =>
      price === undefined ? prompt : parseDecimalCeil(price, PRICE_SCALE);
    table = {
      prompt,
      cacheRead: priced(p.input_cache_read),
      cacheWrite: priced(p.input_cache_write),
      completion,
      request: parseDecimalCeil(p.request, PRICE_SCALE),
      image: parseDecimalCeil(p.image, PRICE_SCALE),
      internalReasoning,
      worstOutput: maxBigInt(completion, internalReasoning),
    };
    tables.set(model, table);
  }
  return table;
}

export interface TokenCounts {
  /** All of them, the cached and cache-written ones included (as `prompt_tokens` counts them). */
  promptTokens: number;
  cachedTokens: number;
  cacheWriteTokens: number;
  /** Includes reasoning tokens, as OpenRouter's `completion_tokens` does. */
  completionTokens: number;
  reasoningTokens: number;
  images: number;
}

/** What one generation costs, as the numbers OpenRouter emits and the exact amounts behind them. */
export interface Charge {
  /** `usage.cost`: what is deducted from credits. */
  cost: number;
  costText: string;
  costNano: bigint;
  isByok: boolean;
  /**
   * `cost_details.upstream_inference_cost`: the provider's price (equals `cost` when not BYOK); null when
   * the provider did not report it (the `byokUpstreamCostNull` fault).
   */
  upstreamCost: number | null;
  upstreamCostText: string;
  upstreamCostNano: bigint;
  upstreamPromptCost: number;
  upstreamCompletionsCost: number;
  /** What the payer really pays: `cost`, plus the provider's bill for BYOK. */
  billedNano: bigint;
}

const ceilDiv = (a: bigint, b: bigint): bigint => (a + b - 1n) / b;

function emitted(atto: bigint): { value: number; text: string; nano: bigint } {
  const value = toJsonNumber(atto, PRICE_SCALE);
  const text = String(value); // exactly what JSON.stringify writes for this number
  return { value, text, nano: parseDecimalCeil(text, NANO_SCALE) };
}

/**
 * Prices one generation; `free` when zero completion insurance covers it (see `insured()`).
 */
export function chargeFor(model: SimModel, counts: TokenCounts, byok: boolean, free: boolean): Charge {
  const prices = priceTable(model);
  const plainPrompt = counts.promptTokens - counts.cachedTokens - counts.cacheWriteTokens;
  const promptAtto = free
    ? 0n
    : BigInt(plainPrompt) * prices.prompt +
      BigInt(counts.cachedTokens) * prices.cacheRead +
      BigInt(counts.cacheWriteTokens) * prices.cacheWrite;
  const completionAtto = free
    ? 0n
    : BigInt(counts.completionTokens - counts.reasoningTokens) * prices.completion +
      BigInt(counts.reasoningTokens) * prices.internalReasoning;
  const feesAtto = free ? 0n : prices.request + BigInt(counts.images) * prices.image;
  const normalAtto = promptAtto + completionAtto + feesAtto;
  const costAtto = byok ? ceilDiv(normalAtto * BYOK_FEE_PERCENT, 100n) : normalAtto;
  const cost = emitted(costAtto);
  const upstream = byok ? emitted(normalAtto) : cost;
  return {
    cost: cost.value,
    costText: cost.text,
    costNano: cost.nano,
    isByok: byok,
    upstreamCost: upstream.value,
    upstreamCostText: upstream.text,
    upstreamCostNano: byok ? upstream.nano : 0n,
    upstreamPromptCost: toJsonNumber(promptAtto, PRICE_SCALE),
    upstreamCompletionsCost: toJsonNumber(completionAtto, PRICE_SCALE),
    billedNano: byok ? cost.nano + upstream.nano : cost.nano,
  };
}

export interface Preflight {
  /** Worst-case deduction from credits, atto-USD. */
  worstAtto: bigint;
  /** How many output tokens per choice the key could pay for, given its spendable amount. */
  affordableOutputTokens(spendableNano: bigint): number;
}

/**
 * OpenRouter's funds check: prompt + output bound at the dearest output price, times `n`, plus fees.
 * For BYOK keys only the 5% fee comes out of credits, so only that must be affordable.
 */
export function preflight(
  model: SimModel,
  promptTokens: number,
  outputBound: number,
  n: number,
  images: number,
  byok: boolean,
): Preflight {
  const prices = priceTable(model);
  const scale = (atto: bigint): bigint => (byok ? ceilDiv(atto * BYOK_FEE_PERCENT, 100n) : atto);
  const fixedAtto = BigInt(promptTokens) * prices.prompt + prices.request + BigInt(images) * prices.image;
  const perOutputTokenAtto = prices.worstOutput * BigInt(n);
  return {
    worstAtto: scale(fixedAtto + BigInt(outputBound) * perOutputTokenAtto),
    affordableOutputTokens(spendableNano) {
      const left = spendableNano * ATTO_PER_NANO - scale(fixedAtto);
      if (left <= 0n) return 0;
      const perToken = scale(perOutputTokenAtto);
      if (perToken === 0n) return Number.MAX_SAFE_INTEGER;
      return Number(left / perToken);
    },
  };
}

export function nanoToAtto(nano: bigint): bigint {
  return nano * ATTO_PER_NANO;
}

/** USD as a JSON number from exact nano-USD, for `/key` and `/credits`. */
export function nanoToUsd(nano: bigint): number {
  return Number(formatScaled(nano, NANO_SCALE));
}

/** USD given by a caller (e.g. `createKey({credits: 10})`) → nano-USD, rounded up. */
export function usdToNano(usd: number): bigint {
  if (!Number.isFinite(usd)) throw new RangeError(`not a finite USD amount: ${usd}`);
  return parseDecimalCeil(String(usd), NANO_SCALE);
}
