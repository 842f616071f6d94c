/** Reads the fields of a chat request the simulator acts on; everything else passes unread, as upstream. */
import { isRecord, type JsonObject } from "./json.js";
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
}

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

  return {
    ok: true,
    value: {
      body,
      stream: body.stream === true,
      n: n as number,
      maxTokens: rawMax as number | null,
      modelIds: modelIds.length > 0 ? modelIds : [DEFAULT_MODEL_ID],
      user: typeof body.user === "string" ? body.user : null,
    },
  };
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
