/**
 * Deterministic log probabilities for `logprobs: true`: the sampled token is the likeliest, with a
 * logprob in [-0.9, -0.03]; its alternatives follow at -4, -5.5, -7, … (each with a little jitter), so
 * the probabilities listed never add up to more than 1.
 */
import { mix, WORDS } from "./text-generator.js";

/** OpenAI's bound on `top_logprobs`. */
export const MAX_TOP_LOGPROBS = 20;

export interface TokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
}

export interface ContentLogprob extends TokenLogprob {
  top_logprobs: TokenLogprob[];
}

/** A fraction in [0, 1) from the hash of the inputs. */
function fraction(seed: number, choice: number, index: number, salt: number): number {
  const h = mix(seed ^ Math.imul(choice + 1, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b) ^ salt);
  return (h >>> 0) / 0x1_0000_0000;
}

const round6 = (x: number): number => Math.round(x * 1e6) / 1e6;

const bytesOf = (token: string): number[] => [...Buffer.from(token, "utf8")];

/** The logprob entry of the `index`-th content token of a choice, with `top` alternatives listed. */
export function logprobOf(
  seed: number,
  choice: number,
  index: number,
  token: string,
  top: number,
): ContentLogprob {
  const logprob = round6(-(0.03 + 0.87 * fraction(seed, choice, index, 0x5bd1e995)));
  const entry = { token, logprob, bytes: bytesOf(token) };
  const topLogprobs: TokenLogprob[] = top > 0 ? [entry] : [];
  const start = Math.floor(fraction(seed, choice, index, 0x27d4eb2f) * WORDS.length);
  const space = token.startsWith(" ") ? " " : "";
  for (let offset = 0; topLogprobs.length < top && offset < WORDS.length; offset++) {
    const alternative = `${space}${WORDS[(start + offset) % WORDS.length]}`;
    if (alternative === token) continue;
    const rank = topLogprobs.length - 1;
    const jitter = 0.5 * fraction(seed, choice, index, offset);
    topLogprobs.push({
      token: alternative,
      logprob: round6(-(4 + 1.5 * rank + jitter)),
      bytes: bytesOf(alternative),
    });
  }
  return { ...entry, top_logprobs: topLogprobs };
}
