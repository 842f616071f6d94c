/**
 * Reading the real cost. Only the `usage` object is parsed — never the whole body — and money is read
 * from its raw decimal text (`8.41e-05`), never through a float:
 *   charged = usage.cost + (usage.is_byok ? usage.cost_details.upstream_inference_cost : 0)
 * (for non-BYOK requests the two numbers are the same charge, so adding them would double-count).
 */
import { fieldTree, type Nano, parseUsdToNano, rawFields, skipJsonWhitespace } from "../../money.js";

export interface UsageCost {
  costNano: Nano;
  promptTokens: number | null;
  completionTokens: number | null;
}

const USAGE = fieldTree([
  ["cost"],
  ["is_byok"],
  ["cost_details", "upstream_inference_cost"],
  ["prompt_tokens"],
  ["completion_tokens"],
]);

const tokenCount = (raw: string | undefined): number | null => {
  const n = raw === undefined ? Number.NaN : Number(raw);
  return Number.isSafeInteger(n) && n >= 0 ? n : null;
};

/**
 * The cost from the raw texts of a usage object's fields (or a generation record's), in `USAGE`'s
 * order; undefined when they do not tell the whole cost — no numeric `cost`, or a BYOK request without
 * the provider's `upstream_inference_cost` — so that `/generation` is asked, and failing that the
 * reservation is charged, flagged unreconciled. Throws on a negative amount.
 */
function costOf(fields: readonly (string | undefined)[]): UsageCost | undefined {
  const [cost, byok, upstream, prompt, completion] = fields;
  if (!isNumberText(cost)) return undefined;
  let costNano = parseUsdToNano(cost, "up");
  if (byok === "true") {
    // BYOK: `cost` is only OpenRouter's 5 % fee; without the provider's charge the cost is not known.
    if (!isNumberText(upstream)) return undefined;
    costNano += parseUsdToNano(upstream, "up");
  }
  return { costNano, promptTokens: tokenCount(prompt), completionTokens: tokenCount(completion) };
}

/** A scalar's text that is a number (not `null`, `true` or `false`). */
function isNumberText(raw: string | undefined): raw is string {
  return raw !== undefined && raw !== "null" && raw !== "true" && raw !== "false";
}

/** Whether the character at `i` follows an odd number of backslashes. */
function escaped(text: string, i: number): boolean {
  let j = i;
  while (j > 0 && text.charCodeAt(j - 1) === 0x5c) j--;
  return (i - j) % 2 === 1;
}

/**
 * The cost in a response body's (or stream event's) last `"usage": {…}` object, if it is readable:
 * the object is read once, validated and its fields taken in the same pass, never through a float. A
 * `"usage"` inside a string value cannot match (its quotes are escaped there: `\"usage\"`), nor can the
 * end of a key such as `"say \"usage"`; one not followed by an object is passed over. When the last
 * usage object is not valid JSON, nothing is trusted — not even an earlier one.
 */
export function costInText(text: string): UsageCost | undefined {
  let at = text.lastIndexOf('"usage"');
  while (at >= 0) {
    const colon = skipJsonWhitespace(text, at + 7);
    // After an odd number of backslashes the quote is escaped: `"say \"usage":` is the key `say "usage`.
    const open = text[colon] === ":" && !escaped(text, at) ? skipJsonWhitespace(text, colon + 1) : -1;
    if (open >= 0 && text[open] === "{") {
      const usage = rawFields(text, open, USAGE, false);
      try {
        return usage === undefined ? undefined : costOf(usage.values);
      } catch {
        // An unreadable cost (e.g. negative) is not trusted: /generation is asked instead.
        return undefined;
      }
    }
    // (lastIndexOf clamps a negative start to 0: a failed match at 0 must end the search.)
    at = at === 0 ? -1 : text.lastIndexOf('"usage"', at - 1);
  }
  return undefined;
}

const USAGE_KEY = Buffer.from('"usage"');

/**
 * `costInText` of a body still in bytes. Only the text from the last `"usage"` on is decoded — the usual
 * body ends with its usage — and the whole body only when that was not the object.
 */
export function costInBody(body: Buffer): UsageCost | undefined {
  const at = body.lastIndexOf(USAGE_KEY);
  if (at < 0) return undefined;
  return costInText(body.toString("utf8", at)) ?? (at > 0 ? costInText(body.toString("utf8")) : undefined);
}

const GENERATION = fieldTree([
  ["data", "total_cost"],
  ["data", "is_byok"],
  ["data", "upstream_inference_cost"],
  ["data", "tokens_prompt"],
  ["data", "tokens_completion"],
]);

/** Cost from a `/generation` record: `data.total_cost` (+ `data.upstream_inference_cost` when BYOK). */
export function costFromGeneration(text: string): UsageCost | undefined {
  const record = rawFields(text, 0, GENERATION, true);
  return record === undefined ? undefined : costOf(record.values);
}
