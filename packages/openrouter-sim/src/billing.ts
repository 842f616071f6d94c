/** Ends a generation: prices what was produced, deducts it from the key and records it. */
import { type GenerationPlan, type OutputCounts, outputOf } from "./chat-plan.js";
import { type Charge, chargeFor } from "./pricing.js";
import type { SimState } from "./state.js";
import type { FinishReason, GenerationRecord } from "./types.js";

export interface Outcome {
  /** Pieces produced; `plan.pieces.length` (or more) means the whole response. */
  pieces: number;
  finishReason: FinishReason | null;
  cancelled: boolean;
}

export interface Settlement {
  record: GenerationRecord;
  charge: Charge;
  output: OutputCounts;
}

/**
 * Zero completion insurance (OpenRouter docs): no charge when the response has no completion token and
 * a blank finish_reason, or when its finish_reason is `error`.
 */
export function insured(finishReason: FinishReason | null, completionTokens: number): boolean {
  return finishReason === "error" || (finishReason === null && completionTokens === 0);
}

export function settleGeneration(sim: SimState, plan: GenerationPlan, outcome: Outcome): Settlement {
  const output = outputOf(plan, outcome.pieces);
  const priced = chargeFor(
    plan.model,
    {
      promptTokens: plan.promptTokens,
      cachedTokens: plan.cache.cachedTokens,
      cacheWriteTokens: plan.cache.cacheWriteTokens,
      images: plan.images,
      ...output,
    },
    plan.account.byok,
    insured(outcome.finishReason, output.completionTokens),
  );
  // Billed all the same; only the report of the provider's price is missing.
  const unreported = priced.isByok && sim.faults.byokUpstreamCostNull;
  const charge: Charge = unreported ? { ...priced, upstreamCost: null } : priced;
  sim.accounts.bill(plan.account, charge, sim.now());
  const record: GenerationRecord = {
    id: plan.id,
    keyHash: plan.account.keyHash,
    model: plan.model.id,
    providerName: plan.model.providerName,
    promptTokens: plan.promptTokens,
    cachedTokens: plan.cache.cachedTokens,
    cacheWriteTokens: plan.cache.cacheWriteTokens,
    completionTokens: output.completionTokens,
    reasoningTokens: output.reasoningTokens,
    images: plan.images,
    n: plan.n,
    streamed: plan.streamed,
    cancelled: outcome.cancelled,
    finishReason: outcome.finishReason,
    isByok: charge.isByok,
    costText: charge.costText,
    costNano: charge.costNano,
    upstreamCostText: charge.isByok && !unreported ? charge.upstreamCostText : null,
    upstreamCostNano: charge.upstreamCostNano,
    billedNano: charge.billedNano,
    externalUser: plan.externalUser,
    createdAt: plan.createdAt,
    endedAt: sim.now(),
  };
  sim.generations.add(record);
  return { record, charge, output };
}
