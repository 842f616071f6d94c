/**
 * Validation of the chat body and the admission plan: the worst-case cost bound of DESIGN.md and the
 * max_tokens Wattfare forwards. Pure: no clock, no I/O.
 *
 * Worst case, with each price the dearest across `model` and every `models` entry, =
 *   (promptBound × max(prompt, cache-write price) + outBound × max(completion, reasoning price)
 *   + per-request and per-image fees) × n, × 1.05 (BYOK is only known afterwards).
 * /models lists one price per model, but a model is served by several providers at their own prices and
 * OpenRouter may route to a dearer one: the upstream body caps them (`provider.max_price`) at the prices
 * the bound was computed with. One cap holds for every model of the chain, so the bound takes each
 * price at its dearest across the chain.
 * promptBound counts the UTF-8 bytes of the whole request body as it is forwarded (so every prompt-side
 * field — messages, tools, functions, response_format, … — is covered; no tokenizer emits more tokens than
 * bytes), minus the bytes of image URLs, which are priced per part instead, plus overhead per message and
 * per tool.
 */
import { isUtf8 } from "node:buffer";
import { createHash } from "node:crypto";
import { ApiError } from "../../errors.js";
import { ceilDiv, type Nano } from "../../money.js";
import type { Catalogue, ModelPricing } from "./catalogue.js";

/** Chat-template tokens per message/tool and per request that no byte count sees. */
export const OVERHEAD_TOKENS = 16;
/** Prompt tokens allowed per image part (a high-detail image on the priciest tokenizers stays below). */
export const IMAGE_PART_TOKENS = 40_000;
/** Fewer output tokens than this is not a useful answer (and some providers refuse it). */
export const MIN_OUTPUT_TOKENS = 16;
const BYOK_MARGIN_NUM = 105n;
const BYOK_MARGIN_DEN = 100n;
/** pico → nano is ÷1000; with the ×105/100 margin the whole conversion is ×105 / 100_000. */
const PICO_TO_NANO_WITH_MARGIN_DEN = 1000n * BYOK_MARGIN_DEN;

export interface ChatRequest {
  body: Record<string, unknown>;
  model: string;
  /** `model` plus every `models` fallback, deduplicated. */
  candidates: string[];
  stream: boolean;
  n: number;
  /** `max_completion_tokens ?? max_tokens` as sent by the caller. */
  callerMaxTokens: number | null;
  promptBoundTokens: bigint;
  imageParts: number;
}

const invalid = (message: string, param?: string): ApiError =>
  new ApiError("invalid_request", message, param === undefined ? {} : { param });

/**
 * What may be a number written with an exponent: one starting after `[`, `,` or `:`. The body goes
 * upstream re-serialized, and JSON.stringify writes each number in its shortest plain form up to 1e21:
 * `1e20` (4 bytes) leaves as 21 digits. Every other JSON spelling re-serializes at most as long as it
 * came (escapes and whitespace only shrink). A match inside a string only costs a measurement; the
 * start of a number is asked for so that base64 image data (digits next to `e`s) rarely matches.
 */
const EXPONENT = /[[,:]\s*-?\d+(?:\.\d+)?[eE]/;

/** JSON text of a parsed body. JSON.parse takes any depth; JSON.stringify runs out of stack past a few thousand levels. */
function serialize(body: Record<string, unknown>): string {
  try {
    return JSON.stringify(body);
  } catch (error) {
    if (error instanceof RangeError) throw invalid("The request body is nested too deeply.");
    throw error;
  }
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === "object" && !Array.isArray(value);

function optionalPositiveInt(body: Record<string, unknown>, key: string): number | null {
  const value = body[key];
  if (value === undefined || value === null) return null;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw invalid(`${key} must be a positive integer`, key);
  }
  return value;
}

/** Content parts whose tokens the prompt bound covers: text and audio by their bytes, images per part. */
const PRICEABLE_PARTS = new Set(["text", "image_url", "input_audio"]);

function countParts(messages: unknown[]): { images: number; imageUrlBytes: number } {
  let images = 0;
  let imageUrlBytes = 0;
  for (const message of messages) {
    const content = (message as { content?: unknown }).content;
    if (!Array.isArray(content)) continue;
    for (const part of content) {
      const type = part !== null && typeof part === "object" ? (part as { type?: unknown }).type : undefined;
      if (typeof type !== "string" || !PRICEABLE_PARTS.has(type)) {
        // A file (a PDF by URL, or compressed text that parses into more tokens than its bytes) or a
        // video can be far larger than the request: refused, never guessed.
        throw invalid(
          `content parts of type ${JSON.stringify(type ?? null)} cannot be priced in advance; send text, image_url or input_audio`,
          "messages",
        );
      }
      if (type === "image_url") {
        images++;
        const url = (part as { image_url?: { url?: unknown } | string }).image_url;
        const text = typeof url === "string" ? url : url?.url;
        if (typeof text === "string") imageUrlBytes += Buffer.byteLength(text, "utf8");
      }
    }
  }
  return { images, imageUrlBytes };
}

export function parseChatRequest(raw: Buffer): ChatRequest {
  // Invalid UTF-8 would be re-encoded larger than it came (each bad byte a 3-byte U+FFFD) and so larger
  // than the prompt bound, which counts the bytes received.
  if (!isUtf8(raw)) throw invalid("The request body is not valid UTF-8.");
  const text = raw.toString("utf8");
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw invalid("The request body is not valid JSON.");
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw invalid("The request body must be a JSON object.");
  }
  const body = parsed as Record<string, unknown>;
  const model = body.model;
  if (typeof model !== "string" || model.length === 0)
    throw invalid("model is required (an OpenRouter model id)", "model");
  const messages = body.messages;
  if (!Array.isArray(messages) || messages.length === 0)
    throw invalid("messages must be a non-empty array", "messages");
  for (const m of messages) {
    if (m === null || typeof m !== "object" || Array.isArray(m))
      throw invalid("each message must be an object", "messages");
  }
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== "boolean") {
    throw invalid("stream must be a boolean", "stream");
  }
  const n = optionalPositiveInt(body, "n") ?? 1;
  if (n > 128) throw invalid("n must be at most 128", "n");
  const callerMaxTokens =
    optionalPositiveInt(body, "max_completion_tokens") ?? optionalPositiveInt(body, "max_tokens");
  const candidates = [model];
  if (body.models !== undefined && body.models !== null) {
    if (!Array.isArray(body.models) || body.models.some((m) => typeof m !== "string" || m.length === 0)) {
      throw invalid("models must be an array of model ids", "models");
    }
    for (const m of body.models as string[]) if (!candidates.includes(m)) candidates.push(m);
  }
  // Features billed outside the per-token prices cannot be bounded in advance: refuse, never guess.
  if (body.plugins !== undefined && body.plugins !== null) {
    throw invalid("plugins cannot be priced in advance, so Wattfare does not forward them", "plugins");
  }
  if (body.web_search_options !== undefined && body.web_search_options !== null) {
    throw invalid(
      "web_search_options cannot be priced in advance, so Wattfare does not forward it",
      "web_search_options",
    );
  }
  const provider = body.provider;
  if (provider !== undefined && provider !== null) {
    const maxPrice = isObject(provider) ? provider.max_price : undefined;
    if (!isObject(provider) || (maxPrice !== undefined && maxPrice !== null && !isObject(maxPrice))) {
      throw invalid("provider must be an object, and provider.max_price an object", "provider");
    }
  }
  const tier = body.service_tier;
  if (tier !== undefined && tier !== null && tier !== "auto" && tier !== "default") {
    throw invalid(
      `service_tier "${String(tier)}" cannot be priced in advance; use "auto" or "default", or leave it out`,
      "service_tier",
    );
  }
  if (Array.isArray(body.tools)) {
    for (const tool of body.tools) {
      const type = tool !== null && typeof tool === "object" ? (tool as { type?: unknown }).type : undefined;
      // Server tools (web search, web fetch, image generation) run upstream and are billed per use.
      if (type !== "function") {
        throw invalid(
          `tools of type ${JSON.stringify(type ?? null)} cannot be priced in advance; only function tools are forwarded`,
          "tools",
        );
      }
    }
  }
  const tools = Array.isArray(body.tools) ? body.tools.length : 0;
  const functions = Array.isArray(body.functions) ? body.functions.length : 0;
  const { images, imageUrlBytes } = countParts(messages);
  const items = BigInt(messages.length + tools + functions + 1);
  // The bytes that will be sent: more than came only when numbers were written with exponents.
  const bytes = EXPONENT.test(text) ? Math.max(raw.length, Buffer.byteLength(serialize(body))) : raw.length;
  const promptBoundTokens =
    BigInt(bytes - imageUrlBytes) +
    items * BigInt(OVERHEAD_TOKENS) +
    BigInt(images) * BigInt(IMAGE_PART_TOKENS);
  return {
    body,
    model,
    candidates,
    stream: body.stream === true,
    n,
    callerMaxTokens,
    promptBoundTokens,
    imageParts: images,
  };
}

interface Line {
  /** pico-USD independent of output length, for one choice. */
  fixed: bigint;
  /** pico-USD per output token. */
  perToken: bigint;
}

export interface Fit {
  outTokens: number;
  amountNano: Nano;
  /** True when Wattfare chose or lowered max_tokens (reported in x-wattfare-max-tokens). */
  adjusted: boolean;
}

export type FitRefusal = "clamp_off" | "too_small";

/** `provider.max_price` as OpenRouter reads it: prompt and completion in USD per million tokens, request and image in USD. */
export interface MaxPrice {
  prompt: number;
  completion: number;
  request: number;
  image: number;
}

export interface AdmissionPlan {
  request: ChatRequest;
  /** The dearest endpoint prices the bound holds for, forwarded so that no dearer provider serves the request. */
  maxPrice: MaxPrice;
  /** The largest affordable plan within `headroomNano`, or why there is none. */
  fit(headroomNano: Nano): Fit | FitRefusal;
  /** Worst-case reservation for exactly `outTokens` output tokens. */
  amountFor(outTokens: number): Nano;
}

export interface PlanOptions {
  defaultMaxTokens: number;
  /** `x-wattfare-clamp: off`: refuse instead of lowering the caller's max_tokens. */
  clampOff: boolean;
}

/** `param` is `model`, or `models` for a fallback. */
function pricing(catalogue: Catalogue, id: string, param: string): ModelPricing {
  const p = catalogue.byId.get(id);
  if (!p) throw invalid(unknownModel(catalogue, id), param);
  return p;
}

/**
 * A price as the bound takes it and `max_price` forwards it: a billionth above the listed one (at least
 * one pico-USD; free stays free), so that an endpoint at exactly the listed price still qualifies however
 * OpenRouter compares the two — as floats, per token or scaled to a million, where 0.15 per million can
 * read as 0.15000000000000002. Costs the payer nothing: the bound only reserves it.
 */
function withFloatMargin(pico: bigint): bigint {
  return pico === 0n ? 0n : pico + (pico + 999_999_999n) / 1_000_000_000n;
}

/** Says where the ids are, and which one a bare name (`gpt-4o`, as for OpenAI itself) probably meant. */
function unknownModel(catalogue: Catalogue, id: string): string {
  const refused = `model ${JSON.stringify(id)} is unknown or cannot be priced; GET /api/v1/models lists the models, by provider/model id`;
  if (id.includes("/")) return `${refused}.`;
  const suffix = `/${id}`;
  for (const known of catalogue.byId.keys()) {
    if (known.endsWith(suffix)) return `${refused}: did you mean ${JSON.stringify(known)}?`;
  }
  return `${refused} (e.g. "openai/gpt-4o-mini").`;
}

const maxBig = (a: bigint, b: bigint): bigint => (a > b ? a : b);

export function planAdmission(
  request: ChatRequest,
  catalogue: Catalogue,
  options: PlanOptions,
): AdmissionPlan {
  const models = request.candidates.map((id, i) => pricing(catalogue, id, i === 0 ? "model" : "models"));
  // Each price at its dearest across the chain: the forwarded max_price lets any model's provider charge it.
  const dearest = (price: (p: ModelPricing) => bigint): bigint =>
    withFloatMargin(models.reduce((max, p) => maxBig(max, price(p)), 0n));
  const input = dearest((p) => p.inputPico);
  const output = dearest((p) => p.outputPico);
  const requestFee = dearest((p) => p.requestPico);
  const image = dearest((p) => p.imagePico);
  const line: Line = {
    fixed: request.promptBoundTokens * input + requestFee + BigInt(request.imageParts) * image,
    perToken: output,
  };
  const maxPrice: MaxPrice = {
    // pico-USD per token is micro-USD per million tokens; read from exact decimal text, never scaled as a float.
    prompt: Number(`${input}e-6`),
    completion: Number(`${output}e-6`),
    request: Number(`${requestFee}e-12`),
    image: Number(`${image}e-12`),
  };
  const n = BigInt(request.n);
  const maxOutputs = models.map((m) => m.maxOutput).filter((m): m is number => m !== null);
  const modelMax = maxOutputs.length > 0 ? Math.min(...maxOutputs) : null;
  const defaultOut = Math.min(options.defaultMaxTokens, modelMax ?? options.defaultMaxTokens);
  const desired = request.callerMaxTokens ?? defaultOut;

  const amountFor = (out: number): Nano =>
    ceilDiv(n * (line.fixed + line.perToken * BigInt(out)) * BYOK_MARGIN_NUM, PICO_TO_NANO_WITH_MARGIN_DEN);

  // amountFor(out) ≤ H  ⟺  n·(fixed + perToken·out)·105 ≤ H·100_000.
  const maxAffordable = (headroom: Nano): number => {
    const left = headroom * PICO_TO_NANO_WITH_MARGIN_DEN - n * line.fixed * BYOK_MARGIN_NUM;
    if (left < 0n) return -1;
    if (line.perToken === 0n) return Number.MAX_SAFE_INTEGER;
    const fits = left / (n * line.perToken * BYOK_MARGIN_NUM);
    return fits > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(fits);
  };

  return {
    request,
    maxPrice,
    amountFor,
    fit(headroom) {
      const affordable = maxAffordable(headroom);
      let out = desired;
      if (affordable < desired) {
        if (request.callerMaxTokens !== null && options.clampOff) return "clamp_off";
        out = affordable;
        // Only a value Wattfare lowers has a floor; a caller may ask for fewer tokens itself.
        if (out < MIN_OUTPUT_TOKENS) return "too_small";
      }
      if (out < 1) return "too_small";
      return { outTokens: out, amountNano: amountFor(out), adjusted: out !== request.callerMaxTokens };
    },
  };
}

/**
 * The body forwarded upstream: the caller's, with max_tokens as admitted, provider prices capped at those
 * admitted (the caller's own lower caps kept), usage requested and a pseudonymous user.
 */
export function renderUpstreamBody(
  request: ChatRequest,
  outTokens: number,
  maxPrice: MaxPrice,
  appId: string,
  appUserId: string,
): string {
  // Re-serialized, never spliced into the caller's text: what goes upstream is exactly what was validated
  // and priced (a duplicated key in the text — `"n":100,"n":1` — would otherwise depend on which copy the
  // upstream's parser keeps).
  // A copy, then fields set on it. Not `{ ...body }`: adding properties to a spread copy costs ≈ 3.5 µs
  // more per request on Node 20 (V8 builds a fresh hidden class each time). A null prototype, so that a
  // caller's own "__proto__" key is copied as a key, as JSON.parse made it, not taken as a prototype.
  const body: Record<string, unknown> = Object.assign(Object.create(null), request.body);
  if (body.max_completion_tokens !== undefined && body.max_completion_tokens !== null) {
    body.max_completion_tokens = outTokens;
    if (body.max_tokens !== undefined && body.max_tokens !== null) body.max_tokens = outTokens;
  } else {
    body.max_tokens = outTokens;
  }
  body.provider = cappedProvider(body.provider, maxPrice);
  if (request.stream) {
    // Deprecated upstream (usage is always sent) but harmless, and it guards against older behaviour.
    const options = body.stream_options && typeof body.stream_options === "object" ? body.stream_options : {};
    body.stream_options = Object.assign(Object.create(null), options, { include_usage: true });
  }
  // OpenRouter isolates abuse per `user`; a stable pseudonym keeps one user's block off the whole key.
  if (body.user === undefined) body.user = pseudonymousUser(appId, appUserId);
  return serialize(body);
}

/** The caller's provider preferences with `max_price` no higher than what the reservation covers. */
function cappedProvider(provider: unknown, cap: MaxPrice): Record<string, unknown> {
  const own = isObject(provider) ? provider : {};
  const asked = isObject(own.max_price) ? own.max_price : {};
  const maxPrice: Record<string, unknown> = Object.assign(Object.create(null), asked);
  for (const key of ["prompt", "completion", "request", "image"] as const) {
    const value = asked[key];
    // A caller's own lower cap only narrows the providers further.
    const lower = typeof value === "number" && Number.isFinite(value) && value >= 0 && value < cap[key];
    maxPrice[key] = lower ? value : cap[key];
  }
  return Object.assign(Object.create(null), own, { max_price: maxPrice });
}

const pseudonyms = new Map<string, string>();

/** A stable pseudonym of (app, user) for OpenRouter's `user` field; cached (one SHA-256 per user, not per request). */
export function pseudonymousUser(appId: string, appUserId: string): string {
  const key = `${appId}\u0000${appUserId}`;
  let pseudonym = pseudonyms.get(key);
  if (pseudonym === undefined) {
    pseudonym = `wf_${createHash("sha256").update(key).digest("hex").slice(0, 32)}`;
    if (pseudonyms.size >= 10_000) pseudonyms.clear();
    pseudonyms.set(key, pseudonym);
  }
  return pseudonym;
}
