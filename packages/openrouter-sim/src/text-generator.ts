/**
 * Deterministic response text: one word per token from a seeded PRNG, so equal seeds and equal prompts
 * give equal responses across runs (and tests can compare exact text).
 */

export const WORDS = [
  "the",
  "meter",
  "runs",
  "while",
  "each",
  "token",
  "flows",
  "through",
  "a",
  "careful",
  "budget",
  "and",
  "every",
  "payer",
  "sees",
  "what",
  "their",
  "model",
  "spent",
  "on",
  "this",
  "small",
  "request",
  "today",
  "so",
  "nothing",
  "is",
  "lost",
  "or",
  "billed",
  "twice",
  "again",
] as const;

/** murmur3's finalizer: nearby seeds (choice 0, 1, …) must not start their streams alike. */
export function mix(seed: number): number {
  let h = seed ^ (seed >>> 16);
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** mulberry32: tiny, fast, and good enough to vary words; not for anything secret. */
function mulberry32(seed: number): () => number {
  let state = mix(seed);
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  };
}

function streamFor(seed: number, promptTokens: number, stream: number): () => number {
  return mulberry32(seed ^ Math.imul(promptTokens + 1, 0x9e3779b1) ^ Math.imul(stream + 1, 0x85ebca6b));
}

/**
 * Bare words for the values of generated JSON (tool-call arguments, structured outputs), keyed like
 * `generateTokens` but on a stream of their own so they do not repeat the prose.
 */
export function wordStream(seed: number, promptTokens: number): () => string {
  const next = streamFor(seed, promptTokens, -2);
  return () => WORDS[next() % WORDS.length] ?? "token";
}

const ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/**
 * A tool call's id, `call_` and 24 base62 characters: the same seed, prompt and choice give the same id,
 * and each choice its own.
 */
export function toolCallId(seed: number, promptTokens: number, choice: number): string {
  const next = streamFor(seed, promptTokens, choice === 0 ? -3 : -1000 - choice);
  let id = "call_";
  for (let i = 0; i < 24; i++) id += ID_ALPHABET[next() % ID_ALPHABET.length];
  return id;
}

/**
 * `count` tokens of text for one choice. The stream is keyed by the simulator seed, the prompt size and
 * the choice index — cheap to compute, and stable for a given request.
 */
export function generateTokens(
  seed: number,
  promptTokens: number,
  choiceIndex: number,
  count: number,
): string[] {
  const next = streamFor(seed, promptTokens, choiceIndex);
  const tokens: string[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const word = WORDS[next() % WORDS.length] ?? "token";
    tokens[i] = i === 0 ? word : ` ${word}`;
  }
  return tokens;
}
