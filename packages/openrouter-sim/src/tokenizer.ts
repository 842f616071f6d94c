/**
 * The simulator's tokenizer. Like a real provider's, it differs from Wattfare's prompt bound, but it
 * never counts more than one token per UTF-8 byte of the prompt-side JSON plus the fixed overheads, so a
 * bound built from bytes + overheads always holds:
 *
 *   tokens = 3
 *          + Σ messages  (ceil(bytes(JSON(message)) / 4) + 4)      image URLs excluded, see below
 *          + Σ tools     (ceil(bytes(JSON(tool)) / 4) + 4)          likewise `functions`
 *          + Σ other prompt-side fields ceil(bytes(JSON(field)) / 4)
 *          + Σ image parts min(85, bytes(JSON(url)))
 *
 * An image is tokenized like a vision model does — a flat count, not its base64 length — and priced per
 * part through `pricing.image`; capping at the URL's own byte length keeps the one-token-per-byte bound.
 */
import { isRecord, type JsonObject } from "./json.js";

/** Prompt-side fields that are single values (arrays of messages/tools are handled separately). */
const SCALAR_PROMPT_FIELDS = [
  "tool_choice",
  "function_call",
  "response_format",
  "prediction",
  "prompt",
] as const;
const LIST_PROMPT_FIELDS = ["tools", "functions"] as const;

export const TOKENS_PER_MESSAGE = 4;
export const TOKENS_PER_TOOL = 4;
export const TOKENS_PER_REQUEST = 3;
export const TOKENS_PER_IMAGE = 85;

export interface PromptCount {
  tokens: number;
  /** Image parts in messages: each costs `pricing.image`. */
  images: number;
}

const byteTokens = (json: string): number => Math.ceil(Buffer.byteLength(json, "utf8") / 4);

function imageUrlOf(part: unknown): string | undefined {
  if (!isRecord(part) || part.type !== "image_url") return undefined;
  const image = part.image_url;
  if (typeof image === "string") return image;
  if (isRecord(image) && typeof image.url === "string") return image.url;
  return undefined;
}

function countMessage(message: unknown, count: PromptCount): void {
  const content = isRecord(message) ? message.content : undefined;
  if (!Array.isArray(content) || !content.some((part) => imageUrlOf(part) !== undefined)) {
    count.tokens += byteTokens(JSON.stringify(message) ?? "null") + TOKENS_PER_MESSAGE;
    return;
  }
  // Only messages that carry images pay for the replacer; they are rare and their URLs are huge.
  const json = JSON.stringify(message, (key, value: unknown) => {
    if (key === "url" || key === "image_url") {
      if (typeof value === "string") {
        count.images += 1;
        count.tokens += Math.min(TOKENS_PER_IMAGE, Buffer.byteLength(JSON.stringify(value), "utf8"));
        return "";
      }
    }
    return value;
  });
  count.tokens += byteTokens(json) + TOKENS_PER_MESSAGE;
}

/** Counts the prompt tokens of a chat request body. Deterministic and cheap: no per-word work. */
export function countPromptTokens(body: JsonObject): PromptCount {
  const count: PromptCount = { tokens: TOKENS_PER_REQUEST, images: 0 };
  const messages = body.messages;
  if (Array.isArray(messages)) for (const message of messages) countMessage(message, count);
  for (const field of LIST_PROMPT_FIELDS) {
    const list = body[field];
    if (Array.isArray(list)) {
      for (const item of list) count.tokens += byteTokens(JSON.stringify(item) ?? "null") + TOKENS_PER_TOOL;
    } else if (list !== undefined) {
      count.tokens += byteTokens(JSON.stringify(list) ?? "null");
    }
  }
  for (const field of SCALAR_PROMPT_FIELDS) {
    const value = body[field];
    if (value !== undefined) count.tokens += byteTokens(JSON.stringify(value) ?? "null");
  }
  return count;
}

/** The most UTF-8 bytes one generated token of text carries: the same 4 the prompt count divides by. */
const BYTES_PER_TEXT_TOKEN = 4;

/**
 * Generated text that is not the simulator's one-word-per-token prose (tool-call arguments, JSON
 * content) is cut into tokens of up to 4 UTF-8 bytes, never inside a character: as many tokens as
 * `ceil(bytes / 4)` for ASCII text, the rate the prompt side counts at.
 */
export function splitTextTokens(text: string): string[] {
  const tokens: string[] = [];
  let current = "";
  let bytes = 0;
  for (const char of text) {
    const size = Buffer.byteLength(char, "utf8");
    if (bytes + size > BYTES_PER_TEXT_TOKEN && current !== "") {
      tokens.push(current);
      current = "";
      bytes = 0;
    }
    current += char;
    bytes += size;
  }
  if (current !== "") tokens.push(current);
  return tokens;
}
