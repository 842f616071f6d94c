import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decryptFundingKey,
  encryptFundingKey,
  FundingDecryptError,
  type FundingDecryptFailure,
  fundingKeyFingerprint,
  needsReencryption,
  openRouterKeyHash,
} from "./funding-crypto.js";
import { createKeyRing } from "./keyring.js";

const OLD_SECRET = Buffer.alloc(32, 1);
const NEW_SECRET = Buffer.alloc(32, 2);
const ring = createKeyRing(NEW_SECRET);
const KEY = `sk-or-v1-${"0123456789abcdef".repeat(4)}`;
const ROW = "fund_01HZX3";

function failureOf(run: () => unknown): FundingDecryptFailure {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(FundingDecryptError);
    return (error as FundingDecryptError).reason;
  }
  throw new Error("expected decryption to fail");
}

/** Re-encodes one base64url part of a blob after flipping a bit of its bytes. */
function flipBit(blob: string, part: 2 | 3, byteIndex: number): string {
  const parts = blob.split(".");
  const bytes = Buffer.from(parts[part] ?? "", "base64url");
  bytes[byteIndex % bytes.length] = (bytes[byteIndex % bytes.length] ?? 0) ^ 0x01;
  parts[part] = bytes.toString("base64url");
  return parts.join(".");
}

describe("encryptFundingKey / decryptFundingKey", () => {
  it("round-trips a funding key bound to its row", () => {
    const blob = encryptFundingKey(ring, KEY, ROW);
    expect(decryptFundingKey(ring, blob, ROW)).toBe(KEY);
  });

  it("produces v1.<kid>.<12-byte iv>.<ciphertext+16-byte tag>", () => {
    const blob = encryptFundingKey(ring, KEY, ROW);
    const [version, kid, iv, sealed] = blob.split(".");
    expect(version).toBe("v1");
    expect(kid).toBe(ring.current.kid);
    expect(Buffer.from(iv ?? "", "base64url")).toHaveLength(12);
    expect(Buffer.from(sealed ?? "", "base64url")).toHaveLength(Buffer.byteLength(KEY) + 16);
    expect(blob).not.toContain(KEY.slice(9));
  });

  it("uses a fresh IV, so the same key encrypts differently each time", () => {
    const blobs = new Set(Array.from({ length: 50 }, () => encryptFundingKey(ring, KEY, ROW)));
    expect(blobs.size).toBe(50);
  });

  it("round-trips any Unicode string", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), fc.string({ minLength: 1 }), (plaintext, rowId) => {
        expect(decryptFundingKey(ring, encryptFundingKey(ring, plaintext, rowId), rowId)).toBe(plaintext);
      }),
      { numRuns: 200 },
    );
  });

  it("refuses a blob moved to another row (the row id is the AAD)", () => {
    const blob = encryptFundingKey(ring, KEY, ROW);
    expect(failureOf(() => decryptFundingKey(ring, blob, "fund_other"))).toBe("auth_failed");
  });

  it("refuses a blob with any single bit flipped in the IV, ciphertext or tag", () => {
    const blob = encryptFundingKey(ring, KEY, ROW);
    fc.assert(
      fc.property(fc.constantFrom(2 as const, 3 as const), fc.nat(), (part, byteIndex) => {
        expect(failureOf(() => decryptFundingKey(ring, flipBit(blob, part, byteIndex), ROW))).toBe(
          "auth_failed",
        );
      }),
      { numRuns: 200 },
    );
  });

  it("refuses a truncated tag", () => {
    const blob = encryptFundingKey(ring, KEY, ROW);
    const parts = blob.split(".");
    const sealed = Buffer.from(parts[3] ?? "", "base64url");
    parts[3] = sealed.subarray(0, sealed.length - 1).toString("base64url");
    expect(failureOf(() => decryptFundingKey(ring, parts.join("."), ROW))).toBe("auth_failed");
  });

  it.each([
    ["an empty string", ""],
    ["a wrong version", "v2.0000000000000000.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA"],
    ["too few parts", "v1.0000000000000000.AAAAAAAAAAAAAAAA"],
    ["too many parts", "v1.0000000000000000.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA.x"],
    ["a non-hex kid", "v1.000000000000000Z.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA"],
    ["an 8-byte IV", "v1.0000000000000000.AAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA"],
    ["standard base64 padding", "v1.0000000000000000.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA=="],
    ["a sealed part shorter than a tag", "v1.0000000000000000.AAAAAAAAAAAAAAAA.AAAA"],
  ])("reports a blob with %s as malformed", (_label, blob) => {
    expect(failureOf(() => decryptFundingKey(ring, blob, ROW))).toBe("malformed");
  });

  it("reports a non-canonical base64url spelling as malformed", () => {
    const blob = encryptFundingKey(ring, KEY, ROW);
    // 12 bytes are exactly 16 chars; appending a stray char still decodes to the same bytes leniently.
    const [version, kid, iv, sealed] = blob.split(".");
    expect(failureOf(() => decryptFundingKey(ring, `${version}.${kid}.${iv}A.${sealed}`, ROW))).toBe(
      "malformed",
    );
  });

  it("refuses an empty row id on both sides rather than binding to nothing", () => {
    expect(() => encryptFundingKey(ring, KEY, "")).toThrow(TypeError);
    const blob = encryptFundingKey(ring, KEY, ROW);
    expect(() => decryptFundingKey(ring, blob, "")).toThrow(TypeError);
  });
});

describe("rotation", () => {
  const oldRing = createKeyRing(OLD_SECRET);
  const rotatedRing = createKeyRing(NEW_SECRET, OLD_SECRET);

  it("decrypts a blob made under the previous secret", () => {
    const blob = encryptFundingKey(oldRing, KEY, ROW);
    expect(decryptFundingKey(rotatedRing, blob, ROW)).toBe(KEY);
  });

  it("refuses a blob whose secret is no longer configured", () => {
    const blob = encryptFundingKey(oldRing, KEY, ROW);
    expect(failureOf(() => decryptFundingKey(ring, blob, ROW))).toBe("unknown_kid");
  });

  it("refuses a blob relabelled with another known kid", () => {
    const blob = encryptFundingKey(oldRing, KEY, ROW);
    const relabelled = blob.replace(oldRing.current.kid, rotatedRing.current.kid);
    expect(failureOf(() => decryptFundingKey(rotatedRing, relabelled, ROW))).toBe("auth_failed");
  });

  it("flags blobs not under the current kid for re-encryption, and clears the flag once re-encrypted", () => {
    const oldBlob = encryptFundingKey(oldRing, KEY, ROW);
    expect(needsReencryption(rotatedRing, oldBlob)).toBe(true);
    const fresh = encryptFundingKey(rotatedRing, decryptFundingKey(rotatedRing, oldBlob, ROW), ROW);
    expect(needsReencryption(rotatedRing, fresh)).toBe(false);
    expect(decryptFundingKey(rotatedRing, fresh, ROW)).toBe(KEY);
  });

  it("flags an unreadable blob for re-encryption rather than pretending it is current", () => {
    expect(needsReencryption(rotatedRing, "garbage")).toBe(true);
  });
});

describe("fundingKeyFingerprint", () => {
  it("shows the OpenRouter prefix and the last 4 characters only", () => {
    expect(fundingKeyFingerprint(`sk-or-v1-${"f".repeat(60)}a1b2`)).toBe("sk-or-v1-…a1b2");
  });

  it("shows only the last 4 characters of a key with another prefix", () => {
    expect(fundingKeyFingerprint(`other-${"x".repeat(30)}wxyz`)).toBe("…wxyz");
  });

  it("shows nothing of a key too short for 4 characters to be harmless", () => {
    expect(fundingKeyFingerprint("sk-or-v1-abc123")).toBe("sk-or-v1-…");
    expect(fundingKeyFingerprint("short")).toBe("…");
  });

  it("never reveals more than the last 4 characters of the key body", () => {
    fc.assert(
      fc.property(fc.string({ minLength: 16, maxLength: 80 }), (body) => {
        const fingerprint = fundingKeyFingerprint(`sk-or-v1-${body}`);
        expect(fingerprint).toBe(`sk-or-v1-…${body.slice(-4)}`);
      }),
    );
  });
});

describe("openRouterKeyHash", () => {
  it("is the SHA-256 hex of the key, as OpenRouter's key pages use", () => {
    expect(openRouterKeyHash("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect(openRouterKeyHash(KEY)).toMatch(/^[0-9a-f]{64}$/);
  });
});
