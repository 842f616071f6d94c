import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  APP_ID_PATTERN,
  generateAppId,
  generateSecretKey,
  hashSecretKey,
  parseSecretKey,
  SECRET_LENGTH,
  safeEqualHash,
} from "./app-keys.js";

const APP_ID = "k3j9x0q2m4a7";
const SECRET = `${"A".repeat(20)}${"b".repeat(20)}012`;

/** Counts each character over many samples and returns the largest relative deviation from uniform. */
function maxDeviationFromUniform(samples: string[], alphabet: string): number {
  const counts = new Map<string, number>([...alphabet].map((c) => [c, 0]));
  let total = 0;
  for (const sample of samples) {
    for (const c of sample) {
      counts.set(c, (counts.get(c) ?? 0) + 1);
      total += 1;
    }
  }
  expect(counts.size).toBe(alphabet.length); // nothing outside the alphabet
  const expected = total / alphabet.length;
  return Math.max(...[...counts.values()].map((n) => Math.abs(n - expected) / expected));
}

describe("generateAppId", () => {
  it("makes 12 characters of [a-z0-9] that satisfy APP_ID_PATTERN", () => {
    for (let i = 0; i < 200; i++) {
      const id = generateAppId();
      expect(id).toMatch(/^[a-z0-9]{12}$/);
      expect(APP_ID_PATTERN.test(id)).toBe(true);
    }
  });

  it("draws every character uniformly (no modulo bias)", () => {
    // 240,000 characters: one standard deviation is ~1.2 %, modulo bias would put 4 characters ~11 % high.
    const ids = Array.from({ length: 20_000 }, generateAppId);
    expect(maxDeviationFromUniform(ids, "abcdefghijklmnopqrstuvwxyz0123456789")).toBeLessThan(0.06);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe("generateSecretKey", () => {
  it("makes sk_live_{appId}_{43 base62 chars}", () => {
    const key = generateSecretKey(APP_ID);
    expect(key).toMatch(/^sk_live_k3j9x0q2m4a7_[0-9A-Za-z]{43}$/);
  });

  it("carries at least 256 bits in its secret", () => {
    expect(SECRET_LENGTH * Math.log2(62)).toBeGreaterThanOrEqual(256);
  });

  it("draws every base62 character uniformly (no modulo bias)", () => {
    // 215,000 characters: one standard deviation is ~1.7 %, `byte % 62` would put 8 characters ~21 % high.
    const secrets = Array.from({ length: 5_000 }, () => generateSecretKey(APP_ID).slice(-SECRET_LENGTH));
    const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    expect(maxDeviationFromUniform(secrets, alphabet)).toBeLessThan(0.1);
    expect(new Set(secrets).size).toBe(secrets.length);
  });

  it("parses back into its app id and secret for any valid app id", () => {
    fc.assert(
      fc.property(fc.stringMatching(APP_ID_PATTERN), (appId) => {
        const key = generateSecretKey(appId);
        const parsed = parseSecretKey(key);
        expect(parsed?.appId).toBe(appId);
        expect(parsed?.secret).toBe(key.slice(-SECRET_LENGTH));
      }),
      { numRuns: 200 },
    );
  });

  it("refuses an invalid app id", () => {
    expect(() => generateSecretKey("Short")).toThrow(TypeError);
    expect(() => generateSecretKey("has_underscore1")).toThrow(TypeError);
  });
});

describe("parseSecretKey", () => {
  it("splits a well-formed key", () => {
    const parsed = parseSecretKey(`sk_live_${APP_ID}_${SECRET}`);
    expect(parsed?.appId).toBe(APP_ID);
    expect(parsed?.secret).toBe(SECRET);
  });

  it("accepts app ids of 8 and 32 characters", () => {
    expect(parseSecretKey(`sk_live_${"a".repeat(8)}_${SECRET}`)?.appId).toBe("a".repeat(8));
    expect(parseSecretKey(`sk_live_${"a".repeat(32)}_${SECRET}`)?.appId).toBe("a".repeat(32));
  });

  it.each([
    ["a test-mode prefix", `sk_test_${APP_ID}_${SECRET}`],
    ["a publishable prefix", `pk_live_${APP_ID}_${SECRET}`],
    ["an upper-case prefix", `SK_LIVE_${APP_ID}_${SECRET}`],
    ["no prefix", `${APP_ID}_${SECRET}`],
    ["a 42-char secret", `sk_live_${APP_ID}_${SECRET.slice(1)}`],
    ["a 44-char secret", `sk_live_${APP_ID}_${SECRET}x`],
    ["an upper-case app id", `sk_live_K3J9X0Q2M4A7_${SECRET}`],
    ["a 7-char app id", `sk_live_${"a".repeat(7)}_${SECRET}`],
    ["a 33-char app id", `sk_live_${"a".repeat(33)}_${SECRET}`],
    ["an underscore inside the app id", `sk_live_k3j9_x0q2m4a7_${SECRET}`],
    ["an extra underscore before the secret", `sk_live_${APP_ID}__${SECRET}`],
    ["an underscore inside the secret", `sk_live_${APP_ID}_${SECRET.slice(0, 20)}_${SECRET.slice(21)}`],
    ["a trailing underscore", `sk_live_${APP_ID}_${SECRET}_`],
    ["a non-base62 secret character", `sk_live_${APP_ID}_${SECRET.slice(1)}-`],
    ["surrounding whitespace", ` sk_live_${APP_ID}_${SECRET}`],
    ["a trailing newline", `sk_live_${APP_ID}_${SECRET}\n`],
    ["an empty string", ""],
    ["a huge string", `sk_live_${APP_ID}_${"a".repeat(100_000)}`],
  ])("returns null for %s", (_label, key) => {
    expect(parseSecretKey(key)).toBeNull();
  });

  it("never throws on arbitrary input", () => {
    fc.assert(
      fc.property(fc.string(), (input) => {
        expect(() => parseSecretKey(input)).not.toThrow();
      }),
    );
  });
});

describe("hashSecretKey / safeEqualHash", () => {
  it("hashes the whole key with SHA-256", () => {
    const key = `sk_live_${APP_ID}_${SECRET}`;
    expect(hashSecretKey(key).equals(createHash("sha256").update(key).digest())).toBe(true);
    expect(hashSecretKey(key)).toHaveLength(32);
  });

  it("binds the hash to the app id, not only to the secret", () => {
    const a = hashSecretKey(`sk_live_${APP_ID}_${SECRET}`);
    const b = hashSecretKey(`sk_live_zzzzzzzzzzzz_${SECRET}`);
    expect(safeEqualHash(a, b)).toBe(false);
  });

  it("matches equal hashes and rejects different ones", () => {
    const key = generateSecretKey(APP_ID);
    expect(safeEqualHash(hashSecretKey(key), hashSecretKey(key))).toBe(true);
    expect(safeEqualHash(hashSecretKey(key), hashSecretKey(generateSecretKey(APP_ID)))).toBe(false);
  });

  it("returns false instead of throwing when lengths differ", () => {
    expect(safeEqualHash(Buffer.alloc(32), Buffer.alloc(31))).toBe(false);
    expect(safeEqualHash(Buffer.alloc(0), Buffer.alloc(32))).toBe(false);
  });
});
