/**
 * Explicit prompt caching, as Anthropic's models behave through OpenRouter: a request whose messages
 * carry a `cache_control` breakpoint (on a message or one of its content parts) caches the prompt up to
 * and including that message. The first such request writes the cache — those tokens billed at
 * `input_cache_write`, dearer than `prompt` — and the same prefix from the same key within 5 minutes
 * reads it (`input_cache_read`), each hit keeping it 5 more minutes. Only models priced for cache writes
 * cache this way; they report `cache_write_tokens` beside `cached_tokens`.
 */
import { createHash } from "node:crypto";
import { isRecord, type JsonObject } from "./json.js";
import type { SimModel } from "./models.js";
import { countPromptTokens } from "./tokenizer.js";

export const PROMPT_CACHE_TTL_MS = 5 * 60_000;
const PRUNE_AT = 10_000;

export interface PromptCacheUse {
  /** Prompt tokens read from the cache (`cached_tokens`). */
  cachedTokens: number;
  /** Prompt tokens written to it (`cache_write_tokens`). */
  cacheWriteTokens: number;
}

export const NO_CACHE_USE: PromptCacheUse = Object.freeze({ cachedTokens: 0, cacheWriteTokens: 0 });

const hasBreakpoint = (message: unknown): boolean =>
  isRecord(message) &&
  (isRecord(message.cache_control) ||
    (Array.isArray(message.content) &&
      message.content.some((part) => isRecord(part) && isRecord(part.cache_control))));

export class PromptCache {
  /** key hash + model + prefix digest → when the entry expires (clock ms). */
  private readonly entries = new Map<string, number>();

  /** What this request reads from or writes to the cache, and the cache updated accordingly. */
  use(keyHash: string, model: SimModel, body: JsonObject, promptTokens: number, now: number): PromptCacheUse {
    if (model.pricing.input_cache_write === undefined || !Array.isArray(body.messages)) return NO_CACHE_USE;
    const messages: unknown[] = body.messages;
    let last = -1;
    for (let i = 0; i < messages.length; i++) if (hasBreakpoint(messages[i])) last = i;
    if (last === -1) return NO_CACHE_USE;
    const prefix = messages.slice(0, last + 1);
    const tokens = Math.min(countPromptTokens({ messages: prefix } as JsonObject).tokens, promptTokens);
    const id = `${keyHash} ${model.id} ${createHash("sha256").update(JSON.stringify(prefix)).digest("hex")}`;
    const hit = (this.entries.get(id) ?? 0) > now;
    if (!hit && this.entries.size >= PRUNE_AT) {
      for (const [entry, expiresAt] of this.entries) if (expiresAt <= now) this.entries.delete(entry);
    }
    this.entries.set(id, now + PROMPT_CACHE_TTL_MS);
    return hit
      ? { cachedTokens: tokens, cacheWriteTokens: 0 }
      : { cachedTokens: 0, cacheWriteTokens: tokens };
  }
}
