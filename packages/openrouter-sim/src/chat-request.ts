/** Reads the fields of a chat request the simulator acts on; everything else passes unread, as upstream. */
import { isRecord, type JsonObject } from "./json.js";
import { MAX_TOP_LOGPROBS } from "./logprobs.js";
import { findModel, type SimModel } from "./models.js";

/** OpenRouter falls back to the account's default model when a request names none. */
export const DEFAULT_MODEL_ID = "openai/gpt-4o-mini";
const MAX_CHOICES = 128;

export interface ChatRequest {
  body: JsonObject;
  stream: boolean;
  n: number;
  /** `max_completion_tokens ?? max_tokens`, or null when absent. */
  maxTokens: number | null;
  /** `model` first, then `models` in order, deduplicated. */
  modelIds: string[];
  user: string | null;
  /** What the choices hold: prose, a call of one function tool, or JSON text (structured outputs). */
  output: OutputSpec;
  /** With `logprobs: true`: how many `top_logprobs` each token lists (0 when not asked); null without. */
  topLogprobs: number | null;
  /** `provider.max_price`: prompt and completion in USD per million tokens, request and image in USD. */
  maxPrice: MaxPrice;
}

export interface MaxPrice {
  prompt?: number;
  completion?: number;
  request?: number;
  image?: number;
}

export interface FunctionTool {
  name: string;
  /** The function's `parameters` JSON schema; undefined when the tool takes none. */
  parameters: unknown;
}

export type OutputSpec =
  | { kind: "text" }
  | { kind: "tool_call"; tool: FunctionTool }
  /** `schema` undefined: `json_object`, any JSON object. */
  | { kind: "json"; schema: unknown };

export type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };

const fail = (message: string): { ok: false; message: string } => ({ ok: false, message });

function positiveInteger(value: unknown): boolean {
  return typeof value === "number" && Number.isInteger(value) && value >= 1;
}

export function parseChatRequest(body: unknown): Parsed<ChatRequest> {
  if (!isRecord(body)) return fail("Invalid request body: expected a JSON object");
  if (body.messages === undefined && body.prompt === undefined) {
    return fail('Input required: specify "prompt" or "messages"');
  }
  if (body.messages !== undefined && !Array.isArray(body.messages)) return fail("messages must be an array");

  const n = body.n ?? 1;
  if (!positiveInteger(n) || (n as number) > MAX_CHOICES)
    return fail(`n must be an integer from 1 to ${MAX_CHOICES}`);

  const rawMax = body.max_completion_tokens ?? body.max_tokens ?? null;
  if (rawMax !== null && !positiveInteger(rawMax)) return fail("max_tokens must be a positive integer");

  if (body.model !== undefined && typeof body.model !== "string") return fail("model must be a string");
  const fallbacks = body.models ?? [];
  if (!Array.isArray(fallbacks) || fallbacks.some((id) => typeof id !== "string")) {
    return fail("models must be an array of model IDs");
  }
  const modelIds = [
    ...new Set([...(typeof body.model === "string" ? [body.model] : []), ...(fallbacks as string[])]),
  ];

  const tools = parseTools(body.tools);
  if (!tools.ok) return tools;
  const toolChoice = parseToolChoice(body.tool_choice, tools.value);
  if (!toolChoice.ok) return toolChoice;
  const format = parseResponseFormat(body.response_format);
  if (!format.ok) return format;

  if (body.logprobs !== undefined && body.logprobs !== null && typeof body.logprobs !== "boolean") {
    return fail("Invalid type for 'logprobs': expected a boolean.");
  }
  const top = body.top_logprobs ?? null;
  if (
    top !== null &&
    !(Number.isInteger(top) && (top as number) >= 0 && (top as number) <= MAX_TOP_LOGPROBS)
  ) {
    return fail(
      `Invalid 'top_logprobs': expected an integer between 0 and ${MAX_TOP_LOGPROBS}, got ${JSON.stringify(top)}.`,
    );
  }

  const maxPrice = parseMaxPrice(body.provider);
  if (!maxPrice.ok) return maxPrice;

  return {
    ok: true,
    value: {
      body,
      stream: body.stream === true,
      n: n as number,
      maxTokens: rawMax as number | null,
      modelIds: modelIds.length > 0 ? modelIds : [DEFAULT_MODEL_ID],
      user: typeof body.user === "string" ? body.user : null,
      output: chooseOutput(body.messages, tools.value, toolChoice.value, format.value),
      topLogprobs: body.logprobs === true ? ((top as number | null) ?? 0) : null,
      maxPrice: maxPrice.value,
    },
  };
}

/** OpenAI's rule for function names. */
const FUNCTION_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

/**
 * The function tools of `tools`. Other tool types (OpenRouter's server tools such as
 * `openrouter:web_search`) pass unread, as the simulator runs none of them.
 */
function parseTools(tools: unknown): Parsed<FunctionTool[]> {
  if (tools === undefined || tools === null) return { ok: true, value: [] };
  if (!Array.isArray(tools)) return fail("Invalid type for 'tools': expected an array.");
  const functions: FunctionTool[] = [];
  for (const [i, tool] of tools.entries()) {
    if (!isRecord(tool)) return fail(`Invalid type for 'tools[${i}]': expected an object.`);
    if (tool.type !== "function") continue;
    const fn = tool.function;
    if (!isRecord(fn)) return fail(`Missing required parameter: 'tools[${i}].function'.`);
    if (typeof fn.name !== "string") return fail(`Missing required parameter: 'tools[${i}].function.name'.`);
    if (!FUNCTION_NAME.test(fn.name)) {
      return fail(
        `Invalid 'tools[${i}].function.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]{1,64}$'.`,
      );
    }
    if (fn.parameters !== undefined && fn.parameters !== null && !isRecord(fn.parameters)) {
      return fail(`Invalid type for 'tools[${i}].function.parameters': expected an object.`);
    }
    functions.push({ name: fn.name, parameters: fn.parameters ?? undefined });
  }
  return { ok: true, value: functions };
}

type ToolChoice = "none" | "auto" | "required" | { name: string };

function parseToolChoice(choice: unknown, tools: FunctionTool[]): Parsed<ToolChoice> {
  if (choice === undefined || choice === null) return { ok: true, value: "auto" };
  if (choice === "none" || choice === "auto") return { ok: true, value: choice };
  let value: ToolChoice;
  if (choice === "required") value = choice;
  else if (
    isRecord(choice) &&
    choice.type === "function" &&
    isRecord(choice.function) &&
    typeof choice.function.name === "string"
  ) {
    value = { name: choice.function.name };
  } else {
    return fail(
      `Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or {"type":"function","function":{"name":…}}.`,
    );
  }
  if (tools.length === 0) {
    return fail("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.");
  }
  if (typeof value === "object" && !tools.some((tool) => tool.name === value.name)) {
    return fail(
      `Invalid value for 'tool_choice': no function named '${value.name}' was specified in 'tools'.`,
    );
  }
  return { ok: true, value };
}

type ResponseFormat = { type: "text" } | { type: "json"; schema: unknown };

function parseResponseFormat(format: unknown): Parsed<ResponseFormat> {
  if (format === undefined || format === null) return { ok: true, value: { type: "text" } };
  if (!isRecord(format)) return fail("Invalid type for 'response_format': expected an object.");
  switch (format.type) {
    case "text":
      return { ok: true, value: { type: "text" } };
    case "json_object":
      return { ok: true, value: { type: "json", schema: undefined } };
    case "json_schema": {
      const spec = format.json_schema;
      if (!isRecord(spec)) return fail("Missing required parameter: 'response_format.json_schema'.");
      if (typeof spec.name !== "string") {
        return fail("Missing required parameter: 'response_format.json_schema.name'.");
      }
      if (spec.schema !== undefined && !isRecord(spec.schema)) {
        return fail("Invalid type for 'response_format.json_schema.schema': expected an object.");
      }
      return { ok: true, value: { type: "json", schema: spec.schema } };
    }
    default:
      return fail(
        `Invalid value for 'response_format.type': expected one of 'text', 'json_object' or 'json_schema'.`,
      );
  }
}

/**
 * A model with function tools calls one whenever `tool_choice` demands it, and under `auto` (the
 * default) whenever the last message is the user's; after a tool's result it answers. Deterministic,
 * so tests can rely on it.
 */
function chooseOutput(
  messages: unknown,
  tools: FunctionTool[],
  choice: ToolChoice,
  format: ResponseFormat,
): OutputSpec {
  if (tools.length > 0 && choice !== "none") {
    const last = Array.isArray(messages) ? messages.at(-1) : undefined;
    const call = choice !== "auto" || (isRecord(last) && last.role === "user");
    if (call) {
      const named = typeof choice === "object" ? tools.find((tool) => tool.name === choice.name) : undefined;
      return { kind: "tool_call", tool: named ?? tools[0]! };
    }
  }
  return format.type === "json" ? { kind: "json", schema: format.schema } : { kind: "text" };
}

const MAX_PRICE_KEYS = ["prompt", "completion", "request", "image"] as const;

/** `provider.max_price`, each a non-negative number when given. */
function parseMaxPrice(provider: unknown): Parsed<MaxPrice> {
  const given = isRecord(provider) ? provider.max_price : undefined;
  if (given === undefined || given === null) return { ok: true, value: {} };
  if (!isRecord(given)) return fail("provider.max_price must be an object");
  const value: MaxPrice = {};
  for (const key of MAX_PRICE_KEYS) {
    const price = given[key];
    if (price === undefined || price === null) continue;
    if (typeof price !== "number" || !(price >= 0)) return fail(`provider.max_price.${key} must be a number`);
    value[key] = price;
  }
  return { ok: true, value };
}

/**
 * Whether the model's endpoint is dearer than `max_price` allows. Compared as floats, per million for
 * tokens — one plausible way (OpenRouter does not document how it compares): a cap written as the exact
 * listed price can then exclude that very price (0.0000033 × 1e6 = 3.3000000000000003 > 3.3).
 */
function dearerThan(model: SimModel, max: MaxPrice): boolean {
  const perMillion = (price: string) => Number(price) * 1_000_000;
  return (
    (max.prompt !== undefined && perMillion(model.pricing.prompt) > max.prompt) ||
    (max.completion !== undefined && perMillion(model.pricing.completion) > max.completion) ||
    (max.request !== undefined && Number(model.pricing.request) > max.request) ||
    (max.image !== undefined && Number(model.pricing.image) > max.image)
  );
}

/** Why a candidate of the fallback chain cannot answer; undefined when it can. */
export interface CandidateRefusal {
  status: number;
  message: string;
  metadata?: Record<string, unknown>;
}

/**
 * The model that answers: OpenRouter tries `model`, then each of `models` in order, after any error of
 * the one before (unknown, its provider down, the context too long); the last one's error is returned.
 */
export function chooseModel(
  request: ChatRequest,
  promptTokens: number,
  downModels: readonly string[],
): { ok: true; value: SimModel } | { ok: false; refusal: CandidateRefusal } {
  let refusal: CandidateRefusal = { status: 400, message: "No models provided" };
  for (const id of request.modelIds) {
    const model = findModel(id);
    if (!model) {
      refusal = { status: 400, message: `${id} is not a valid model ID` };
      continue;
    }
    if (downModels.includes(model.id)) {
      refusal = {
        status: 502,
        message: "Provider returned error",
        metadata: { error_type: "provider_unavailable", provider_name: model.providerName },
      };
      continue;
    }
    if (dearerThan(model, request.maxPrice)) {
      refusal = {
        status: 404,
        message: `No endpoints found for ${model.id} within the max price. Raise provider.max_price or remove it.`,
        metadata: { error_type: "no_endpoints" },
      };
      continue;
    }
    const requestedContext = promptTokens + (request.maxTokens ?? 0);
    if (requestedContext > model.contextLength) {
      refusal = {
        status: 400,
        message: `This endpoint's maximum context length is ${model.contextLength} tokens. However, you requested about ${requestedContext} tokens (${promptTokens} of text input, ${request.maxTokens ?? 0} in the output). Please reduce the length of either one, or use the "middle-out" transform to compress your prompt automatically.`,
      };
      continue;
    }
    return { ok: true, value: model };
  }
  return { ok: false, refusal };
}
