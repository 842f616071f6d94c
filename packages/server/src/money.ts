/**
 * The one money type: integer nano-USD as BigInt, end to end (DESIGN.md "Money, periods, admission").
 *
 * Floats never touch an amount. Decimal text (prices from the catalogue, `usage.cost` read from the raw
 * upstream JSON, CLI arguments) is parsed digit by digit into BigInt; rounding happens exactly once, at
 * the end, in the direction the caller names. Rounding directions are mathematical: `"up"` is toward
 * +∞ (ceiling) and `"down"` toward −∞ (floor), so that "round the worst case up" stays an upper bound
 * even for the rare negative amount (an adjusting ledger entry).
 */

/** An amount in nano-USD (1e-9 USD). */
export type Nano = bigint;
export const NANO_PER_USD = 1_000_000_000n;

/** An amount in pico-USD (1e-12 USD); per-token prices need this much precision. */
export type Pico = bigint;
export const PICO_PER_USD = 1_000_000_000_000n;

export type Rounding = "up" | "down";

export interface ParseOptions {
  /** Accept amounts below zero. Default false: caps, prices and costs are never negative. */
  allowNegative?: boolean;
}

/** Thrown for any text (or number) that is not an exact decimal amount we are willing to accept. */
export class MoneyParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MoneyParseError";
  }
}

/**
 * Exponents outside ±400 are rejected: no real amount needs them, and `10n ** hugeExponent` would let
 * a hostile `1e999999999` allocate unbounded memory.
 */
const MAX_EXPONENT = 400;
/** Longer texts are rejected for the same reason; the longest shortest-round-trip double is 24 chars. */
const MAX_TEXT_LENGTH = 1000;
/** Scales beyond this are programming errors, not input errors. */
const MAX_SCALE = 100;

// Strict decimal grammar: optional "-", digits with an optional fraction (at least one digit in all),
// optional exponent. No "+" sign, no whitespace, no hex, no "Infinity"/"NaN", no digit separators.
const DECIMAL = /^(-?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

/**
 * Parses decimal text exactly and returns it in units of 10^-scale USD, rounded as asked.
 *
 * @example parseDecimal("8.41e-05", 9, "up") === 84_100n
 * @example parseDecimal("1e-10", 9, "up") === 1n; parseDecimal("1e-10", 9, "down") === 0n
 */
export function parseDecimal(
  text: string,
  scale: number,
  rounding: Rounding,
  opts: ParseOptions = {},
): bigint {
  if (!Number.isSafeInteger(scale) || scale < 0 || scale > MAX_SCALE) {
    throw new RangeError(`scale must be an integer in 0..${MAX_SCALE}, got ${scale}`);
  }
  if (text.length > MAX_TEXT_LENGTH) throw new MoneyParseError("amount text is too long");
  const match = DECIMAL.exec(text);
  if (match === null) throw new MoneyParseError(`not a decimal amount: ${JSON.stringify(text)}`);
  const [, sign = "", intDigits = "", fracDigits = "", expText] = match;
  if (intDigits.length + fracDigits.length === 0) {
    throw new MoneyParseError(`not a decimal amount: ${JSON.stringify(text)}`);
  }
  const exponent = expText === undefined ? 0 : Number(expText);
  if (!(Math.abs(exponent) <= MAX_EXPONENT)) {
    throw new MoneyParseError(`exponent out of range (±${MAX_EXPONENT}): ${JSON.stringify(text)}`);
  }

  const magnitude = BigInt(intDigits + fracDigits);
  // "-0" and "-0.000" are zero, not negative; BigInt has no negative zero anyway.
  const negative = sign === "-" && magnitude !== 0n;
  if (negative && opts.allowNegative !== true) {
    throw new MoneyParseError(`negative amount not allowed: ${JSON.stringify(text)}`);
  }
  const digits = negative ? -magnitude : magnitude;

  // value = digits × 10^(exponent − fracDigits.length); in target units multiply by 10^scale.
  const shift = exponent - fracDigits.length + scale;
  if (shift >= 0) return digits * 10n ** BigInt(shift);
  const divisor = 10n ** BigInt(-shift);
  return rounding === "up" ? ceilDiv(digits, divisor) : floorDiv(digits, divisor);
}

/** Parses a USD amount into nano-USD. @example parseUsdToNano("0.00000015", "up") === 150n */
export function parseUsdToNano(text: string, rounding: Rounding, opts: ParseOptions = {}): Nano {
  return parseDecimal(text, 9, rounding, opts);
}

/**
 * Parses a per-token USD price into pico-USD, rounding up: a price feeds worst-case bounds, and an
 * upper bound must never shrink in conversion.
 *
 * @example parsePriceToPico("0.000000075") === 75_000n
 */
export function parsePriceToPico(text: string): Pico {
  return parseDecimal(text, 12, "up");
}

/**
 * Converts a USD amount that arrived as a JS number (e.g. `monthlyUsd: 20` in validated JSON).
 *
 * It goes through `String(usd)`, the shortest text that round-trips to the same double, so `0.1`
 * means exactly one tenth of a dollar — what the sender wrote — and not the binary double's
 * 0.1000000000000000055….
 *
 * @example usdToNano(0.1, "down") === 100_000_000n
 */
export function usdToNano(usd: number, rounding: Rounding, opts: ParseOptions = {}): Nano {
  if (!Number.isFinite(usd)) throw new MoneyParseError(`not a finite amount: ${String(usd)}`);
  return parseUsdToNano(String(usd), rounding, opts);
}

/** @example picoToNano(1_500n, "up") === 2n */
export function picoToNano(p: Pico, rounding: Rounding): Nano {
  return rounding === "up" ? ceilDiv(p, 1000n) : floorDiv(p, 1000n);
}

/**
 * USD for API responses: a JSON number with at most 6 decimals. DESIGN.md: usage is rounded up,
 * remaining is rounded down, so neither ever flatters the app.
 *
 * Built from decimal text, because `Number(text)` is correctly rounded at every magnitude, whereas
 * `Number(micro) / 1e6` stops being exact above 2^53 micro-USD.
 *
 * @example nanoToUsd(1_234_567_001n, "up") === 1.234568
 */
export function nanoToUsd(n: Nano, rounding: Rounding): number {
  const micro = rounding === "up" ? ceilDiv(n, 1000n) : floorDiv(n, 1000n);
  return Number(fixedPointText(micro, 6));
}

/**
 * Human display, e.g. in the CLI and dashboard: `"$1.234567"`, `"-$0.000001"`. Six decimals, half
 * away from zero; not for anything that is parsed back or compared.
 */
export function formatUsd(n: Nano): string {
  const abs = n < 0n ? -n : n;
  const micro = (abs + 500n) / 1000n;
  const text = `$${fixedPointText(micro, 6)}`;
  return n < 0n && micro !== 0n ? `-${text}` : text;
}

/**
 * The exact USD value as plain decimal text, trailing zeros trimmed: `150n` → `"0.00000015"`,
 * `2_000_000_000n` → `"2"`. Lossless: `parseUsdToNano(nanoToDecimalText(n), r) === n` for every n.
 */
export function nanoToDecimalText(n: Nano): string {
  const text = fixedPointText(n, 9);
  return text.includes(".") ? text.replace(/\.?0+$/, "") : text;
}

/** `units × 10^-decimals` as text with exactly `decimals` fraction digits. */
function fixedPointText(units: bigint, decimals: number): string {
  const negative = units < 0n;
  const digits = (negative ? -units : units).toString().padStart(decimals + 1, "0");
  const cut = digits.length - decimals;
  return `${negative ? "-" : ""}${digits.slice(0, cut)}.${digits.slice(cut)}`;
}

/** ⌈a / b⌉ for b > 0 and any a. (BigInt `/` truncates toward zero, which is the ceiling only for a ≤ 0.) */
export function ceilDiv(a: bigint, b: bigint): bigint {
  if (b <= 0n) throw new RangeError("ceilDiv needs a positive divisor");
  const q = a / b;
  return a % b !== 0n && a > 0n ? q + 1n : q;
}

/** ⌊a / b⌋ for b > 0 and any a. */
export function floorDiv(a: bigint, b: bigint): bigint {
  if (b <= 0n) throw new RangeError("floorDiv needs a positive divisor");
  const q = a / b;
  return a % b !== 0n && a < 0n ? q - 1n : q;
}

/** The smallest of at least one amount. */
export function minNano(...xs: Nano[]): Nano {
  const [first, ...rest] = xs;
  if (first === undefined) throw new RangeError("minNano needs at least one amount");
  let min = first;
  for (const x of rest) if (x < min) min = x;
  return min;
}

/** The largest of at least one amount. */
export function maxNano(...xs: Nano[]): Nano {
  const [first, ...rest] = xs;
  if (first === undefined) throw new RangeError("maxNano needs at least one amount");
  let max = first;
  for (const x of rest) if (x > max) max = x;
  return max;
}

/**
 * Paths to read in one pass (see `rawFields`): the index of the slot the value at this point lands in,
 * or the keys wanted in an object here and, for each, what is wanted inside it.
 */
export type FieldTree = number | { readonly keys: readonly string[]; readonly next: readonly FieldTree[] };

/** The tree of `paths`: path `i`'s value lands in slot `i`. No path may be a prefix of another. */
export function fieldTree(paths: readonly (readonly string[])[]): FieldTree {
  type Node = { keys: string[]; next: FieldTree[] };
  let root: FieldTree | undefined;
  paths.forEach((path, slot) => {
    const clash = () => new RangeError(`field path ${JSON.stringify(path)} overlaps another`);
    if (path.length === 0) {
      if (root !== undefined) throw clash();
      root = slot;
      return;
    }
    root ??= { keys: [], next: [] };
    if (typeof root === "number") throw clash();
    let node: Node = root as Node;
    path.forEach((key, depth) => {
      const leaf = depth === path.length - 1;
      let k = node.keys.indexOf(key);
      if (k < 0) k = node.keys.push(key) - 1;
      const next = node.next[k];
      if (leaf) {
        if (next !== undefined) throw clash();
        node.next[k] = slot;
      } else if (next === undefined) {
        const child: Node = { keys: [], next: [] };
        node.next[k] = child;
        node = child;
      } else if (typeof next === "number") {
        throw clash();
      } else {
        node = next as Node;
      }
    });
  });
  if (root === undefined) throw new RangeError("no field paths");
  return root;
}

/**
 * The raw text of the scalar (a number, `true`, `false` or `null`) at each of `tree`'s paths within the
 * JSON value that starts at `json[start]` (after optional whitespace), read in one validating pass that
 * stops where that value ends (`end`). This is how `usage.cost` is read from its exact decimal text,
 * never through a float (DESIGN.md). A path that is absent, reached through a non-object, or holding a
 * string, an array or an object gives undefined. With `whole`, only whitespace may follow the value.
 *
 * Semantics match `JSON.parse`: only object keys are followed (compared after unescaping), and a
 * duplicated key means its last occurrence. Undefined as a whole when the value is not valid JSON.
 * O(length); nesting off the paths is skipped with an explicit stack, so deeply nested input cannot
 * overflow the call stack.
 *
 * @example rawFields('{"cost":1.5e-7,"is_byok":true}', 0, fieldTree([["cost"], ["is_byok"]]), true)
 *   // → { values: ["1.5e-7", "true"], end: 30 }
 */
export function rawFields(
  json: string,
  start: number,
  tree: FieldTree,
  whole: boolean,
): { values: (string | undefined)[]; end: number } | undefined {
  const values: (string | undefined)[] = [];
  try {
    const scanner = new JsonScanner(json, start);
    scanner.read(tree, values);
    const end = scanner.position;
    if (whole) {
      scanner.skipWhitespace();
      if (!scanner.atEnd()) throw new InvalidJson();
    }
    return { values, end };
  } catch (error) {
    if (error instanceof InvalidJson) return undefined;
    throw error;
  }
}

class InvalidJson extends Error {}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const MINUS = 0x2d;
const ZERO = 0x30;
const NINE = 0x39;
/** The characters allowed after a backslash other than `u`: " \ / b f n r t. */
const SIMPLE_ESCAPES = new Set([0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74]);

function isDigit(c: number): boolean {
  return c >= ZERO && c <= NINE;
}

function isHexDigit(c: number): boolean {
  return isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

/** The index of the first character at or after `i` in `s` that is not JSON whitespace. */
export function skipJsonWhitespace(s: string, i: number): number {
  for (;;) {
    const c = s.charCodeAt(i);
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return i;
    i++;
  }
}

/** Forgets every value found under `tree` (its key occurred again). */
function clearSlots(tree: FieldTree, values: (string | undefined)[]): void {
  if (typeof tree === "number") values[tree] = undefined;
  else for (const next of tree.next) clearSlots(next, values);
}

/** A validating JSON scanner (RFC 8259) that reads the fields it is asked for and skips everything else. */
class JsonScanner {
  constructor(
    private readonly s: string,
    private i = 0,
  ) {}

  atEnd(): boolean {
    return this.i === this.s.length;
  }

  skipWhitespace(): void {
    this.i = skipJsonWhitespace(this.s, this.i);
  }

  get position(): number {
    return this.i;
  }

  /**
   * Consumes one value and records into `values` what `tree` asks of it: the value's scalar text for a
   * slot; for an object, what is wanted under each of its keys. Recursion depth is bounded by the tree's.
   */
  read(tree: FieldTree, values: (string | undefined)[]): void {
    if (typeof tree === "number") {
      values[tree] = this.scalarText();
      return;
    }
    this.skipWhitespace();
    if (this.s.charCodeAt(this.i) !== OPEN_BRACE) {
      this.skipValue();
      return;
    }
    this.i++;
    this.skipWhitespace();
    if (this.s.charCodeAt(this.i) === CLOSE_BRACE) {
      this.i++;
      return;
    }
    for (;;) {
      const k = this.memberKeyIndex(tree.keys);
      const next = k < 0 ? undefined : tree.next[k];
      if (next === undefined) {
        this.skipValue();
      } else {
        // Last occurrence wins, as in JSON.parse: a repeated key replaces everything found under it.
        clearSlots(next, values);
        this.read(next, values);
      }
      this.skipWhitespace();
      const c = this.s.charCodeAt(this.i++);
      if (c === CLOSE_BRACE) return;
      if (c !== COMMA) throw new InvalidJson();
    }
  }

  /** Consumes one value; its text when it is a number or a literal, undefined for a string or container. */
  private scalarText(): string | undefined {
    this.skipWhitespace();
    const start = this.i;
    const c = this.s.charCodeAt(start);
    if (c === QUOTE || c === OPEN_BRACE || c === OPEN_BRACKET) {
      this.skipValue();
      return undefined;
    }
    this.scalar();
    return this.s.slice(start, this.i);
  }

  /** Consumes `"key"` `:` (with whitespace) and returns the index of the unescaped key in `wanted`, or -1. */
  private memberKeyIndex(wanted: readonly string[]): number {
    this.skipWhitespace();
    const start = this.i;
    const hasEscape = this.string();
    const end = this.i;
    this.skipColon();
    // Escaped keys are rare and short; JSON.parse of an already-validated string literal is exact.
    if (hasEscape) return wanted.indexOf(JSON.parse(this.s.slice(start, end)) as string);
    // Compared in place: no substring per key (this runs on every request's usage object).
    for (let k = 0; k < wanted.length; k++) {
      const key = wanted[k] as string;
      if (end - start - 2 === key.length && this.s.startsWith(key, start + 1)) return k;
    }
    return -1;
  }

  /** Consumes a key that is not needed: `"key"` `:` (with whitespace). */
  private skipMemberKey(): void {
    this.skipWhitespace();
    this.string();
    this.skipColon();
  }

  private skipColon(): void {
    this.skipWhitespace();
    if (this.s.charCodeAt(this.i++) !== COLON) throw new InvalidJson();
  }

  /** Consumes any value, iteratively: the stack holds the closing bracket of each open container. */
  private skipValue(): void {
    // Allocated only on entering a container: most skipped values are scalars.
    let closers: number[] | undefined;
    for (;;) {
      // Expecting a value.
      this.skipWhitespace();
      const c = this.s.charCodeAt(this.i);
      if (c === OPEN_BRACE || c === OPEN_BRACKET) {
        this.i++;
        this.skipWhitespace();
        const close = c === OPEN_BRACE ? CLOSE_BRACE : CLOSE_BRACKET;
        if (this.s.charCodeAt(this.i) === close) {
          this.i++;
        } else {
          closers ??= [];
          closers.push(close);
          if (close === CLOSE_BRACE) this.skipMemberKey();
          continue;
        }
      } else {
        this.scalar();
      }
      // A value ended: close containers until one continues with another element.
      for (;;) {
        const close = closers?.at(-1);
        if (close === undefined) return;
        this.skipWhitespace();
        const next = this.s.charCodeAt(this.i++);
        if (next === close) {
          closers?.pop();
        } else if (next === COMMA) {
          if (close === CLOSE_BRACE) this.skipMemberKey();
          break;
        } else {
          throw new InvalidJson();
        }
      }
    }
  }

  private scalar(): void {
    const c = this.s.charCodeAt(this.i);
    if (c === QUOTE) this.string();
    else if (c === MINUS || isDigit(c)) this.number();
    else if (!(this.literal("true") || this.literal("false") || this.literal("null")))
      throw new InvalidJson();
  }

  private literal(word: string): boolean {
    if (!this.s.startsWith(word, this.i)) return false;
    this.i += word.length;
    return true;
  }

  /** Consumes a string literal; returns whether it contained an escape. */
  private string(): boolean {
    const s = this.s;
    let i = this.i;
    if (s.charCodeAt(i++) !== QUOTE) throw new InvalidJson();
    let hasEscape = false;
    for (;;) {
      const c = s.charCodeAt(i++);
      if (c === QUOTE) break;
      // Also catches the end of input (NaN) and raw control characters, which JSON forbids.
      if (!(c >= 0x20)) throw new InvalidJson();
      if (c === BACKSLASH) {
        hasEscape = true;
        const e = s.charCodeAt(i++);
        if (e === 0x75 /* u */) {
          for (let k = 0; k < 4; k++) if (!isHexDigit(s.charCodeAt(i++))) throw new InvalidJson();
        } else if (!SIMPLE_ESCAPES.has(e)) {
          throw new InvalidJson();
        }
      }
    }
    this.i = i;
    return hasEscape;
  }

  /** Consumes a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
  private number(): void {
    const s = this.s;
    let i = this.i;
    if (s.charCodeAt(i) === MINUS) i++;
    if (s.charCodeAt(i) === ZERO) i++;
    else if (isDigit(s.charCodeAt(i))) while (isDigit(s.charCodeAt(i))) i++;
    else throw new InvalidJson();
    if (s.charCodeAt(i) === 0x2e /* . */) {
      i++;
      if (!isDigit(s.charCodeAt(i))) throw new InvalidJson();
      while (isDigit(s.charCodeAt(i))) i++;
    }
    const e = s.charCodeAt(i);
    if (e === 0x65 || e === 0x45 /* e E */) {
      i++;
      const sign = s.charCodeAt(i);
      if (sign === 0x2b || sign === MINUS) i++;
      if (!isDigit(s.charCodeAt(i))) throw new InvalidJson();
      while (isDigit(s.charCodeAt(i))) i++;
    }
    this.i = i;
  }
}
