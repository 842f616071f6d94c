/**
 * `POST /api/v1/chat/completions`: OpenRouter's checks in its order — auth, body, the model (the
 * fallback chain: unknown, down, context too long), key limit, credits, funds preflight, moderation —
 * then injected faults, then the generation.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import { type Account, limitUsageNano, sha256Hex, spendableNano } from "./accounts.js";
import { planGeneration } from "./chat-plan.js";
import { chooseModel, parseChatRequest } from "./chat-request.js";
import { jsonCompletion, streamCompletion } from "./chat-respond.js";
import { BodyTooLargeError, bearerToken, readBody, sendError } from "./http-util.js";
import { isRecord, type JsonObject } from "./json.js";
import type { SimModel } from "./models.js";
import { nanoToAtto, preflight } from "./pricing.js";
import type { SimState } from "./state.js";
import { countPromptTokens } from "./tokenizer.js";
import type { Faults, RecordedRequest } from "./types.js";

/** Any request whose text contains this phrase is flagged by the (simulated) moderation model. */
export const MODERATION_TRIGGER = "TRIGGER_MODERATION";
const MODERATION_REASON = "harassment";
const FLAGGED_INPUT_MAX = 100;

const keyLimitMessage = (account: Account): string =>
  `Key limit exceeded (${account.limitReset ?? "total"} limit). Manage it using https://openrouter.ai/settings/keys`;
const NO_CREDITS_MESSAGE = "Insufficient credits. Add more using https://openrouter.ai/credits";

const RETRY_AFTER_SECONDS = "7";

const FAULT_ERRORS: Record<NonNullable<Faults["status"]>, { message: string; errorType: string }> = {
  408: { message: "Operation timed out. Please try again later.", errorType: "timeout" },
  429: { message: "Provider returned error", errorType: "rate_limit_exceeded" },
  500: { message: "Internal Server Error", errorType: "server" },
  502: { message: "Provider returned error", errorType: "provider_unavailable" },
  503: { message: "Provider returned error", errorType: "provider_overloaded" },
  504: { message: "Provider returned error", errorType: "timeout" },
  // The edge network gave up on the origin; the spec lists it among /chat/completions' answers.
  524: { message: "Infrastructure timeout: the provider did not answer in time", errorType: "timeout" },
  529: { message: "Provider returned error", errorType: "provider_overloaded" },
};

function redactedHeaders(req: IncomingMessage, keyHash: string | null): RecordedRequest["headers"] {
  const headers: RecordedRequest["headers"] = { ...req.headers };
  if (headers.authorization !== undefined) {
    headers.authorization = keyHash === null ? "[redacted]" : `Bearer sha256:${keyHash}`;
  }
  return headers;
}

function recordRequest(sim: SimState, req: IncomingMessage, res: ServerResponse, keyHash: string | null) {
  const record: RecordedRequest = {
    at: sim.now(),
    method: req.method ?? "POST",
    path: req.url ?? "",
    headers: redactedHeaders(req, keyHash),
    keyHash,
    body: null,
    generationId: null,
    // Read from the response, so the entry is right whenever it is looked at.
    get status() {
      return res.headersSent ? res.statusCode : 0;
    },
  };
  sim.recordRequest(record);
  return record;
}

/** OpenRouter shows at most 100 characters of the flagged text, cutting out the middle. */
function flaggedInput(body: JsonObject): string {
  const texts: string[] = [];
  const messages = Array.isArray(body.messages) ? body.messages : [];
  for (const message of messages) {
    if (!isRecord(message)) continue;
    const content = message.content;
    if (typeof content === "string") texts.push(content);
    else if (Array.isArray(content)) {
      for (const part of content) if (isRecord(part) && typeof part.text === "string") texts.push(part.text);
    }
  }
  const text = texts.find((t) => t.includes(MODERATION_TRIGGER)) ?? MODERATION_TRIGGER;
  if (text.length <= FLAGGED_INPUT_MAX) return text;
  const half = (FLAGGED_INPUT_MAX - 3) / 2;
  return `${text.slice(0, Math.ceil(half))}...${text.slice(-Math.floor(half))}`;
}

function moderationMetadata(model: SimModel, body: JsonObject): Record<string, unknown> {
  return {
    reasons: [MODERATION_REASON],
    flagged_input: flaggedInput(body),
    provider_name: model.providerName,
    model_slug: model.id,
  };
}

/** The preflight's 402 names the output bound and what the key can afford instead. */
function insufficientFundsMessage(requested: number, affordable: number, limitBinds: boolean): string {
  const advice = limitBinds
    ? "To increase, visit https://openrouter.ai/settings/keys and create a key with a higher total limit"
    : "To increase, visit https://openrouter.ai/settings/credits and add more credits";
  return `This request requires more credits, or fewer max_tokens. You requested up to ${requested} tokens, but can only afford ${affordable}. ${advice}`;
}

function authenticate(
  sim: SimState,
  req: IncomingMessage,
): { token: string | undefined; account: Account | undefined } {
  const token = bearerToken(req);
  return { token, account: token === undefined ? undefined : sim.accounts.find(token) };
}

export async function handleChatCompletions(
  sim: SimState,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const createdAt = sim.now();
  const { token, account } = authenticate(sim, req);
  const keyHash = account ? account.keyHash : token === undefined ? null : sha256Hex(token);
  const recorded = recordRequest(sim, req, res, keyHash);
  const generationId = sim.nextGenerationId();
  recorded.generationId = generationId;
  const headers: OutgoingHttpHeaders = { "x-generation-id": generationId };
  const fail = (
    status: number,
    message: string,
    metadata?: Record<string, unknown>,
    extra?: OutgoingHttpHeaders,
  ) =>
    sendError(res, status, message, { ...(metadata ? { metadata } : {}), headers: { ...headers, ...extra } });

  let raw: string;
  try {
    raw = await readBody(req);
  } catch (error) {
    if (error instanceof BodyTooLargeError) fail(413, "Request body too large");
    return;
  }

  if (token === undefined) return fail(401, "No auth credentials found");
  if (!account) return fail(401, "User not found.");
  // Management keys only reach the management API (reference §8).
  if (account.management)
    return fail(401, "Management API keys cannot be used for inference. Use an API key instead.");

  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return fail(400, "Invalid JSON in request body");
  }
  recorded.body = json;
  const parsed = parseChatRequest(json);
  if (!parsed.ok) return fail(400, parsed.message);
  const request = parsed.value;
  const prompt = countPromptTokens(request.body);
  const chosen = chooseModel(request, prompt.tokens, sim.faults.downModels);
  if (!chosen.ok) return fail(chosen.refusal.status, chosen.refusal.message, chosen.refusal.metadata);
  const model = chosen.value;

  if (account.limitNano !== null && limitUsageNano(account, createdAt) >= account.limitNano)
    return fail(403, keyLimitMessage(account));
  if (account.creditsNano <= 0n) return fail(402, NO_CREDITS_MESSAGE);

  const outputBound = request.maxTokens ?? model.maxCompletionTokens;
  const funds = preflight(model, prompt.tokens, outputBound, request.n, prompt.images, account.byok);
  const spendable = spendableNano(account, createdAt);
  if (funds.worstAtto > nanoToAtto(spendable)) {
    const limitBinds = account.limitNano !== null && spendable < account.creditsNano;
    return fail(
      402,
      insufficientFundsMessage(outputBound, funds.affordableOutputTokens(spendable), limitBinds),
    );
  }

  if (raw.includes(MODERATION_TRIGGER)) {
    return fail(
      403,
      `${model.id} requires moderation on ${model.providerName}. Your input was flagged for "${MODERATION_REASON}". No credits were charged.`,
      moderationMetadata(model, request.body),
    );
  }

  const faults = sim.faults;
  if (faults.status !== null) {
    const fault = FAULT_ERRORS[faults.status];
    const retry =
      faults.status === 429 || faults.status === 503 ? { "retry-after": RETRY_AFTER_SECONDS } : undefined;
    return fail(
      faults.status,
      fault.message,
      { error_type: fault.errorType, provider_name: model.providerName },
      retry,
    );
  }
  if (faults.resetBeforeHeaders) {
    req.socket.resetAndDestroy();
    return;
  }
  if (faults.hangBeforeHeaders) return;

  const plan = planGeneration({
    id: generationId,
    model,
    account,
    createdAt,
    promptTokens: prompt.tokens,
    cache: sim.promptCache.use(account.keyHash, model, request.body, prompt.tokens, createdAt),
    images: prompt.images,
    n: request.n,
    streamed: request.stream,
    externalUser: request.user,
    echoBody:
      isRecord(request.body.debug) && request.body.debug.echo_upstream_body === true ? request.body : null,
    maxTokens: request.maxTokens,
    responseTokens: sim.settings.responseTokens,
    seed: sim.settings.seed,
    output: request.output,
    // OpenRouter drops the parameters a model does not support rather than refusing the request.
    topLogprobs: model.supportedParameters.includes("logprobs") ? request.topLogprobs : null,
  });
  if (request.stream) streamCompletion(sim, plan, res);
  else jsonCompletion(sim, plan, res);
}
