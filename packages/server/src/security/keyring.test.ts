import { describe, expect, it } from "vitest";
import { createKeyRing, deriveSubkeys, MIN_SERVER_SECRET_BYTES } from "./keyring.js";

const SECRET = Buffer.alloc(32, 7);
const OTHER_SECRET = Buffer.alloc(32, 8);

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

describe("deriveSubkeys", () => {
  it("derives three distinct 32-byte subkeys, none equal to the secret", () => {
    const keys = deriveSubkeys(SECRET);
    const all = [hex(keys.jwt), hex(keys.funding), hex(keys.csrf)];
    for (const key of all) expect(key).toHaveLength(64);
    expect(new Set([...all, hex(SECRET)]).size).toBe(4);
  });

  it("is stable: the pinned kid and subkeys for a fixed secret never change (stored blobs depend on them)", () => {
    const keys = deriveSubkeys(SECRET);
    expect(keys.kid).toBe("70e934a9b8f67706");
    expect(hex(keys.jwt)).toBe("259a9da606dee99c749cb0d28654fec5a0c67abd51c7822a58f83ac8b49edf0f");
    expect(hex(keys.funding)).toBe("a2cfd62f7aa31ae336106a95e9f5655dfa578c93eeefd303ab750c2aa4506d1e");
    expect(hex(keys.csrf)).toBe("629dc3b669ed84444c4ca53ce4549c11d1451700fcc1cbe5d092c86aebff27c6");
  });

  it("derives the same subkeys from the same secret every time", () => {
    const a = deriveSubkeys(Buffer.from(SECRET));
    const b = deriveSubkeys(Buffer.from(SECRET));
    expect(a.kid).toBe(b.kid);
    expect(hex(a.jwt)).toBe(hex(b.jwt));
    expect(hex(a.funding)).toBe(hex(b.funding));
    expect(hex(a.csrf)).toBe(hex(b.csrf));
  });

  it("gives a different secret a different kid and different subkeys", () => {
    const a = deriveSubkeys(SECRET);
    const b = deriveSubkeys(OTHER_SECRET);
    expect(a.kid).not.toBe(b.kid);
    expect(hex(a.jwt)).not.toBe(hex(b.jwt));
    expect(hex(a.funding)).not.toBe(hex(b.funding));
    expect(hex(a.csrf)).not.toBe(hex(b.csrf));
  });

  it("uses a 16-hex-char kid", () => {
    expect(deriveSubkeys(OTHER_SECRET).kid).toMatch(/^[0-9a-f]{16}$/);
  });

  it("refuses a secret shorter than 32 bytes and accepts exactly 32", () => {
    expect(() => deriveSubkeys(Buffer.alloc(MIN_SERVER_SECRET_BYTES - 1, 1))).toThrow(RangeError);
    expect(() => deriveSubkeys(Buffer.alloc(0))).toThrow(RangeError);
    expect(() => deriveSubkeys(Buffer.alloc(MIN_SERVER_SECRET_BYTES, 1))).not.toThrow();
  });
});

describe("createKeyRing", () => {
  it("uses the current secret and has no previous one unless given", () => {
    const ring = createKeyRing(SECRET);
    expect(ring.current.kid).toBe(deriveSubkeys(SECRET).kid);
    expect(ring.previous).toBeUndefined();
  });

  it("finds current and previous subkeys by kid and nothing else", () => {
    const ring = createKeyRing(SECRET, OTHER_SECRET);
    const previousKid = deriveSubkeys(OTHER_SECRET).kid;
    expect(ring.byKid(ring.current.kid)).toBe(ring.current);
    expect(ring.previous?.kid).toBe(previousKid);
    expect(ring.byKid(previousKid)).toBe(ring.previous);
    expect(ring.byKid(deriveSubkeys(Buffer.alloc(32, 9)).kid)).toBeUndefined();
    expect(ring.byKid("")).toBeUndefined();
  });

  it("drops a previous secret identical to the current one", () => {
    const ring = createKeyRing(SECRET, Buffer.from(SECRET));
    expect(ring.previous).toBeUndefined();
  });

  it("refuses a short previous secret as firmly as a short current one", () => {
    expect(() => createKeyRing(SECRET, Buffer.alloc(16, 1))).toThrow(RangeError);
  });
});
