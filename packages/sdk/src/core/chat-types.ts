/**
 * OpenAI-compatible chat completion types, written here so the SDK needs no runtime or type dependency.
 * They follow OpenAI's names and shapes, plus the OpenRouter fields Wattfare passes through (`models`,
 * `provider`, `reasoning`, `usage.cost`, …). `chat-types.test.ts` checks that the official `openai`
 * package's params and results are assignable to these, so code written for one fits the other.
 */

/** A text part; `cache_control` is OpenRouter's prompt-caching marker. */
export interface ChatCompletionContentPartText {
  type: "text";
  text: string;
  cache_control?: { type: "ephemeral"; ttl?: string };
}

/** An image by URL or `data:` URL. Wattfare prices each image part, not its bytes. */
export interface ChatCompletionContentPartImage {
  type: "image_url";
  image_url: { url: string; detail?: "auto" | "low" | "high" };
}

/** Base64 audio input. */
export interface ChatCompletionContentPartInputAudio {
  type: "input_audio";
  input_audio: { data: string; format: string };
}

/** A file (for example a PDF) by data URL or id. */
export interface ChatCompletionContentPartFile {
  type: "file";
  file: { file_data?: string; file_id?: string; filename?: string };
}

/** A refusal, in an assistant message sent back as history. */
export interface ChatCompletionContentPartRefusal {
  type: "refusal";
  refusal: string;
}

/**
 * One part of a user message's content.
 *
 * @example
 * ```ts
 * const parts: ChatCompletionContentPart[] = [
 *   { type: "text", text: "What is in this picture?" },
 *   { type: "image_url", image_url: { url: "https://example.com/cat.png" } },
 * ];
 * ```
 */
export type ChatCompletionContentPart =
  | ChatCompletionContentPartText
  | ChatCompletionContentPartImage
  | ChatCompletionContentPartInputAudio
  | ChatCompletionContentPartFile;

/**
 * A tool call the model made.
 *
 * @example
 * ```ts
 * const call: ChatCompletionMessageToolCall = {
 *   id: "call_1", type: "function", function: { name: "lookup", arguments: '{"q":"weather"}' },
 * };
 * ```
 */
export type ChatCompletionMessageToolCall =
  | { id: string; type: "function"; function: { name: string; arguments: string } }
  | { id: string; type: "custom"; custom: { name: string; input: string } };

/** Instructions from the app. */
export interface ChatCompletionSystemMessageParam {
  role: "system";
  content: string | ChatCompletionContentPartText[];
  name?: string;
}

/** Instructions from the app, for models that distinguish developer from system messages. */
export interface ChatCompletionDeveloperMessageParam {
  role: "developer";
  content: string | ChatCompletionContentPartText[];
  name?: string;
}

/** What the end user said. */
export interface ChatCompletionUserMessageParam {
  role: "user";
  content: string | ChatCompletionContentPart[];
  name?: string;
}

/** An earlier answer, sent back as history. */
export interface ChatCompletionAssistantMessageParam {
  role: "assistant";
  content?: string | Array<ChatCompletionContentPartText | ChatCompletionContentPartRefusal> | null;
  name?: string;
  refusal?: string | null;
  tool_calls?: ChatCompletionMessageToolCall[];
  /** Deprecated by OpenAI in favour of `tool_calls`. */
  function_call?: { name: string; arguments: string } | null;
  /** OpenRouter: the model's reasoning, sent back for models that continue from it. */
  reasoning?: string | null;
}

/** A tool's result. */
export interface ChatCompletionToolMessageParam {
  role: "tool";
  content: string | ChatCompletionContentPartText[];
  tool_call_id: string;
}

/** Deprecated by OpenAI in favour of tool messages. */
export interface ChatCompletionFunctionMessageParam {
  role: "function";
  content: string | null;
  name: string;
}

/**
 * One message of the conversation.
 *
 * @example
 * ```ts
 * const messages: ChatCompletionMessageParam[] = [
 *   { role: "system", content: "You are terse." },
 *   { role: "user", content: "Hello" },
 * ];
 * ```
 */
export type ChatCompletionMessageParam =
  | ChatCompletionSystemMessageParam
  | ChatCompletionDeveloperMessageParam
  | ChatCompletionUserMessageParam
  | ChatCompletionAssistantMessageParam
  | ChatCompletionToolMessageParam
  | ChatCompletionFunctionMessageParam;

/**
 * A tool the model may call.
 *
 * @example
 * ```ts
 * const tool: ChatCompletionTool = {
 *   type: "function",
 *   function: { name: "lookup", parameters: { type: "object", properties: { q: { type: "string" } } } },
 * };
 * ```
 */
export type ChatCompletionTool =
  | {
      type: "function";
      function: {
        name: string;
        description?: string;
        /** A JSON Schema object. */
        parameters?: { [key: string]: unknown };
        strict?: boolean | null;
      };
    }
  | { type: "custom"; custom: { name: string; description?: string; format?: unknown } };

/** Which tool, if any, the model must call. */
export type ChatCompletionToolChoiceOption =
  | "none"
  | "auto"
  | "required"
  | { type: "function"; function: { name: string } }
  | { type: "custom"; custom: { name: string } }
  | {
      type: "allowed_tools";
      allowed_tools: { mode: "auto" | "required"; tools: Array<{ [key: string]: unknown }> };
    };

/** The answer's format. */
export type ChatCompletionResponseFormat =
  | { type: "text" }
  | { type: "json_object" }
  | {
      type: "json_schema";
      json_schema: {
        name: string;
        description?: string;
        schema?: { [key: string]: unknown };
        strict?: boolean | null;
      };
    };

/** Fields shared by streaming and non-streaming requests. */
export interface ChatCompletionCreateParamsBase {
  /** Any OpenRouter model id, e.g. `openai/gpt-4o-mini`. Required: Wattfare prices it before admitting. */
  model: string;
  messages: ChatCompletionMessageParam[];
  /** OpenRouter: fallback models, tried in order; Wattfare reserves for the most expensive. */
  models?: string[];
  /**
   * Wattfare caps the output to what the user's remaining budget allows and says so in the
   * `x-wattfare-max-tokens` response header; when absent it sets a default (4096 unless configured).
   */
  max_tokens?: number | null;
  /** Same as `max_tokens`, OpenAI's newer name; takes precedence. */
  max_completion_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  n?: number | null;
  stop?: string | string[] | null;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  logit_bias?: { [token: string]: number } | null;
  logprobs?: boolean | null;
  top_logprobs?: number | null;
  seed?: number | null;
  response_format?: ChatCompletionResponseFormat;
  tools?: ChatCompletionTool[];
  tool_choice?: ChatCompletionToolChoiceOption;
  parallel_tool_calls?: boolean;
  reasoning_effort?: "none" | "minimal" | "low" | "medium" | "high" | "xhigh" | "max" | (string & {}) | null;
  stream?: boolean | null;
  /** Wattfare always asks the provider for usage (it bills from it), so the last chunk carries `usage`. */
  stream_options?: { include_usage?: boolean; include_obfuscation?: boolean } | null;
  /** OpenRouter: reasoning settings. */
  reasoning?: { effort?: string; max_tokens?: number; exclude?: boolean; enabled?: boolean };
  /** OpenRouter: provider routing preferences (order, only, ignore, sort, …). */
  provider?: { [key: string]: unknown };
  /** OpenRouter: prompt transforms such as `"middle-out"`. */
  transforms?: string[];
  /** OpenRouter sampling extras. */
  top_k?: number;
  min_p?: number;
  top_a?: number;
  repetition_penalty?: number;
}

/**
 * A request answered with one JSON `ChatCompletion`.
 *
 * @example
 * ```ts
 * const params: ChatCompletionCreateParamsNonStreaming = {
 *   model: "openai/gpt-4o-mini",
 *   messages: [{ role: "user", content: "Hello" }],
 * };
 * ```
 */
export interface ChatCompletionCreateParamsNonStreaming extends ChatCompletionCreateParamsBase {
  stream?: false | null;
}

/**
 * A request answered with a stream of `ChatCompletionChunk`s.
 *
 * @example
 * ```ts
 * const params: ChatCompletionCreateParamsStreaming = {
 *   model: "openai/gpt-4o-mini",
 *   messages: [{ role: "user", content: "Hello" }],
 *   stream: true,
 * };
 * ```
 */
export interface ChatCompletionCreateParamsStreaming extends ChatCompletionCreateParamsBase {
  stream: true;
}

/**
 * Either kind of chat completion request.
 *
 * @example
 * ```ts
 * const params: ChatCompletionCreateParams = { model: "openai/gpt-4o-mini", messages: [{ role: "user", content: "Hi" }], stream: false };
 * ```
 */
export type ChatCompletionCreateParams =
  | ChatCompletionCreateParamsNonStreaming
  | ChatCompletionCreateParamsStreaming;

/** Why generation stopped; OpenRouter adds `error` when the provider failed part-way. */
export type ChatCompletionFinishReason =
  | "stop"
  | "length"
  | "tool_calls"
  | "content_filter"
  | "function_call"
  | "error";

/** Token counts and, from OpenRouter, the cost in USD that Wattfare billed the user. */
export interface CompletionUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details?: { cached_tokens?: number; audio_tokens?: number; cache_write_tokens?: number };
  completion_tokens_details?: {
    reasoning_tokens?: number;
    audio_tokens?: number;
    accepted_prediction_tokens?: number;
    rejected_prediction_tokens?: number;
  };
  /** OpenRouter: credits charged, USD. */
  cost?: number;
  /** OpenRouter: whether the provider was paid with the payer's own provider key. */
  is_byok?: boolean;
  /** OpenRouter: the provider's own charge, for BYOK requests. */
  cost_details?: { upstream_inference_cost?: number | null; [key: string]: unknown };
}

/** Log probabilities of the output tokens, when requested. */
export interface ChatCompletionLogprobs {
  content: ChatCompletionTokenLogprob[] | null;
  refusal: ChatCompletionTokenLogprob[] | null;
}

/** One output token's log probability. */
export interface ChatCompletionTokenLogprob {
  token: string;
  bytes: number[] | null;
  logprob: number;
  top_logprobs: Array<{ token: string; bytes: number[] | null; logprob: number }>;
}

/** OpenRouter's error on a choice whose provider failed part-way (`finish_reason: "error"`). */
export interface ChatCompletionChoiceError {
  code: number | string;
  message: string;
  metadata?: { [key: string]: unknown };
}

/** The assistant's answer in a non-streamed completion. */
export interface ChatCompletionMessage {
  role: "assistant";
  content: string | null;
  refusal?: string | null;
  tool_calls?: ChatCompletionMessageToolCall[];
  function_call?: { name: string; arguments: string } | null;
  annotations?: Array<{
    type: "url_citation";
    url_citation: { url: string; title: string; start_index: number; end_index: number; content?: string };
  }>;
  /** OpenRouter: the model's reasoning text, when it returns one. */
  reasoning?: string | null;
}

/**
 * A non-streamed answer.
 *
 * @example
 * ```ts
 * function answerText(completion: ChatCompletion): string {
 *   return completion.choices[0]?.message.content ?? "";
 * }
 * ```
 */
export interface ChatCompletion {
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  choices: Array<{
    index: number;
    message: ChatCompletionMessage;
    finish_reason: ChatCompletionFinishReason | null;
    /** OpenRouter: the provider's own finish reason. */
    native_finish_reason?: string | null;
    logprobs?: ChatCompletionLogprobs | null;
    error?: ChatCompletionChoiceError;
  }>;
  usage?: CompletionUsage;
  system_fingerprint?: string | null;
  service_tier?: string | null;
  /** OpenRouter: which provider served it. */
  provider?: string;
}

/** One chunk's delta for one choice. */
export interface ChatCompletionChunkDelta {
  role?: "developer" | "system" | "user" | "assistant" | "tool";
  content?: string | null;
  refusal?: string | null;
  tool_calls?: Array<{
    index: number;
    id?: string;
    type?: "function";
    function?: { name?: string; arguments?: string };
  }>;
  function_call?: { name?: string; arguments?: string };
  /** OpenRouter: a piece of the model's reasoning. */
  reasoning?: string | null;
}

/**
 * One event of a streamed answer. The last chunk has no choices and carries `usage`.
 *
 * @example
 * ```ts
 * function deltaText(chunk: ChatCompletionChunk): string {
 *   return chunk.choices[0]?.delta.content ?? "";
 * }
 * ```
 */
export interface ChatCompletionChunk {
  id: string;
  object: "chat.completion.chunk";
  created: number;
  model: string;
  choices: Array<{
    index: number;
    delta: ChatCompletionChunkDelta;
    finish_reason: ChatCompletionFinishReason | null;
    native_finish_reason?: string | null;
    logprobs?: ChatCompletionLogprobs | null;
    error?: ChatCompletionChoiceError;
  }>;
  usage?: CompletionUsage | null;
  system_fingerprint?: string | null;
  service_tier?: string | null;
  provider?: string;
}
