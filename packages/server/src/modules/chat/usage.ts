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

const USAGE_PATHS = [
  ["cost"],
  ["is_byok"],
  ["cost_details", "upstream_inference_cost"],
  ["prompt_tokens"],
  ["completion_tokens"],
];
const USAGE = fieldTree(USAGE_PATHS);
/** The same fields under a document's own `usage`, never one nested deeper. */
const TOP_LEVEL_USAGE = fieldTree(USAGE_PATHS.map((path) => ["usage", ...path]));

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
function escaped(text: string | Buffer, i: number): boolean {
  let j = i;
  while (j > 0 && (typeof text === "string" ? text.charCodeAt(j - 1) : text[j - 1]) === 0x5c) j--;
  return (i - j) % 2 === 1;
}

/** costOf, with an unreadable cost (e.g. negative) untrusted: /generation is asked instead. */
function trustedCost(fields: readonly (string | undefined)[] | undefined): UsageCost | undefined {
  if (fields === undefined) return undefined;
  try {
    return costOf(fields);
  } catch {
    return undefined;
  }
}

/**
 * The usual document ends with its own usage: `…,"usage":{…}}`. The fields of the usage object whose key
 * starts at `at` when it is that — the value is followed only by the top-level object's closing brace,
 * which in valid JSON no nested `usage` can be — else undefined.
 */
function closingUsage(text: string, at: number): (string | undefined)[] | undefined {
  const colon = skipJsonWhitespace(text, at + 7);
  if (text[colon] !== ":") return undefined;
  const usage = rawFields(text, colon + 1, USAGE, false);
  if (usage === undefined) return undefined;
  const close = skipJsonWhitespace(text, usage.end);
  return text[close] === "}" && skipJsonWhitespace(text, close + 1) === text.length
    ? usage.values
    : undefined;
}

/**
 * The cost in a response body's (or stream event's) own, top-level `usage` object, if it is readable:
 * read in a validating pass, never through a float. A `usage` nested deeper never counts — a request's
 * tool schema echoed back by `debug`, say — nor one inside a string (its quotes are escaped there). The
 * usual document ends with its usage, so that is tried first from the last `"usage"` key; any other
 * document is read whole, and one that is not valid JSON gives nothing.
 */
export function costInText(text: string): UsageCost | undefined {
  const at = text.lastIndexOf('"usage"');
  if (at < 0) return undefined;
  const last = at > 0 && !escaped(text, at) ? closingUsage(text, at) : undefined;
  return trustedCost(last ?? rawFields(text, 0, TOP_LEVEL_USAGE, true)?.values);
}

const USAGE_KEY = Buffer.from('"usage"');

/**
 * `costInText` of a body still in bytes. Usually only the text from the last `"usage"` on is decoded —
 * the body ends with its usage — and the whole body only when that was not it.
 */
export function costInBody(body: Buffer): UsageCost | undefined {
  const at = body.lastIndexOf(USAGE_KEY);
  if (at < 0) return undefined;
  const last = at > 0 && !escaped(body, at) ? closingUsage(body.toString("utf8", at), 0) : undefined;
  return trustedCost(last ?? rawFields(body.toString("utf8"), 0, TOP_LEVEL_USAGE, true)?.values);
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
