/**
 * DESIGN.md "Upstream responses": how an upstream error status before the body becomes ours. Pure.
 */
import { ApiError } from "../../errors.js";
import { H } from "../../http/headers.js";

/**
 * `refresh-limit`: the funds afford a smaller request ("can only afford M", M > 0): not out of credits,
 * but the cached key limit may be stale (lowered, or spent elsewhere), so it is read again.
 */
export type FundingEffect = "none" | "confirm-invalid" | "insufficient" | "refresh-limit";

export interface MappedUpstreamError {
  error: ApiError;
  /** What the error says about the payer's funding key. */
  funding: FundingEffect;
}

function upstreamMessage(text: string): string | undefined {
  try {
    const parsed = JSON.parse(text) as { error?: { message?: unknown; metadata?: { reasons?: unknown } } };
    const message = parsed.error?.message;
    const reasons = parsed.error?.metadata?.reasons;
    const base = typeof message === "string" ? message.slice(0, 500) : undefined;
    if (Array.isArray(reasons) && reasons.length > 0)
      return `${base ?? "Flagged by moderation"} (${reasons.join(", ")})`;
    return base;
  } catch {
    return undefined;
  }
}

export function mapUpstreamError(
  status: number,
  text: string,
  retryAfter: string | undefined,
): MappedUpstreamError {
  const message = upstreamMessage(text);
  if (status === 400 || status === 404 || status === 413 || status === 422) {
    return {
      error: new ApiError("invalid_request", message ?? "The model provider rejected the request."),
      funding: "none",
    };
  }
  if (status === 401) {
    return {
      error: new ApiError(
        "funding_invalid",
        "The payer's funding key was rejected; they need to reconnect it.",
      ),
      funding: "confirm-invalid",
    };
  }
  if (status === 402 || (status === 403 && /key limit exceeded/i.test(message ?? ""))) {
    // "… can only afford N": the funds cover a smaller request, so the funding is not locked out; its
    // cached limit is read again, so the next admission is sized to it.
    const affordable = Number(/can only afford (\d+)/i.exec(message ?? "")?.[1] ?? 0);
    return {
      error: new ApiError(
        "funding_invalid",
        `The payer's funding has insufficient credits or hit its key limit.${message === undefined ? "" : ` OpenRouter said: ${message}`}`,
      ),
      funding: affordable > 0 ? "refresh-limit" : "insufficient",
    };
  }
  if (status === 403) {
    return {
      error: new ApiError("invalid_request", message ?? "The request was blocked by moderation."),
      funding: "none",
    };
  }
  const headers: Record<string, string> = {};
  if (retryAfter !== undefined && /^\d{1,6}$/.test(retryAfter)) headers[H.retryAfter] = retryAfter;
  return {
    error: new ApiError("upstream", message ?? `The model provider answered ${status}.`, { headers }),
    funding: "none",
  };
}
