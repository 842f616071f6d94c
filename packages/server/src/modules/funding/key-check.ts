/**
 * What upstream `GET /key` says about a funding key (openrouter-api.md §7), as one pure decision shared
 * by connecting a key and by the chat proxy's re-checks.
 */
import { type Nano, parseUsdToNano } from "../../money.js";

export type KeyCheck =
  | {
      kind: "usable";
      /** `insufficient` when the key's own limit is used up; account credits are invisible to `/key`. */
      state: "ok" | "insufficient";
      /** The key's own limit headroom, rounded down; null = no limit of its own. */
      limitRemainingNano: Nano | null;
      /** Management keys can't call completions: never accepted as funding. */
      management: boolean;
    }
  | { kind: "invalid" }
  | { kind: "unknown"; status: number };

/**
 * @example
 * readKeyCheck(200, '{"data":{"limit_remaining":null,"is_management_key":false}}');
 * // { kind: "usable", state: "ok", limitRemainingNano: null, management: false }
 * readKeyCheck(401, "…"); // { kind: "invalid" }
 */
export function readKeyCheck(status: number, text: string): KeyCheck {
  if (status === 401) return { kind: "invalid" };
  if (status !== 200) return { kind: "unknown", status };
  try {
    const data = (JSON.parse(text) as { data?: Record<string, unknown> }).data;
    if (data === null || typeof data !== "object") return { kind: "unknown", status };
    const remaining = data.limit_remaining;
    // Negative after an overspend (OpenRouter doesn't clamp it); zero headroom either way.
    const limitRemainingNano =
      typeof remaining === "number" ? parseUsdToNano(String(Math.max(remaining, 0)), "down") : null;
    return {
      kind: "usable",
      state: limitRemainingNano !== null && limitRemainingNano <= 0n ? "insufficient" : "ok",
      limitRemainingNano,
      management: data.is_management_key === true || data.is_provisioning_key === true,
    };
  } catch {
    return { kind: "unknown", status };
  }
}

/** What to log of an error on these calls: only its class or code, as its message could echo a request detail. */
export function errorName(error: unknown): string {
  if (error instanceof Error) return (error as Error & { code?: string }).code ?? error.name;
  return "unknown";
}
