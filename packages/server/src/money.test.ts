import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ceilDiv,
  fieldTree,
  floorDiv,
  formatUsd,
  MoneyParseError,
  maxNano,
  minNano,
  NANO_PER_USD,
  nanoToDecimalText,
  nanoToUsd,
  parseDecimal,
  parsePriceToPico,
  parseUsdToNano,
  picoToNano,
  type Rounding,
  rawFields,
  usdToNano,
} from "./money.js";

const roundings: readonly Rounding[] = ["up", "down"];

/**
 * Checks `result` against the exact rational `num / den` (den > 0) by multiplication only, so the
 * check shares no arithmetic with the division-based code under test.
 */
function expectRoundedQuotient(result: bigint, num: bigint, den: bigint, rounding: Rounding): void {
  if (rounding === "down") {
    expect(result * den <= num && num < (result + 1n) * den).toBe(true);
  } else {
    expect((result - 1n) * den < num && num <= result * den).toBe(true);
  }
}

/** `digits × 10^exponent` in units of 10^-scale, checked against what parseDecimal returned. */
function expectExact(result: bigint, digits: bigint, exponent: number, scale: number, rounding: Rounding) {
  const shift = exponent + scale;
  if (shift >= 0) expect(result).toBe(digits * 10n ** BigInt(shift));
  else expectRoundedQuotient(result, digits, 10n ** BigInt(-shift), rounding);
}

describe("parseDecimal", () => {
  it.each([
    ["12", 12_000_000_000n],
    ["0.00000015", 150n],
    ["8.41e-05", 84_100n],
    ["1.2E-7", 120n],
    ["1e3", 1_000_000_000_000n],
    ["1.5e+3", 1_500_000_000_000n],
    ["-0", 0n],
    ["-0.000e-3", 0n],
    ["007.50", 7_500_000_000n],
    [".5", 500_000_000n],
    ["5.", 5_000_000_000n],
    ["0.000000001", 1n],
  ])("parses %s to %d nano-USD exactly", (text, nano) => {
    expect(parseUsdToNano(text, "up")).toBe(nano);
    expect(parseUsdToNano(text, "down")).toBe(nano);
  });

  it("rounds a tenth of a nano up to 1 and down to 0", () => {
    expect(parseUsdToNano("1e-10", "up")).toBe(1n);
    expect(parseUsdToNano("1e-10", "down")).toBe(0n);
  });

  it("rounds 1.5 nano up to 2 and down to 1", () => {
    expect(parseUsdToNano("0.0000000015", "up")).toBe(2n);
    expect(parseUsdToNano("0.0000000015", "down")).toBe(1n);
  });

  it("rounds negative amounts toward +∞ for up and toward −∞ for down", () => {
    expect(parseUsdToNano("-1e-10", "up", { allowNegative: true })).toBe(0n);
    expect(parseUsdToNano("-1e-10", "down", { allowNegative: true })).toBe(-1n);
    expect(parseUsdToNano("-2.5", "down", { allowNegative: true })).toBe(-2_500_000_000n);
  });

  it("rejects negative amounts unless they are allowed, but accepts negative zero", () => {
    expect(() => parseUsdToNano("-1", "up")).toThrow(MoneyParseError);
    expect(() => parseUsdToNano("-1e-30", "up")).toThrow(MoneyParseError);
    expect(parseUsdToNano("-0.0", "up")).toBe(0n);
  });

  it.each([
    "",
    " ",
    "NaN",
    "Infinity",
    "-Infinity",
    "0x10",
    "0b1",
    "1 000",
    " 1",
    "1 ",
    "1\n",
    "1e",
    "1e+",
    "e5",
    "--1",
    "+1",
    "-",
    ".",
    ".e1",
    "1e5.5",
    "1..2",
    "1,5",
    "1_000",
    "１",
    "$1",
    "1e401",
    "1e-401",
    "1e99999999999999999999",
  ])("rejects %j", (text) => {
    expect(() => parseUsdToNano(text, "up")).toThrow(MoneyParseError);
  });

  it("accepts exponents up to ±400", () => {
    expect(parseDecimal("1e400", 9, "down")).toBe(10n ** 409n);
    expect(parseDecimal("1e-400", 9, "up")).toBe(1n);
    expect(parseDecimal("1E-400", 9, "down")).toBe(0n);
  });

  it("rejects text longer than 1000 characters", () => {
    expect(() => parseUsdToNano("1".repeat(1001), "up")).toThrow(MoneyParseError);
    expect(parseDecimal(`0.${"0".repeat(997)}`, 0, "up")).toBe(0n);
  });

  it("treats a scale outside 0..100 as a programming error", () => {
    expect(() => parseDecimal("1", -1, "up")).toThrow(RangeError);
    expect(() => parseDecimal("1", 1.5, "up")).toThrow(RangeError);
    expect(() => parseDecimal("1", 101, "up")).toThrow(RangeError);
  });

  it("returns the exact value of any decimal text, rounded as asked, at any scale", () => {
    const decimal = fc.record({
      digits: fc.bigInt({ min: 0n, max: 10n ** 30n }),
      exponent: fc.integer({ min: -40, max: 40 }),
      fractionDigits: fc.integer({ min: 0, max: 25 }),
      negative: fc.boolean(),
      style: fc.constantFrom("e", "E", "e+", "plain"),
    });
    fc.assert(
      fc.property(
        decimal,
        fc.integer({ min: 0, max: 15 }),
        ({ digits, exponent, fractionDigits, negative, style }, scale) => {
          // Write digits × 10^exponent with the decimal point `fractionDigits` from the right.
          const padded = digits.toString().padStart(fractionDigits + 1, "0");
          const cut = padded.length - fractionDigits;
          const mantissa = fractionDigits === 0 ? padded : `${padded.slice(0, cut)}.${padded.slice(cut)}`;
          const e = exponent + fractionDigits;
          const marker = style === "plain" ? "e" : style === "e+" && e >= 0 ? "e+" : style.slice(0, 1);
          const exponentText = style === "plain" && e === 0 ? "" : `${marker}${e}`;
          const text = `${negative ? "-" : ""}${mantissa}${exponentText}`;
          const signed = negative ? -digits : digits;
          for (const rounding of roundings) {
            const result = parseDecimal(text, scale, rounding, { allowNegative: true });
            expectExact(result, signed, exponent, scale, rounding);
          }
        },
      ),
    );
  });

  it("differs between up and down by exactly one unit when, and only when, the value is inexact", () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 10n ** 20n }),
        fc.integer({ min: 0, max: 20 }),
        (digits, fraction) => {
          const text = `${digits}e-${fraction}`;
          const up = parseDecimal(text, 9, "up");
          const down = parseDecimal(text, 9, "down");
          const exact = fraction <= 9 || digits % 10n ** BigInt(fraction - 9) === 0n;
          expect(up - down).toBe(exact ? 0n : 1n);
        },
      ),
    );
  });
});

describe("parsePriceToPico", () => {
  it("keeps per-token prices at 1e-12 USD", () => {
    expect(parsePriceToPico("0.000000075")).toBe(75_000n);
    expect(parsePriceToPico("0.00000015")).toBe(150_000n);
    expect(parsePriceToPico("0")).toBe(0n);
  });

  it("rounds sub-pico prices up, because prices are upper bounds", () => {
    expect(parsePriceToPico("1e-13")).toBe(1n);
    expect(parsePriceToPico("1.0000000000001e-6")).toBe(1_000_001n);
  });

  it("rejects negative prices", () => {
    expect(() => parsePriceToPico("-0.000001")).toThrow(MoneyParseError);
  });
});

describe("usdToNano", () => {
  it("reads a JSON number as the decimal the sender wrote, not the binary double", () => {
    expect(usdToNano(0.1, "up")).toBe(100_000_000n);
    expect(usdToNano(0.1, "down")).toBe(100_000_000n);
    expect(usdToNano(20, "down")).toBe(20n * NANO_PER_USD);
    expect(usdToNano(1e-7, "down")).toBe(100n);
    expect(usdToNano(1e21, "down")).toBe(10n ** 30n);
    expect(usdToNano(-0, "down")).toBe(0n);
  });

  it("rounds sub-nano numbers as asked", () => {
    expect(usdToNano(1.5e-9, "up")).toBe(2n);
    expect(usdToNano(1.5e-9, "down")).toBe(1n);
    expect(usdToNano(Number.MIN_VALUE, "up")).toBe(1n);
    expect(usdToNano(Number.MIN_VALUE, "down")).toBe(0n);
  });

  it("rejects NaN and infinities", () => {
    for (const n of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      expect(() => usdToNano(n, "up")).toThrow(MoneyParseError);
    }
  });

  it("rejects negative numbers unless they are allowed", () => {
    expect(() => usdToNano(-1, "up")).toThrow(MoneyParseError);
    expect(usdToNano(-1, "up", { allowNegative: true })).toBe(-NANO_PER_USD);
  });

  it("agrees with a BigInt-exact reference for any finite double", () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (usd) => {
        // toExponential() without an argument yields the same shortest round-trip digits as String(),
        // in a single fixed shape that is easy to take apart independently of the parser.
        const [mantissa = "", exp = ""] = usd.toExponential().split("e");
        const [whole = "", fraction = ""] = mantissa.split(".");
        const digits = BigInt(whole + fraction);
        const exponent = Number(exp) - fraction.length;
        for (const rounding of roundings) {
          expectExact(usdToNano(usd, rounding, { allowNegative: true }), digits, exponent, 9, rounding);
        }
      }),
    );
  });
});

describe("picoToNano", () => {
  it("rounds up or down to whole nano-USD", () => {
    expect(picoToNano(1_500n, "up")).toBe(2n);
    expect(picoToNano(1_500n, "down")).toBe(1n);
    expect(picoToNano(1_000n, "up")).toBe(1n);
    expect(picoToNano(1n, "up")).toBe(1n);
    expect(picoToNano(-1_500n, "down")).toBe(-2n);
    expect(picoToNano(-1_500n, "up")).toBe(-1n);
  });
});

describe("nanoToUsd", () => {
  it("rounds usage up and remaining down to 6 decimals", () => {
    expect(nanoToUsd(1_234_567_001n, "up")).toBe(1.234568);
    expect(nanoToUsd(1_234_567_999n, "down")).toBe(1.234567);
    expect(nanoToUsd(1n, "up")).toBe(0.000001);
    expect(nanoToUsd(999n, "down")).toBe(0);
    expect(nanoToUsd(20n * NANO_PER_USD, "down")).toBe(20);
  });

  it("stays correctly rounded beyond 2^53 micro-USD", () => {
    expect(nanoToUsd(123_456_789_012_345_678_901_234n, "down")).toBe(Number("123456789012345.678901"));
  });

  it("serialises to at most 6 decimals that bracket the exact amount", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(10n ** 18n), max: 10n ** 18n }), (nano) => {
        const up = parseUsdToNano(String(nanoToUsd(nano, "up")), "down", { allowNegative: true });
        const down = parseUsdToNano(String(nanoToUsd(nano, "down")), "down", { allowNegative: true });
        expect(up % 1000n).toBe(0n);
        expect(down % 1000n).toBe(0n);
        expect(up >= nano && up - nano < 1000n).toBe(true);
        expect(down <= nano && nano - down < 1000n).toBe(true);
      }),
    );
  });
});

describe("formatUsd", () => {
  it.each([
    [1_234_567_000n, "$1.234567"],
    [0n, "$0.000000"],
    [500n, "$0.000001"],
    [499n, "$0.000000"],
    [20n * NANO_PER_USD, "$20.000000"],
    [-1_500n, "-$0.000002"],
    [-499n, "$0.000000"],
  ])("shows %d nano-USD as %s", (nano, text) => {
    expect(formatUsd(nano)).toBe(text);
  });

  it("round-trips amounts with at most 6 decimals and is within half a micro-USD otherwise", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(10n ** 24n), max: 10n ** 24n }), (nano) => {
        const back = parseUsdToNano(formatUsd(nano).replace("$", ""), "down", { allowNegative: true });
        const error = back - nano;
        expect(error >= -500n && error <= 500n).toBe(true);
        const whole = nano - (nano % 1000n);
        expect(parseUsdToNano(formatUsd(whole).replace("$", ""), "down", { allowNegative: true })).toBe(
          whole,
        );
      }),
    );
  });
});

describe("nanoToDecimalText", () => {
  it.each([
    [150n, "0.00000015"],
    [2n * NANO_PER_USD, "2"],
    [0n, "0"],
    [-1n, "-0.000000001"],
    [1_234_500_000n, "1.2345"],
  ])("writes %d nano-USD as %s", (nano, text) => {
    expect(nanoToDecimalText(nano)).toBe(text);
  });

  it("round-trips every nano amount through parseUsdToNano", () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }),
        fc.constantFrom(...roundings),
        (nano, r) => {
          expect(parseUsdToNano(nanoToDecimalText(nano), r, { allowNegative: true })).toBe(nano);
        },
      ),
    );
  });
});

describe("ceilDiv and floorDiv", () => {
  it("round toward +∞ and −∞ for negative dividends too", () => {
    expect(ceilDiv(7n, 2n)).toBe(4n);
    expect(ceilDiv(-7n, 2n)).toBe(-3n);
    expect(ceilDiv(6n, 2n)).toBe(3n);
    expect(ceilDiv(0n, 5n)).toBe(0n);
    expect(floorDiv(7n, 2n)).toBe(3n);
    expect(floorDiv(-7n, 2n)).toBe(-4n);
  });

  it("reject a divisor that is not positive", () => {
    expect(() => ceilDiv(1n, 0n)).toThrow(RangeError);
    expect(() => ceilDiv(1n, -2n)).toThrow(RangeError);
    expect(() => floorDiv(1n, 0n)).toThrow(RangeError);
  });

  it("return the smallest q with q·b ≥ a and the largest q with q·b ≤ a", () => {
    fc.assert(
      fc.property(fc.bigInt(), fc.bigInt({ min: 1n }), (a, b) => {
        const c = ceilDiv(a, b);
        expect(c * b >= a && (c - 1n) * b < a).toBe(true);
        const f = floorDiv(a, b);
        expect(f * b <= a && (f + 1n) * b > a).toBe(true);
      }),
    );
  });
});

describe("minNano and maxNano", () => {
  it("pick the extremes of their arguments", () => {
    expect(minNano(3n, -1n, 2n)).toBe(-1n);
    expect(maxNano(3n, -1n, 2n)).toBe(3n);
    expect(minNano(5n)).toBe(5n);
  });

  it("refuse to be called with no amounts", () => {
    expect(() => minNano()).toThrow(RangeError);
    expect(() => maxNano()).toThrow(RangeError);
  });

  it("agree with sorting", () => {
    fc.assert(
      fc.property(fc.array(fc.bigInt(), { minLength: 1 }), (xs) => {
        const sorted = [...xs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
        expect(minNano(...xs)).toBe(sorted[0]);
        expect(maxNano(...xs)).toBe(sorted.at(-1));
      }),
    );
  });
});

/** What JSON.parse says is at `path`: the number, or undefined for invalid JSON or anything else. */
function parsedNumberAt(json: string, path: readonly string[]): number | undefined {
  let node: unknown;
  try {
    node = JSON.parse(json);
  } catch {
    return undefined;
  }
  for (const key of path) {
    if (typeof node !== "object" || node === null || Array.isArray(node) || !Object.hasOwn(node, key)) {
      return undefined;
    }
    node = (node as Record<string, unknown>)[key];
  }
  return typeof node === "number" ? node : undefined;
}

/** The exact text of the number at `path` in a whole JSON document, as usage.ts reads `cost`. */
function rawNumberField(json: string, path: readonly string[]): string | undefined {
  const raw = rawFields(json, 0, fieldTree([path]), true)?.values[0];
  return raw !== undefined && /^[-\d]/.test(raw) ? raw : undefined;
}

describe("rawFields: one number, in whole documents", () => {
  const cost = ["usage", "cost"] as const;

  it("returns the exact text of a nested number", () => {
    expect(rawNumberField('{"usage":{"cost":8.41e-05}}', cost)).toBe("8.41e-05");
    expect(rawNumberField('{"id":"gen-1","usage":{"prompt_tokens":3,"cost":0.00000015}}', cost)).toBe(
      "0.00000015",
    );
    expect(rawNumberField('{"usage":{"cost":-0}}', cost)).toBe("-0");
    expect(rawNumberField('{"usage":{"cost":1E+2}}', cost)).toBe("1E+2");
  });

  it("returns a top-level number for the empty path", () => {
    expect(rawNumberField(" 12.5 ", [])).toBe("12.5");
    expect(rawNumberField("{}", [])).toBeUndefined();
  });

  it("is not fooled by the key inside a string", () => {
    expect(rawNumberField('{"note":"\\"usage\\":{\\"cost\\":1}","usage":{"cost":2}}', cost)).toBe("2");
    expect(rawNumberField('{"usage":{"note":"\\"cost\\": 5"}}', cost)).toBeUndefined();
    expect(rawNumberField('{"usage":{"cost\\\\":5}}', cost)).toBeUndefined();
  });

  it("is not fooled by the key in a sibling or nested object", () => {
    expect(rawNumberField('{"other":{"cost":1},"usage":{"prompt_tokens":3}}', cost)).toBeUndefined();
    expect(rawNumberField('{"usage":{"details":{"cost":1}}}', cost)).toBeUndefined();
    expect(rawNumberField('{"cost":9,"usage":{"cost":1}}', ["cost"])).toBe("9");
    expect(rawNumberField('{"usage":{"cost":1},"cost":9}', ["cost"])).toBe("9");
  });

  it("does not follow the path into arrays, and skips arrays on the way", () => {
    expect(rawNumberField('{"usage":[{"cost":1}]}', cost)).toBeUndefined();
    expect(rawNumberField('{"choices":[{"usage":{"cost":1}},[],[[{}]]],"usage":{"cost":2}}', cost)).toBe("2");
  });

  it("matches keys written with escapes", () => {
    expect(rawNumberField('{"usage":{"\\u0063ost":3}}', cost)).toBe("3");
    expect(rawNumberField('{"\\u0075sage":{"c\\u006Fst":4}}', cost)).toBe("4");
    expect(rawNumberField('{"co\\"st":5}', ['co"st'])).toBe("5");
    expect(rawNumberField('{"\\ud83d\\ude00":6}', ["😀"])).toBe("6");
  });

  it("accepts any JSON whitespace", () => {
    expect(rawNumberField(' \t\r\n{ "usage" :\n\t{ "cost"\r\n:  7 } }\n', cost)).toBe("7");
  });

  it.each([
    ['{"usage":{"cost":null}}'],
    ['{"usage":{"cost":"0.5"}}'],
    ['{"usage":{"cost":true}}'],
    ['{"usage":{"cost":{"total":1}}}'],
    ['{"usage":{"cost":[1]}}'],
    ['{"usage":{}}'],
    ['{"usage":null}'],
    ['{"usage":"cost"}'],
    ["{}"],
    ["[]"],
    ["3"],
  ])("returns undefined when usage.cost is not a number in %s", (json) => {
    expect(rawNumberField(json, cost)).toBeUndefined();
  });

  it("takes the last occurrence of a duplicated key, as JSON.parse does", () => {
    expect(rawNumberField('{"usage":{"cost":1,"cost":2}}', cost)).toBe("2");
    expect(rawNumberField('{"usage":{"cost":1},"usage":{"total":2}}', cost)).toBeUndefined();
    expect(rawNumberField('{"usage":{"cost":1,"cost":null}}', cost)).toBeUndefined();
  });

  it.each([
    [""],
    ['{"usage":{"cost":1}'],
    ['{"usage":{"cost":1}} x'],
    ['{"usage":{"cost":01}}'],
    ['{"usage":{"cost":1.}}'],
    ['{"usage":{"cost":.5}}'],
    ['{"usage":{"cost":1e}}'],
    ['{"usage":{"cost":+1}}'],
    ['{"usage":{"cost":1,}}'],
    ['{"usage":{"cost" 1}}'],
    ['{"a":[1 2],"usage":{"cost":1}}'],
    ['{"a":"\\x","usage":{"cost":1}}'],
    ['{"a":"\\u12G4","usage":{"cost":1}}'],
    ['{"a":"tab\there","usage":{"cost":1}}'],
    ['{"a":nul,"usage":{"cost":1}}'],
    ['{"a":[}],"usage":{"cost":1}}'],
    ['{"usage":{"cost":1}}}'],
    ['{"usage":{"cost":1}]'],
    ["\ufeff{}"],
  ])("returns undefined for invalid JSON %j", (json) => {
    expect(() => JSON.parse(json)).toThrow(SyntaxError);
    expect(rawNumberField(json, cost)).toBeUndefined();
  });

  // Documents built from a few colliding keys, with numbers and look-alike strings everywhere.
  const key = fc.constantFrom("usage", "cost", "a", 'co"st', "c\\ost", "ü", "");
  const { value } = fc.letrec<{ value: unknown }>((tie) => ({
    value: fc.oneof(
      { depthSize: "small" },
      fc.double({ noNaN: true, noDefaultInfinity: true }),
      fc.integer(),
      fc.constantFrom(null, true, false, '"cost":1', '{"usage":{"cost":2}}', "\\", "\u0000"),
      fc.string(),
      fc.array(tie("value"), { maxLength: 4 }),
      fc.dictionary(key, tie("value"), { maxKeys: 4 }),
    ),
  }));
  const document = fc
    .tuple(value, fc.constantFrom(undefined, 1, "\t", " \r\n"))
    .map(([v, indent]) => JSON.stringify(v, null, indent));
  const path = fc.array(key, { maxLength: 3 });

  it("agrees with JSON.parse on generated documents", () => {
    fc.assert(
      fc.property(document, path, (json, p) => {
        const raw = rawNumberField(json, p);
        expect(raw === undefined ? undefined : Number(raw)).toBe(parsedNumberAt(json, p));
      }),
      { numRuns: 2000 },
    );
  });

  it("agrees with JSON.parse on truncated and corrupted documents", () => {
    const corrupted = fc
      .tuple(document, fc.nat(), fc.nat(), fc.constantFrom("", "}", "]", ",", '"', "\\", ":", "0", " ", "x"))
      .map(([json, cut, at, insert]) => {
        const truncated = json.slice(0, cut % (json.length + 1));
        const i = at % (truncated.length + 1);
        return truncated.slice(0, i) + insert + truncated.slice(i);
      });
    fc.assert(
      fc.property(corrupted, path, (json, p) => {
        const raw = rawNumberField(json, p);
        expect(raw === undefined ? undefined : Number(raw)).toBe(parsedNumberAt(json, p));
      }),
      { numRuns: 2000 },
    );
  });

  it("reads several paths in one pass, each as JSON.parse would, and only one value", () => {
    const paths = fc.uniqueArray(path, { minLength: 1, maxLength: 3, selector: (p) => p.join("\u0000") });
    const disjoint = (ps: string[][]) =>
      ps.every((a, i) =>
        ps.every((b, j) => i === j || a.slice(0, b.length).join("\u0000") !== b.join("\u0000")),
      );
    fc.assert(
      fc.property(document, paths, (json, ps) => {
        fc.pre(disjoint(ps));
        // A value followed by more text: read up to its end, which is reported.
        const read = rawFields(`${json} trailing`, 0, fieldTree(ps), false);
        expect(read).toBeDefined();
        if (read === undefined) return;
        expect(read.end).toBe(json.trimEnd().length);
        ps.forEach((p, i) => {
          const raw = read.values[i];
          const number = raw !== undefined && /^[-\d]/.test(raw) ? Number(raw) : undefined;
          expect(number).toBe(parsedNumberAt(json, p));
        });
      }),
      { numRuns: 2000 },
    );
  });

  it("gives literals' text, nothing for strings and containers, and refuses overlapping paths", () => {
    const tree = fieldTree([["a"], ["b", "c"], ["d"], ["e"]]);
    expect(rawFields('{"a":true,"b":{"c":null},"d":"1","e":[1]}', 0, tree, true)?.values).toEqual([
      "true",
      "null",
      undefined,
      undefined,
    ]);
    expect(rawFields('x {"a":1} y', 1, tree, false)).toEqual({ values: ["1"], end: 9 });
    expect(rawFields('x {"a":1} y', 1, tree, true)).toBeUndefined();
    expect(() => fieldTree([["a"], ["a", "b"]])).toThrow(RangeError);
    expect(() => fieldTree([["a", "b"], ["a"]])).toThrow(RangeError);
    expect(() => fieldTree([[], ["a"]])).toThrow(RangeError);
  });

  it("scans a 1 MiB body with look-alike keys in one pass", () => {
    const filler = '{"usage":{"cost":1},"text":"\\"usage\\":{\\"cost\\":2}","n":[1,2,3]},';
    const body = `{"choices":[${filler.repeat(Math.ceil(2 ** 20 / filler.length))}{}],"usage":{"cost":3.5e-6}}`;
    expect(body.length).toBeGreaterThan(2 ** 20);
    expect(rawNumberField(body, cost)).toBe("3.5e-6");
  });

  it("skips half a million levels of nesting without overflowing the stack", () => {
    const depth = 500_000;
    const body = `{"deep":${"[".repeat(depth)}${"]".repeat(depth)},"usage":{"cost":4}}`;
    expect(rawNumberField(body, cost)).toBe("4");
    expect(rawNumberField(body.slice(0, -3), cost)).toBeUndefined();
  });
});
