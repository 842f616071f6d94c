/**
 * A generation decided up front: how many tokens each choice gets, which are reasoning, and the text.
 * Streaming, faults and billing then only count how far through the plan the response got.
 */
import type { Account } from "./accounts.js";
import type { OutputSpec } from "./chat-request.js";
import type { JsonObject } from "./json.js";
import type { SimModel } from "./models.js";
import type { PromptCacheUse } from "./prompt-cache.js";
import { valueForSchema } from "./schema-value.js";
import { generateTokens, toolCallId, wordStream } from "./text-generator.js";
import { splitTextTokens } from "./tokenizer.js";

export interface Piece {
  choice: number;
  reasoning: boolean;
  text: string;
  /** The token's place among its choice's reasoning tokens, or among its content (or arguments) tokens. */
  index: number;
}

/** The function call every choice makes (each under its own id); its pieces are fragments of `arguments`. */
export interface ToolCallPlan {
  /** By choice. */
  ids: string[];
  name: string;
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
  finishReason: "stop" | "length" | "tool_calls";
  /** Set when the choices call a function: their content pieces are its arguments. */
  toolCall: ToolCallPlan | null;
  /** With `logprobs: true`: the alternatives listed per token; null without. */
  topLogprobs: number | null;
  seed: number;
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
  output: OutputSpec;
  topLogprobs: number | null;
}

/**
 * The text of a tool call's arguments or of a structured output, the same for every choice: a
 * deterministic value of the schema, its strings drawn from the seeded words.
 */
function jsonText(input: PlanInput): string {
  const { output, seed, promptTokens, responseTokens } = input;
  if (output.kind === "tool_call") {
    const value = valueForSchema(
      output.tool.parameters ?? { type: "object" },
      wordStream(seed, promptTokens),
    );
    return JSON.stringify(value !== null && typeof value === "object" && !Array.isArray(value) ? value : {});
  }
  if (output.kind === "json" && output.schema !== undefined) {
    return JSON.stringify(valueForSchema(output.schema, wordStream(seed, promptTokens)));
  }
  // json_object: the prose an answer would have, as one field.
  return JSON.stringify({ answer: generateTokens(seed, promptTokens, 0, responseTokens).join("") });
}

export function planGeneration(input: PlanInput): GenerationPlan {
  const cap = Math.min(input.maxTokens ?? input.model.maxCompletionTokens, input.model.maxCompletionTokens);
  const proseTokens = Math.min(input.responseTokens, cap);
  const reasoningPerChoice = input.model.reasons ? Math.floor(proseTokens / 2) : 0;
  let tokensPerChoice = proseTokens;
  let finishReason: GenerationPlan["finishReason"] = proseTokens < input.responseTokens ? "length" : "stop";
  // Tool calls and JSON: the whole text, cut at the output cap as a real model's would be.
  let jsonTokens: string[] | null = null;
  if (input.output.kind !== "text") {
    const whole = splitTextTokens(jsonText(input));
    const room = cap - reasoningPerChoice;
    jsonTokens = whole.slice(0, room);
    tokensPerChoice = reasoningPerChoice + jsonTokens.length;
    finishReason = whole.length > room ? "length" : input.output.kind === "tool_call" ? "tool_calls" : "stop";
  }
  const contentPerChoice = tokensPerChoice - reasoningPerChoice;

  const texts: { reasoning: string[]; content: string[] }[] = [];
  for (let choice = 0; choice < input.n; choice++) {
    texts.push({
      // Distinct streams for reasoning and content keep the visible answer independent of reasoning length.
      reasoning: generateTokens(input.seed, input.promptTokens, choice + input.n, reasoningPerChoice),
      content: jsonTokens ?? generateTokens(input.seed, input.promptTokens, choice, contentPerChoice),
    });
  }
  const pieces: Piece[] = [];
  for (let round = 0; round < tokensPerChoice; round++) {
    for (let choice = 0; choice < input.n; choice++) {
      const text = texts[choice]!;
      const reasoning = round < reasoningPerChoice;
      const index = reasoning ? round : round - reasoningPerChoice;
      pieces.push({
        choice,
        reasoning,
        text: (reasoning ? text.reasoning[index] : text.content[index]) ?? "",
        index,
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
    finishReason,
    toolCall:
      input.output.kind === "tool_call"
        ? {
            ids: Array.from({ length: input.n }, (_, choice) =>
              toolCallId(input.seed, input.promptTokens, choice),
            ),
            name: input.output.tool.name,
          }
        : null,
    topLogprobs: input.topLogprobs,
    seed: input.seed,
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
