/**
 * Reading the real cost. Only the `usage` object is parsed — never the whole body — and money is read
 * from its raw decimal text (`8.41e-05`), never through a float:
 *   charged = usage.cost + (usage.is_byok ? usage.cost_details.upstream_inference_cost : 0)
 * (for non-BYOK requests the two numbers are the same charge, so adding them would double-count).
 */
import { type Nano, parseUsdToNano, rawNumberField } from "../../money.js";

export interface UsageCost {
  costNano: Nano;
  promptTokens: number | null;
  completionTokens: number | null;
}

/**
 * The text span of the last `"usage": {…}` object in `text`, or undefined. A `"usage"` inside a string
 * value cannot match: inside JSON strings its quotes are escaped (`\"usage\"`).
 */
export function findUsageObject(text: string): string | undefined {
  let at = text.lastIndexOf('"usage"');
  while (at >= 0) {
    let i = at + 7;
    while (i < text.length && (text[i] === " " || text[i] === "\n" || text[i] === "\r" || text[i] === "\t"))
      i++;
    if (text[i] === ":") {
      i++;
      while (i < text.length && (text[i] === " " || text[i] === "\n" || text[i] === "\r" || text[i] === "\t"))
        i++;
      if (text[i] === "{") {
        const end = matchingBrace(text, i);
        if (end > 0) return text.slice(i, end + 1);
      }
    }
    // (lastIndexOf clamps a negative start to 0: a failed match at 0 must end the search.)
    at = at === 0 ? -1 : text.lastIndexOf('"usage"', at - 1);
  }
  return undefined;
}

/** Index of the `}` closing the object opened at `open`, honouring strings and escapes; -1 if truncated. */
function matchingBrace(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      for (i++; i < text.length; i++) {
        const s = text.charCodeAt(i);
        if (s === 0x5c /* \ */) i++;
        else if (s === 0x22) break;
      }
    } else if (c === 0x7b /* { */) depth++;
    else if (c === 0x7d /* } */) {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

const tokenCount = (value: unknown): number | null =>
  typeof value === "number" && Number.isInteger(value) && value >= 0 ? value : null;

/**
 * Cost of a `usage` object's text, or undefined when it does not tell the whole cost — no `cost`, or a
 * BYOK request without the provider's `upstream_inference_cost` — so that `/generation` is asked, and
 * failing that the reservation is charged, flagged unreconciled.
 */
export function costFromUsageObject(usageText: string): UsageCost | undefined {
  const costText = rawNumberField(usageText, ["cost"]);
  if (costText === undefined) return undefined;
  let parsed: { is_byok?: unknown; prompt_tokens?: unknown; completion_tokens?: unknown };
  try {
    parsed = JSON.parse(usageText) as typeof parsed;
  } catch {
    return undefined;
  }
  let costNano = parseUsdToNano(costText, "up");
  if (parsed.is_byok === true) {
    const upstream = rawNumberField(usageText, ["cost_details", "upstream_inference_cost"]);
    // BYOK: `cost` is only OpenRouter's 5 % fee; without the provider's charge the cost is not known.
    if (upstream === undefined) return undefined;
    costNano += parseUsdToNano(upstream, "up");
  }
  return {
    costNano,
    promptTokens: tokenCount(parsed.prompt_tokens),
    completionTokens: tokenCount(parsed.completion_tokens),
  };
}

/** The cost in a response body's (or stream event's) last `usage` object, if it has a readable one. */
export function costInText(text: string): UsageCost | undefined {
  try {
    const usage = findUsageObject(text);
    return usage === undefined ? undefined : costFromUsageObject(usage);
  } catch {
    // An unreadable cost (e.g. negative) is not trusted: /generation is asked instead.
    return undefined;
  }
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

/** Cost from a `/generation` record: `data.total_cost` (+ `data.upstream_inference_cost` when BYOK). */
export function costFromGeneration(text: string): UsageCost | undefined {
  const total = rawNumberField(text, ["data", "total_cost"]);
  if (total === undefined) return undefined;
  let parsed: { data?: { is_byok?: unknown; tokens_prompt?: unknown; tokens_completion?: unknown } };
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch {
    return undefined;
  }
  let costNano = parseUsdToNano(total, "up");
  if (parsed.data?.is_byok === true) {
    const upstream = rawNumberField(text, ["data", "upstream_inference_cost"]);
    if (upstream === undefined) return undefined; // as for usage: the fee alone is not the cost
    costNano += parseUsdToNano(upstream, "up");
  }
  return {
    costNano,
    promptTokens: tokenCount(parsed.data?.tokens_prompt),
    completionTokens: tokenCount(parsed.data?.tokens_completion),
  };
}
