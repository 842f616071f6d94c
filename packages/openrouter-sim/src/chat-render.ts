/**
 * The bytes of chat responses in OpenRouter's shapes. Chunks are built from string templates rather
 * than JSON.stringify of objects: a stream is mostly chunks, and this is the hot path.
 */
import type { Settlement } from "./billing.js";
import type { GenerationPlan, Piece } from "./chat-plan.js";
import type { JsonObject } from "./json.js";
import { type ContentLogprob, logprobOf } from "./logprobs.js";

export const PROCESSING_COMMENT = ": OPENROUTER PROCESSING\n\n";
export const DONE_EVENT = "data: [DONE]\n\n";

/** The error OpenRouter sends mid-stream when the provider fails after the first token. */
export const MID_STREAM_ERROR = {
  code: 502,
  // 500-class messages are masked and carry no provider_code (reference §3).
  message: "Provider returned error",
  metadata: { error_type: "provider_unavailable" },
} as const;

export function usageObject(plan: GenerationPlan, settlement: Settlement): Record<string, unknown> {
  const { charge, output } = settlement;
  return {
    prompt_tokens: plan.promptTokens,
    completion_tokens: output.completionTokens,
    total_tokens: plan.promptTokens + output.completionTokens,
    cost: charge.cost,
    is_byok: charge.isByok,
    // `cache_write_tokens` only from models priced for cache writes (reference §2).
    prompt_tokens_details:
      plan.model.pricing.input_cache_write === undefined
        ? { cached_tokens: plan.cache.cachedTokens }
        : { cached_tokens: plan.cache.cachedTokens, cache_write_tokens: plan.cache.cacheWriteTokens },
    cost_details: {
      upstream_inference_cost: charge.upstreamCost,
      upstream_inference_prompt_cost: charge.upstreamPromptCost,
      upstream_inference_completions_cost: charge.upstreamCompletionsCost,
    },
    completion_tokens_details: { reasoning_tokens: output.reasoningTokens },
  };
}

export class ChunkWriter {
  private readonly head: string;

  constructor(private readonly plan: GenerationPlan) {
    this.head =
      `data: {"id":"${plan.id}","provider":${JSON.stringify(plan.model.providerName)},` +
      `"model":${JSON.stringify(plan.model.id)},"object":"chat.completion.chunk","created":${plan.created},"choices":[`;
  }

  piece(piece: Piece): string {
    if (!piece.reasoning && this.plan.toolCall !== null) return this.toolPiece(piece);
    const delta = piece.reasoning
      ? `{"role":"assistant","content":"","reasoning":${JSON.stringify(piece.text)}}`
      : `{"role":"assistant","content":${JSON.stringify(piece.text)},"reasoning":null}`;
    const logprobs =
      piece.reasoning || this.plan.topLogprobs === null
        ? "null"
        : `{"content":[${JSON.stringify(contentLogprob(this.plan, piece))}],"refusal":null}`;
    return `${this.head}{"index":${piece.choice},"delta":${delta},"finish_reason":null,"native_finish_reason":null,"logprobs":${logprobs}}]}\n\n`;
  }

  /**
   * A fragment of a tool call's arguments, as OpenAI streams them: the first chunk of a choice opens
   * the call (id, type, name, empty arguments), then each token follows in `function.arguments`.
   */
  private toolPiece(piece: Piece): string {
    const call = this.plan.toolCall!;
    const tail = `,"finish_reason":null,"native_finish_reason":null,"logprobs":null}]}\n\n`;
    let out = "";
    if (piece.index === 0) {
      out += `${this.head}{"index":${piece.choice},"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"${call.ids[piece.choice]}","type":"function","function":{"name":"${call.name}","arguments":""}}]}${tail}`;
    }
    return `${out}${this.head}{"index":${piece.choice},"delta":{"tool_calls":[{"index":0,"function":{"arguments":${JSON.stringify(piece.text)}}}]}${tail}`;
  }

  /** `debug.echo_upstream_body`'s first chunk: no choices, the request body as sent upstream. */
  echo(body: JsonObject): string {
    return `${this.head}],"debug":{"echo_upstream_body":${JSON.stringify(body)}}}\n\n`;
  }

  /** One finish chunk per choice. */
  finish(finishReason: string): string {
    let out = "";
    for (let choice = 0; choice < this.plan.n; choice++) {
      out += `${this.head}{"index":${choice},"delta":{"role":"assistant","content":""},"finish_reason":"${finishReason}","native_finish_reason":"${finishReason}","logprobs":null}]}\n\n`;
    }
    return out;
  }

  /** The last data chunk: no choices, the full usage. */
  usage(settlement: Settlement): string {
    return `${this.head}],"usage":${JSON.stringify(usageObject(this.plan, settlement))}}\n\n`;
  }

  error(): string {
    return `${this.head}{"index":0,"delta":{"content":""},"finish_reason":"error","native_finish_reason":"error","logprobs":null}],"error":${JSON.stringify(MID_STREAM_ERROR)}}\n\n`;
  }
}

function contentLogprob(plan: GenerationPlan, piece: Piece): ContentLogprob {
  return logprobOf(plan.seed, piece.choice, piece.index, piece.text, plan.topLogprobs ?? 0);
}

/**
 * A choice's message: text, or (when the plan calls a function and at least one token of its
 * arguments was produced) `content: null` and the call.
 */
function messageOf(
  plan: GenerationPlan,
  choice: number,
  content: string,
  reasoning: string,
): Record<string, unknown> {
  const message = { role: "assistant", content, refusal: null, reasoning: reasoning || null };
  const call = plan.toolCall;
  if (call === null || content === "") return message;
  return {
    ...message,
    content: null,
    tool_calls: [
      { id: call.ids[choice], type: "function", function: { name: call.name, arguments: content } },
    ],
  };
}

/**
 * `logprobs: true`: one entry per content token. A function call's arguments are not content, so a
 * choice that calls one lists none (as OpenAI's).
 */
function logprobsOf(plan: GenerationPlan, pieces: Piece[]): Record<string, unknown> | null {
  if (plan.topLogprobs === null) return null;
  if (plan.toolCall !== null) return { content: null, refusal: null };
  return { content: pieces.map((piece) => contentLogprob(plan, piece)), refusal: null };
}

/** The non-stream body for the first `pieceCount` pieces of the plan. */
export function completionJson(
  plan: GenerationPlan,
  pieceCount: number,
  finishReason: string,
  settlement: Settlement,
): string {
  const content: string[] = new Array(plan.n).fill("");
  const reasoning: string[] = new Array(plan.n).fill("");
  const contentPieces: Piece[][] = Array.from({ length: plan.n }, () => []);
  const end = Math.min(pieceCount, plan.pieces.length);
  for (let i = 0; i < end; i++) {
    const piece = plan.pieces[i]!;
    if (piece.reasoning) reasoning[piece.choice] += piece.text;
    else {
      content[piece.choice] += piece.text;
      if (plan.topLogprobs !== null) contentPieces[piece.choice]!.push(piece);
    }
  }
  const choices = content.map((text, index) => ({
    logprobs: logprobsOf(plan, contentPieces[index]!),
    finish_reason: finishReason,
    native_finish_reason: finishReason,
    index,
    message: messageOf(plan, index, text, reasoning[index]!),
    ...(finishReason === "error" && index === 0 ? { error: MID_STREAM_ERROR } : {}),
  }));
  return JSON.stringify({
    id: plan.id,
    provider: plan.model.providerName,
    model: plan.model.id,
    object: "chat.completion",
    created: plan.created,
    choices,
    system_fingerprint: null,
    usage: usageObject(plan, settlement),
  });
}
