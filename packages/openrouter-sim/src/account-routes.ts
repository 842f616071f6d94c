/** `GET /api/v1/key` (and legacy `/auth/key`), `GET /api/v1/credits` and `GET /api/v1/generation`. */
import type { IncomingMessage, ServerResponse } from "node:http";
import { type Account, limitUsageNano, windowUsage } from "./accounts.js";
import { bearerToken, sendError, sendJson } from "./http-util.js";
import { nanoToUsd } from "./pricing.js";
import type { SimState } from "./state.js";
import type { GenerationRecord } from "./types.js";

function authenticated(sim: SimState, req: IncomingMessage, res: ServerResponse): Account | undefined {
  const token = bearerToken(req);
  if (token === undefined) {
    sendError(res, 401, "No auth credentials found");
    return undefined;
  }
  const account = sim.accounts.find(token);
  if (!account) sendError(res, 401, "User not found.");
  return account;
}

/**
 * OpenRouter's `/key`. `limit_remaining` reflects the key's own limit only (null when unlimited), as
 * upstream: an ordinary key cannot see the account balance. The simulator exposes the balance through
 * `control.credits(key)` and, for management keys, `GET /api/v1/credits`.
 */
export function handleKey(sim: SimState, req: IncomingMessage, res: ServerResponse): void {
  const account = authenticated(sim, req, res);
  if (!account) return;
  const now = sim.now();
  const daily = windowUsage(account, "daily", now);
  const weekly = windowUsage(account, "weekly", now);
  const monthly = windowUsage(account, "monthly", now);
  sendJson(
    res,
    200,
    JSON.stringify({
      data: {
        label: account.label,
        limit: account.limitNano === null ? null : nanoToUsd(account.limitNano),
        limit_remaining:
          account.limitNano === null ? null : nanoToUsd(account.limitNano - limitUsageNano(account, now)),
        limit_reset: account.limitReset,
        include_byok_in_limit: false,
        // UTC windows; weeks run Monday to Sunday.
        usage: nanoToUsd(account.usageNano),
        usage_daily: nanoToUsd(daily.usageNano),
        usage_weekly: nanoToUsd(weekly.usageNano),
        usage_monthly: nanoToUsd(monthly.usageNano),
        byok_usage: nanoToUsd(account.byokUsageNano),
        byok_usage_daily: nanoToUsd(daily.byokUsageNano),
        byok_usage_weekly: nanoToUsd(weekly.byokUsageNano),
        byok_usage_monthly: nanoToUsd(monthly.byokUsageNano),
        is_free_tier: false,
        is_management_key: account.management,
        is_provisioning_key: account.management,
        expires_at: null,
        creator_user_id: account.userId,
        rate_limit: { requests: -1, interval: "10s", note: "This field is deprecated and safe to ignore." },
      },
    }),
  );
}

/** Account balance; like OpenRouter, only management keys may read it. */
export function handleCredits(sim: SimState, req: IncomingMessage, res: ServerResponse): void {
  const account = authenticated(sim, req, res);
  if (!account) return;
  if (!account.management) {
    sendError(
      res,
      403,
      "Only management keys can fetch credits. Create one at https://openrouter.ai/settings/management-keys",
    );
    return;
  }
  sendJson(
    res,
    200,
    JSON.stringify({
      data: {
        total_credits: nanoToUsd(account.creditsNano + account.usageNano),
        total_usage: nanoToUsd(account.usageNano),
      },
    }),
  );
}

function generationJson(record: GenerationRecord): string {
  const totalCost = Number(record.costText); // re-emits exactly `costText`
  const elapsed = record.endedAt - record.createdAt;
  return JSON.stringify({
    data: {
      id: record.id,
      upstream_id: `chatcmpl-${record.id.slice(-20)}`,
      total_cost: totalCost,
      cache_discount: null,
      upstream_inference_cost: record.upstreamCostText === null ? null : Number(record.upstreamCostText),
      created_at: new Date(record.createdAt).toISOString(),
      model: record.model,
      app_id: null,
      streamed: record.streamed,
      cancelled: record.cancelled,
      provider_name: record.providerName,
      latency: elapsed,
      moderation_latency: null,
      generation_time: elapsed,
      finish_reason: record.finishReason,
      native_finish_reason: record.finishReason,
      tokens_prompt: record.promptTokens,
      tokens_completion: record.completionTokens,
      native_tokens_prompt: record.promptTokens,
      native_tokens_completion: record.completionTokens,
      native_tokens_completion_images: 0,
      native_tokens_reasoning: record.reasoningTokens,
      native_tokens_cached: record.cachedTokens,
      num_media_prompt: record.images,
      num_media_completion: 0,
      num_input_audio_prompt: 0,
      num_search_results: 0,
      num_fetches: 0,
      web_search_engine: null,
      origin: "",
      usage: totalCost,
      is_byok: record.isByok,
      external_user: record.externalUser,
      api_type: "completions",
      router: null,
      provider_responses: null,
      service_tier: null,
    },
  });
}

export function handleGeneration(
  sim: SimState,
  req: IncomingMessage,
  res: ServerResponse,
  query: URLSearchParams,
): void {
  const account = authenticated(sim, req, res);
  if (!account) return;
  const id = query.get("id");
  if (!id) {
    sendError(res, 400, "id is required");
    return;
  }
  const record = sim.generations.get(id);
  // OpenRouter indexes generations asynchronously: a lookup right after the end can 404 for a while.
  if (!record || sim.now() < record.endedAt + sim.settings.generationNotFoundMs) {
    sendError(res, 404, `Generation ${id} not found`);
    return;
  }
  if (record.keyHash !== account.keyHash) {
    sendError(res, 403, "You do not have permission to access this generation");
    return;
  }
  sendJson(res, 200, generationJson(record));
}
