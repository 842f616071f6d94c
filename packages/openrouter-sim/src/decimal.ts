/**
 * Exact decimal text ↔ scaled BigInt conversion.
 *
 * Money must never pass through a float sum: the simulator bills the exact decimal TEXT it emitted
 * (e.g. `8.4e-7`), so this parser accepts JSON number syntax including exponents.
 */

const DECIMAL = /^([+-])?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

// JavaScript prints no finite double with an exponent beyond ±324; anything far larger is hostile input.
const MAX_EXPONENT = 1000;

/**
 * Parses decimal text (e.g. `"0.00000015"`, `"8.4e-7"`, `"12"`) into an integer count of `10^-scale`
 * units, rounding toward +∞ so that a charge is never under-counted.
 *
 * @example parseDecimalCeil("8.41e-7", 9) === 842n
 */
export function parseDecimalCeil(text: string, scale: number): bigint {
  const match = DECIMAL.exec(text.trim());
  const intDigits = match?.[2] ?? "";
  const fracDigits = match?.[3] ?? "";
  if (!match || intDigits.length + fracDigits.length === 0) {
    throw new SyntaxError(`not a decimal number: ${JSON.stringify(text)}`);
  }
  const exponent = Number(match[4] ?? "0");
  if (Math.abs(exponent) > MAX_EXPONENT) throw new RangeError(`exponent out of range: ${text}`);
  const negative = match[1] === "-";
  const digits = BigInt(intDigits + fracDigits || "0");
  const shift = exponent - fracDigits.length + scale;
  if (shift >= 0) {
    const value = digits * 10n ** BigInt(shift);
    return negative ? -value : value;
  }
  const divisor = 10n ** BigInt(-shift);
  const quotient = digits / divisor;
  const hasRemainder = digits % divisor !== 0n;
  if (negative) return -quotient; // toward +∞ means truncation for negatives
  return hasRemainder ? quotient + 1n : quotient;
}

/**
 * Formats an integer count of `10^-scale` units as plain decimal text without an exponent.
 *
 * @example formatScaled(840n, 9) === "0.00000084"
 */
export function formatScaled(value: bigint, scale: number): string {
  const negative = value < 0n;
  const digits = (negative ? -value : value).toString().padStart(scale + 1, "0");
  const whole = digits.slice(0, digits.length - scale);
  const fraction = digits.slice(digits.length - scale).replace(/0+$/, "");
  return `${negative ? "-" : ""}${whole}${fraction ? `.${fraction}` : ""}`;
}

/** The JSON number a float-based service would emit for an exact amount: the nearest double. */
export function toJsonNumber(value: bigint, scale: number): number {
  return Number(formatScaled(value, scale));
}
