import { InvalidArgumentError } from "commander";

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const MAX_MS = 365 * UNIT_MS.d!;

/**
 * Parses "90s", "30m", "24h", "7d" into milliseconds, for commander. The unit is required — a bare
 * "24" is refused rather than read as 24 ms — and a year is the most.
 */
export function parseDuration(text: string): number {
  const match = /^(\d{1,6})([smhd])$/.exec(text.trim());
  const ms = match ? Number(match[1]) * (UNIT_MS[match[2] ?? ""] ?? Number.NaN) : Number.NaN;
  if (!(ms >= 0 && ms <= MAX_MS)) {
    throw new InvalidArgumentError("use a number and a unit, from 0s to 365d (e.g. 90s, 30m, 24h, 7d)");
  }
  return ms;
}
