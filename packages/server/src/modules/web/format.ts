/** Amounts, durations and times as payers read them on Wattfare's pages (never parsed back). */

const MICRO_PER_USD = 1_000_000n;

/**
 * USD for people: at least 2 decimals, up to 6 when the amount needs them, rounded as asked (spend
 * up, what is left down — neither flatters).
 *
 * @example displayUsd(10_000_000_000n) === "$10.00"; displayUsd(21_000n) === "$0.000021"
 */
export function displayUsd(nano: bigint, rounding: "up" | "down" = "up"): string {
  const negative = nano < 0n;
  const abs = negative ? -nano : nano;
  const micro = rounding === "up" && !negative ? (abs + 999n) / 1000n : abs / 1000n;
  const whole = micro / MICRO_PER_USD;
  const fraction = (micro % MICRO_PER_USD).toString().padStart(6, "0").replace(/0+$/, "").padEnd(2, "0");
  return `${negative && micro !== 0n ? "-" : ""}$${whole.toLocaleString("en-US")}.${fraction}`;
}

/** @example displayDuration(86_400) === "1 day"; displayDuration(5_400) === "90 minutes" */
export function displayDuration(seconds: number): string {
  const units: [number, string][] = [
    [86_400, "day"],
    [3_600, "hour"],
    [60, "minute"],
  ];
  for (const [size, name] of units) {
    if (seconds >= size && seconds % size === 0) {
      const count = seconds / size;
      return `${count} ${name}${count === 1 ? "" : "s"}`;
    }
  }
  return `${seconds} second${seconds === 1 ? "" : "s"}`;
}

/** A moment in UTC, e.g. "2026-11-15 12:00 UTC". */
export function displayTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 16).replace("T", " ")} UTC`;
}
