import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { formatScaled, parseDecimalCeil } from "./decimal.js";

describe("parseDecimalCeil", () => {
  it.each([
    ["8.4e-7", 840n],
    ["8.41e-7", 841n],
    ["9.75e-8", 98n],
    ["1e-12", 1n],
    ["0.000018", 18_000n],
    ["0.0000118", 11_800n],
    ["12", 12_000_000_000n],
    ["1.5E+2", 150_000_000_000n],
    ["0", 0n],
    ["0.0", 0n],
    [" 1 ", 1_000_000_000n],
  ])("reads %s as %i nano-USD, rounding up", (text, nano) => {
    expect(parseDecimalCeil(text, 9)).toBe(nano);
  });

  it("rounds negative amounts toward +∞", () => {
    expect(parseDecimalCeil("-1.5e-9", 9)).toBe(-1n);
  });

  it.each(["", ".", "abc", "1e", "0x10", "1.2.3", "NaN", "Infinity"])("rejects %j", (text) => {
    expect(() => parseDecimalCeil(text, 9)).toThrow(SyntaxError);
  });

  it("rejects absurd exponents instead of allocating huge numbers", () => {
    expect(() => parseDecimalCeil("1e999999", 9)).toThrow(RangeError);
  });

  it("reads every number JavaScript prints, exponent or not, to its exact ceiling", () => {
    fc.assert(
      fc.property(fc.double({ min: 1e-15, max: 1e6, noNaN: true }), (value) => {
        const text = String(value);
        const nano = parseDecimalCeil(text, 9);
        // The ceiling is the smallest integer n with n ≥ value × 1e9, checked in exact arithmetic.
        const exact = parseDecimalCeil(text, 30); // value × 1e30, exact for these doubles' shortest text
        expect(nano * 10n ** 21n >= exact).toBe(true);
        expect((nano - 1n) * 10n ** 21n < exact).toBe(true);
      }),
    );
  });
});

describe("formatScaled", () => {
  it.each([
    [840n, "0.00000084"],
    [12_000_000_000n, "12"],
    [1n, "0.000000001"],
    [0n, "0"],
    [-1_500_000_000n, "-1.5"],
  ])("formats %i nano as %s", (nano, text) => {
    expect(formatScaled(nano, 9)).toBe(text);
  });

  it("round-trips through parseDecimalCeil", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(10n ** 20n), max: 10n ** 20n }), (value) => {
        expect(parseDecimalCeil(formatScaled(value, 9), 9)).toBe(value);
      }),
    );
  });
});
