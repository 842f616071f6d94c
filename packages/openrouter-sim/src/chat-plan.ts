/**
 * A generation decided up front: how many tokens each choice gets, which are reasoning, and the text.
 * Streaming, faults and billing then only count how far through the plan the response got.
 */
import type { Account } from "./accounts.js";
import type { JsonObject } from "./json.js";
import type { SimModel } from "./models.js";
import type { PromptCacheUse } from "./prompt-cache.js";
import { generateTokens } from "./text-generator.js";

export interface Piece {
  choice: number;
  reasoning: boolean;
  text: string;
}

export interface GenerationPlan {
  id: string;
  model: SimModel;
  account: Account;
  /** Unix seconds for `created`. */
  created: number;
  /** Clock ms when the request arrived. */
  createdAt: number;
  promptTokens: number;
  /** What the prompt read from or wrote to the prompt cache. */
  cache: PromptCacheUse;
  images: number;
  n: number;
  streamed: boolean;
  externalUser: string | null;
  tokensPerChoice: number;
  reasoningPerChoice: number;
  finishReason: "stop" | "length";
  /** Every generated token, choices interleaved round-robin as a parallel sampler would stream them. */
  pieces: Piece[];
  /** With `debug.echo_upstream_body` on a stream: the body the first chunk echoes. */
  echoBody: JsonObject | null;
}

export interface PlanInput {
  id: string;
  model: SimModel;
  account: Account;
  createdAt: number;
  promptTokens: number;
  cache: PromptCacheUse;
  images: number;
  n: number;
  streamed: boolean;
  externalUser: string | null;
  echoBody: JsonObject | null;
  maxTokens: number | null;
  responseTokens: number;
  seed: number;
}

export function planGeneration(input: PlanInput): GenerationPlan {
  const cap = Math.min(input.maxTokens ?? input.model.maxCompletionTokens, input.model.maxCompletionTokens);
  const tokensPerChoice = Math.min(input.responseTokens, cap);
  const reasoningPerChoice = input.model.reasons ? Math.floor(tokensPerChoice / 2) : 0;
  const contentPerChoice = tokensPerChoice - reasoningPerChoice;

  const texts: { reasoning: string[]; content: string[] }[] = [];
  for (let choice = 0; choice < input.n; choice++) {
    texts.push({
      // Distinct streams for reasoning and content keep the visible answer independent of reasoning length.
      reasoning: generateTokens(input.seed, input.promptTokens, choice + input.n, reasoningPerChoice),
      content: generateTokens(input.seed, input.promptTokens, choice, contentPerChoice),
    });
  }
  const pieces: Piece[] = [];
  for (let round = 0; round < tokensPerChoice; round++) {
    for (let choice = 0; choice < input.n; choice++) {
      const text = texts[choice]!;
      const reasoning = round < reasoningPerChoice;
      pieces.push({
        choice,
        reasoning,
        text: (reasoning ? text.reasoning[round] : text.content[round - reasoningPerChoice]) ?? "",
      });
    }
  }

  return {
    id: input.id,
    model: input.model,
    account: input.account,
    created: Math.floor(input.createdAt / 1000),
    createdAt: input.createdAt,
    promptTokens: input.promptTokens,
    cache: input.cache,
    images: input.images,
    n: input.n,
    streamed: input.streamed,
    externalUser: input.externalUser,
    tokensPerChoice,
    reasoningPerChoice,
    finishReason: tokensPerChoice < input.responseTokens ? "length" : "stop",
    pieces,
    echoBody: input.streamed ? input.echoBody : null,
  };
}

export interface OutputCounts {
  completionTokens: number;
  reasoningTokens: number;
}

/** Tokens produced by the first `pieceCount` pieces of the plan. */
export function outputOf(plan: GenerationPlan, pieceCount: number): OutputCounts {
  if (pieceCount >= plan.pieces.length) {
    return {
      completionTokens: plan.tokensPerChoice * plan.n,
      reasoningTokens: plan.reasoningPerChoice * plan.n,
    };
  }
  let reasoningTokens = 0;
  for (let i = 0; i < pieceCount; i++) if (plan.pieces[i]!.reasoning) reasoningTokens += 1;
  return { completionTokens: pieceCount, reasoningTokens };
}
