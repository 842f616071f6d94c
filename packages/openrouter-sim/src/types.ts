/** Public types of the simulator. Other packages code against these names; keep them stable. */

export interface SimulatorOptions {
  /** TCP port; default 0 (an ephemeral port — read `url`). */
  port?: number;
  /** Interface to bind; default `127.0.0.1`. */
  host?: string;
  /** Seed for the deterministic response text; default 1. */
  seed?: number;
  /** Delay before the first content chunk (stream) or before the body (non-stream), ms; default 0. */
  ttftMs?: number;
  /** Delay between content chunks, ms; default 0. */
  interTokenMs?: number;
  /** Completion tokens generated per choice when `max_tokens` allows; default 16. */
  responseTokens?: number;
  /** `: OPENROUTER PROCESSING` comment lines before the first data event of a stream; default 1. */
  processingComments?: number;
  /**
   * Blank lines a delayed non-stream answer sends, with its headers, at once — the JSON follows when the
   * generation ends (OpenRouter keeps slow non-stream requests alive this way); default 0.
   */
  nonStreamBlankLines?: number;
  /** `/generation` answers 404 for this long after a generation ends, ms; default 0. */
  generationNotFoundMs?: number;
  /** USD credited to keys created through OAuth; default 10. */
  oauthCredits?: number;
  /** Generation records kept for `/generation` and `control.generations()`; default 100 000. Totals are kept regardless. */
  generationHistory?: number;
  /** Injectable clock (ms since the epoch) for code expiry and generation visibility; default `Date.now`. */
  now?: () => number;
}

export interface Simulator {
  /** e.g. `http://127.0.0.1:43123` — the OAuth page lives at `url + "/auth"`. */
  url: string;
  /** `url + "/api/v1"`: the base URL for OpenAI-compatible clients. */
  apiUrl: string;
  control: SimulatorControl;
  /** Stops listening, drops open connections (hung requests included) and cancels timers. */
  close(): Promise<void>;
}

export interface CreateKeyOptions {
  /** Credit balance in USD; default 10. */
  credits?: number;
  /** Per-key spending limit in USD; default null (unlimited). */
  limit?: number | null;
  /** When the limit starts over (midnight UTC; weeks from Monday); default null: it counts all usage. */
  limitReset?: LimitReset | null;
  /** Bring-your-own-key: 5% fee from credits, the provider bills the full price upstream. */
  byok?: boolean;
  /** Management (provisioning) key: `/key` works, completions are refused. */
  management?: boolean;
  /** `/key` label; default like OpenRouter's `sk-or-v1-abc...xyz`. */
  label?: string;
}

export type FinishReason = "stop" | "length" | "tool_calls" | "error";

export interface GenerationRecord {
  id: string;
  /** sha256 hex of the key that paid. */
  keyHash: string;
  /** The model that answered (after `models` fallbacks). */
  model: string;
  providerName: string;
  promptTokens: number;
  /** Of the prompt tokens: read from the prompt cache, and written to it. */
  cachedTokens: number;
  cacheWriteTokens: number;
  /** Completion tokens billed, reasoning included (summed over `n` choices). */
  completionTokens: number;
  reasoningTokens: number;
  images: number;
  n: number;
  streamed: boolean;
  /** The client went away before the response ended. */
  cancelled: boolean;
  finishReason: FinishReason | null;
  isByok: boolean;
  /** `usage.cost` / `total_cost` exactly as emitted (JavaScript's `String(number)`). */
  costText: string;
  /** `costText` rounded up to the nano-USD. */
  costNano: bigint;
  /** BYOK only: `upstream_inference_cost` as emitted; null otherwise, and under `byokUpstreamCostNull`. */
  upstreamCostText: string | null;
  /** BYOK only: `upstreamCostText` rounded up to the nano-USD; 0 otherwise. */
  upstreamCostNano: bigint;
  /** What the payer really pays: `costNano`, plus `upstreamCostNano` for BYOK. */
  billedNano: bigint;
  /** The body's `user`, shown as `external_user`. */
  externalUser: string | null;
  /** Clock ms when the request arrived and when the generation ended. */
  createdAt: number;
  endedAt: number;
}

export interface RecordedRequest {
  /** Clock ms when the request arrived. */
  at: number;
  method: string;
  path: string;
  /** Request headers; `authorization` is replaced by `Bearer sha256:<hex of the key>`. */
  headers: Record<string, string | string[] | undefined>;
  /** sha256 hex of the bearer key, or null without one. */
  keyHash: string | null;
  /** The parsed JSON body, or null when it did not parse. */
  body: unknown;
  /** The `X-Generation-Id` sent back, once known. */
  generationId: string | null;
  /** The HTTP status sent back; 0 while pending or when the socket was dropped before headers. */
  status: number;
}

export interface Faults {
  /** Answer with this error before headers (OpenRouter envelope; 429/503 carry `Retry-After: 7`). */
  status: 408 | 429 | 500 | 502 | 503 | 504 | 524 | 529 | null;
  /** Destroy the socket before any response. */
  resetBeforeHeaders: boolean;
  /** Destroy the socket after N content chunks (streams) or N tokens (non-stream); bills the tokens sent. */
  resetAfterChunks: number | null;
  /** Send OpenRouter's mid-stream error event after N chunks, then end; bills nothing (zero completion insurance). */
  errorAfterChunks: number | null;
  /** Never answer. */
  hangBeforeHeaders: boolean;
  /** Stop sending after N chunks and keep the socket open; bills the tokens sent once the client leaves. */
  hangAfterChunks: number | null;
  /**
   * BYOK generations report `upstream_inference_cost: null` (in `usage.cost_details` and `/generation`),
   * as when the provider did not report its price. The provider's charge is still billed.
   */
  byokUpstreamCostNull: boolean;
  /**
   * Models whose provider is down: asked for, they answer 502 "Provider returned error"; in a `models`
   * fallback chain the next one answers instead (billed at its own price).
   */
  downModels: readonly string[];
}

export interface Timing {
  ttftMs?: number;
  interTokenMs?: number;
  responseTokens?: number;
  /** Extension: change the `/generation` 404 window. */
  generationNotFoundMs?: number;
  /** Extension: blank lines a delayed non-stream answer sends with its headers at once (0: headers come with the body). */
  nonStreamBlankLines?: number;
}

export type LimitReset = "daily" | "weekly" | "monthly";

export interface KeyState {
  keyHash: string;
  label: string;
  userId: string;
  creditsNano: bigint;
  limitNano: bigint | null;
  limitReset: LimitReset | null;
  /** OpenRouter credit spend through this key (`usage.cost` summed, each rounded up). */
  usageNano: bigint;
  /** BYOK provider spend (`upstream_inference_cost` summed). */
  byokUsageNano: bigint;
  billedNano: bigint;
  byok: boolean;
  management: boolean;
}

export interface SimulatorControl {
  /** Returns `sk-or-v1-<64 hex>`; default 10 USD of credits, no limit. */
  createKey(options?: CreateKeyOptions): string;
  /** Sets the remaining credit balance (USD). */
  setCredits(key: string, usd: number): void;
  /** Sets the key's limit (USD) and, when given, when it starts over. */
  setLimit(key: string, usd: number | null, reset?: LimitReset | null): void;
  /** Remaining credit balance (USD); may go negative when concurrent requests overspend, as on OpenRouter. */
  credits(key: string): number;
  /** The key's exact money state. */
  keyState(key: string): KeyState;
  /** Exact total billed to this key: Σ over its generations of the emitted cost text rounded up to 1e-9 USD (BYOK: cost + upstream). */
  billedNano(key: string): bigint;
  totalBilledNano(): bigint;
  /** Every billed generation still in history, oldest first, optionally for one key. */
  generations(key?: string): GenerationRecord[];
  /** Resolves when the generation with this id has been billed (e.g. after a client disconnect). */
  waitForGeneration(id: string, timeoutMs?: number): Promise<GenerationRecord>;
  /** Applies to following requests until `resetFaults()`. */
  setFaults(faults: Partial<Faults>): void;
  resetFaults(): void;
  faults(): Faults;
  setTiming(timing: Timing): void;
  /** The last 1000 chat requests, oldest first. */
  requests(): RecordedRequest[];
  clearRequests(): void;
}
