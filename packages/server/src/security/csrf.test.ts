import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createCsrfToken, verifyCsrfToken } from "./csrf.js";
import { createKeyRing } from "./keyring.js";

const ring = createKeyRing(Buffer.alloc(32, 11));
const SESSION = "ps_01HZX3ABCDEF";

describe("createCsrfToken / verifyCsrfToken", () => {
  it("makes <kid>.<43-char HMAC> that verifies for its session", () => {
    const token = createCsrfToken(ring, SESSION);
    expect(token).toMatch(new RegExp(`^${ring.current.kid}\\.[A-Za-z0-9_-]{43}$`));
    expect(verifyCsrfToken(ring, SESSION, token)).toBe(true);
  });

  it("is deterministic per session, so it survives page reloads without storage", () => {
    expect(createCsrfToken(ring, SESSION)).toBe(createCsrfToken(ring, SESSION));
  });

  it("refuses a token made for a different session", () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.string({ minLength: 1 }), (a, b) => {
        fc.pre(a !== b);
        expect(verifyCsrfToken(ring, b, createCsrfToken(ring, a))).toBe(false);
      }),
    );
  });

  it("refuses a token made with another secret", () => {
    const stranger = createKeyRing(Buffer.alloc(32, 12));
    expect(verifyCsrfToken(ring, SESSION, createCsrfToken(stranger, SESSION))).toBe(false);
  });

  it("refuses any single changed character", () => {
    const token = createCsrfToken(ring, SESSION);
    fc.assert(
      fc.property(fc.nat({ max: token.length - 1 }), fc.constantFrom(..."0aA_-"), (index, replacement) => {
        fc.pre(token[index] !== replacement);
        const tampered = token.slice(0, index) + replacement + token.slice(index + 1);
        expect(verifyCsrfToken(ring, SESSION, tampered)).toBe(false);
      }),
    );
  });

  it("refuses a non-canonical spelling of the same MAC bytes", () => {
    const token = createCsrfToken(ring, SESSION);
    // The last of 43 base64url chars carries 2 unused bits; changing only them keeps the decoded bytes.
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const last = alphabet.indexOf(token.at(-1) ?? "");
    const sibling = `${token.slice(0, -1)}${alphabet[last ^ 1]}`;
    expect(Buffer.from(sibling.split(".")[1] ?? "", "base64url")).toEqual(
      Buffer.from(token.split(".")[1] ?? "", "base64url"),
    );
    expect(verifyCsrfToken(ring, SESSION, sibling)).toBe(false);
  });

  it.each([
    ["an empty token", ""],
    ["a token without kid", "x".repeat(43)],
    ["an unknown kid", `0000000000000000.${"A".repeat(43)}`],
    ["a short MAC", `${createKeyRing(Buffer.alloc(32, 11)).current.kid}.abc`],
  ])("refuses %s", (_label, token) => {
    expect(verifyCsrfToken(ring, SESSION, token)).toBe(false);
  });

  it("refuses anything for an empty session id and will not mint one", () => {
    expect(verifyCsrfToken(ring, "", createCsrfToken(ring, SESSION))).toBe(false);
    expect(() => createCsrfToken(ring, "")).toThrow(TypeError);
  });
});

describe("CSRF across a secret rotation", () => {
  const oldRing = createKeyRing(Buffer.alloc(32, 13));
  const rotated = createKeyRing(Buffer.alloc(32, 11), Buffer.alloc(32, 13));

  it("accepts a token made under the previous secret", () => {
    expect(verifyCsrfToken(rotated, SESSION, createCsrfToken(oldRing, SESSION))).toBe(true);
  });

  it("refuses it once the previous secret is gone", () => {
    expect(verifyCsrfToken(ring, SESSION, createCsrfToken(oldRing, SESSION))).toBe(false);
  });

  it("mints new tokens under the current secret", () => {
    expect(createCsrfToken(rotated, SESSION)).toBe(createCsrfToken(ring, SESSION));
  });
});
