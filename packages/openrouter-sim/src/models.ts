/**
 * The simulated model catalogue, in the shape `GET /api/v1/models` returns.
 *
 * Prices are OpenRouter's: decimal STRINGS in USD per token (per request / per image for `request` and
 * `image`). Each entry exists to exercise one behaviour of a metering proxy; see the README table.
 */

export interface ModelPricing {
  prompt: string;
  completion: string;
  request: string;
  image: string;
  web_search: string;
  internal_reasoning: string;
  input_cache_read?: string;
  input_cache_write?: string;
  /** USD per output image token, on models that generate images. */
  image_output?: string;
}

export interface SimModel {
  id: string;
  name: string;
  description: string;
  /** Unix seconds, as in the catalogue. */
  created: number;
  /** Shown as `provider` in chunks and `provider_name` in `/generation` and moderation errors. */
  providerName: string;
  tokenizer: string;
  contextLength: number;
  /** `top_provider.max_completion_tokens`: the preflight's output bound when a request gives none. */
  maxCompletionTokens: number;
  isModerated: boolean;
  /**
   * Whether aborting a stream stops billing. OpenRouter lists providers that do not support it; with
   * those the model keeps generating and the full response is billed.
   */
  cancellable: boolean;
  /** Spends part of each response on internal reasoning tokens, billed at `internal_reasoning`. */
  reasons: boolean;
  pricing: ModelPricing;
  supportedParameters: readonly string[];
  /** `architecture.output_modalities`; `["text"]` when absent. */
  outputModalities?: readonly string[];
}

const COMMON_PARAMETERS = [
  "max_tokens",
  "temperature",
  "top_p",
  "stop",
  "frequency_penalty",
  "presence_penalty",
  "seed",
  "response_format",
  "structured_outputs",
  "tools",
  "tool_choice",
] as const;

const CREATED = 1_735_689_600; // 2025-01-01, a fixed date keeps the catalogue byte-stable

export const MODEL_CATALOGUE: readonly SimModel[] = [
  {
    id: "openai/gpt-4o-mini",
    name: "OpenAI: GPT-4o-mini",
    description: "Cheap, fast general model; the default for tests.",
    created: CREATED,
    providerName: "OpenAI",
    tokenizer: "GPT",
    contextLength: 128_000,
    maxCompletionTokens: 16_384,
    isModerated: true,
    cancellable: true,
    reasons: false,
    pricing: {
      prompt: "0.00000015",
      completion: "0.0000006",
      request: "0",
      image: "0.000217",
      web_search: "0",
      internal_reasoning: "0",
      input_cache_read: "0.000000075",
    },
    supportedParameters: [...COMMON_PARAMETERS, "logprobs", "top_logprobs", "n"],
  },
  {
    id: "anthropic/claude-3.5-haiku",
    name: "Anthropic: Claude 3.5 Haiku",
    description: "Different prices and explicit cache-write pricing.",
    created: CREATED,
    providerName: "Anthropic",
    tokenizer: "Claude",
    contextLength: 200_000,
    maxCompletionTokens: 8_192,
    isModerated: true,
    cancellable: true,
    reasons: false,
    pricing: {
      prompt: "0.0000008",
      completion: "0.000004",
      request: "0",
      image: "0",
      web_search: "0",
      internal_reasoning: "0",
      input_cache_read: "0.00000008",
      input_cache_write: "0.000001",
    },
    supportedParameters: [...COMMON_PARAMETERS, "top_k"],
  },
  {
    id: "meta-llama/llama-3.2-1b-instruct",
    name: "Meta: Llama 3.2 1B Instruct",
    description: "So cheap that usage.cost prints with an exponent (e.g. 1.95e-7).",
    created: CREATED,
    providerName: "DeepInfra",
    tokenizer: "Llama3",
    contextLength: 131_072,
    maxCompletionTokens: 16_384,
    isModerated: false,
    cancellable: true,
    reasons: false,
    pricing: {
      prompt: "0.000000005",
      completion: "0.0000000075",
      request: "0",
      image: "0",
      web_search: "0",
      internal_reasoning: "0",
    },
    supportedParameters: [...COMMON_PARAMETERS, "top_k", "min_p", "repetition_penalty"],
  },
  {
    id: "wattfare/fee-model",
    name: "Wattfare: Fee Model",
    description: "Charges a per-request fee and a per-image fee on top of tokens.",
    created: CREATED,
    providerName: "Wattfare Labs",
    tokenizer: "Other",
    contextLength: 65_536,
    maxCompletionTokens: 8_192,
    isModerated: false,
    cancellable: true,
    reasons: false,
    pricing: {
      prompt: "0.000001",
      completion: "0.000002",
      request: "0.001",
      image: "0.0005",
      web_search: "0",
      internal_reasoning: "0",
    },
    supportedParameters: [...COMMON_PARAMETERS],
  },
  {
    id: "wattfare/odd-price",
    name: "Wattfare: Odd Price",
    description: "Priced where floats round badly: $3.30 and $6.60 per million tokens.",
    created: CREATED,
    providerName: "Wattfare Labs",
    tokenizer: "Other",
    contextLength: 65_536,
    maxCompletionTokens: 8_192,
    isModerated: false,
    cancellable: true,
    reasons: false,
    pricing: {
      prompt: "0.0000033",
      completion: "0.0000066",
      request: "0",
      image: "0",
      web_search: "0",
      internal_reasoning: "0",
    },
    supportedParameters: [...COMMON_PARAMETERS],
  },
  {
    id: "wattfare/non-cancellable",
    name: "Wattfare: Non-cancellable",
    description: "Served by a provider without stream cancellation: a disconnect bills the full response.",
    created: CREATED,
    providerName: "Wattfare Batch",
    tokenizer: "Other",
    contextLength: 32_768,
    maxCompletionTokens: 4_096,
    isModerated: false,
    cancellable: false,
    reasons: false,
    pricing: {
      prompt: "0.0000005",
      completion: "0.0000015",
      request: "0",
      image: "0",
      web_search: "0",
      internal_reasoning: "0",
    },
    supportedParameters: [...COMMON_PARAMETERS],
  },
  {
    id: "wattfare/expensive",
    name: "Wattfare: Expensive",
    description: "A dollar goes in a few requests (about 0.18 USD for a short prompt and 16 tokens).",
    created: CREATED,
    providerName: "Wattfare Labs",
    tokenizer: "Other",
    contextLength: 32_768,
    maxCompletionTokens: 4_096,
    isModerated: false,
    cancellable: true,
    reasons: false,
    pricing: {
      prompt: "0.001",
      completion: "0.01",
      request: "0",
      image: "0",
      web_search: "0",
      internal_reasoning: "0",
    },
    supportedParameters: [...COMMON_PARAMETERS],
  },
  {
    id: "wattfare/reasoner",
    name: "Wattfare: Reasoner",
    description: "Half of each response is internal reasoning, priced above completion tokens.",
    created: CREATED,
    providerName: "Wattfare Labs",
    tokenizer: "Other",
    contextLength: 200_000,
    maxCompletionTokens: 32_000,
    isModerated: false,
    cancellable: true,
    reasons: true,
    pricing: {
      prompt: "0.000001",
      completion: "0.000004",
      request: "0",
      image: "0",
      web_search: "0",
      internal_reasoning: "0.000008",
    },
    supportedParameters: [...COMMON_PARAMETERS, "reasoning", "include_reasoning"],
  },
  {
    id: "wattfare/image-maker",
    name: "Wattfare: Image Maker",
    description:
      "Outputs images only, so /models lists it only with output_modalities=all or image; the simulator answers it in text.",
    created: CREATED,
    providerName: "Wattfare Labs",
    tokenizer: "Other",
    contextLength: 32_768,
    maxCompletionTokens: 4_096,
    isModerated: false,
    cancellable: true,
    reasons: false,
    pricing: {
      prompt: "0.0000003",
      completion: "0.0000025",
      request: "0",
      image: "0",
      web_search: "0",
      internal_reasoning: "0",
      image_output: "0.00003",
    },
    supportedParameters: ["max_tokens", "temperature", "top_p", "seed"],
    outputModalities: ["image"],
  },
];

const MODELS_BY_ID: ReadonlyMap<string, SimModel> = new Map(MODEL_CATALOGUE.map((m) => [m.id, m]));

export function findModel(id: string): SimModel | undefined {
  return MODELS_BY_ID.get(id);
}

function catalogueEntry(model: SimModel): Record<string, unknown> {
  return {
    id: model.id,
    canonical_slug: model.id,
    hugging_face_id: null,
    name: model.name,
    created: model.created,
    description: model.description,
    context_length: model.contextLength,
    architecture: {
      modality: `${inputModalities(model).join("+")}->${outputModalities(model).join("+")}`,
      input_modalities: inputModalities(model),
      output_modalities: outputModalities(model),
      tokenizer: model.tokenizer,
      instruct_type: null,
    },
    pricing: model.pricing,
    top_provider: {
      context_length: model.contextLength,
      max_completion_tokens: model.maxCompletionTokens,
      is_moderated: model.isModerated,
    },
    per_request_limits: null,
    supported_parameters: model.supportedParameters,
    default_parameters: null,
    expiration_date: null,
    links: { details: `/api/v1/models/${model.id}/endpoints` },
  };
}

const inputModalities = (model: SimModel): string[] =>
  model.pricing.image === "0" ? ["text"] : ["text", "image"];
const outputModalities = (model: SimModel): readonly string[] => model.outputModalities ?? ["text"];

function modelsResponse(models: readonly SimModel[]): string {
  return JSON.stringify({
    data: models.map(catalogueEntry),
    total_count: models.length,
    links: { next: null },
  });
}

/**
 * The models an `output_modalities` query selects, as OpenRouter filters `/models`: `text` when the
 * parameter is absent or empty, every model for `all`, else those that output any of a comma list.
 */
export function modelsWithOutput(param: string | null): readonly SimModel[] {
  const wanted = (param || "text")
    .split(",")
    .map((m) => m.trim())
    .filter((m) => m !== "");
  if (wanted.includes("all")) return MODEL_CATALOGUE;
  return MODEL_CATALOGUE.filter((model) => outputModalities(model).some((m) => wanted.includes(m)));
}

/** The `/api/v1/models` bodies, serialised once: the catalogue never changes while a simulator runs. */
const MODELS_RESPONSE_JSON = modelsResponse(modelsWithOutput(null));
const ALL_MODELS_RESPONSE_JSON = modelsResponse(MODEL_CATALOGUE);

/** The `/api/v1/models` body for an `output_modalities` query parameter (null when absent). */
export function modelsResponseJson(outputModalitiesParam: string | null): string {
  if (!outputModalitiesParam || outputModalitiesParam === "text") return MODELS_RESPONSE_JSON;
  if (outputModalitiesParam === "all") return ALL_MODELS_RESPONSE_JSON;
  return modelsResponse(modelsWithOutput(outputModalitiesParam));
}
