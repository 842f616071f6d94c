import { describe, expect, it } from "vitest";
import { readKeyCheck } from "./key-check.js";
import { createCodeVerifier, createOAuthState, s256Challenge } from "./pkce.js";
import { oauthAvailableFor } from "./service.js";
import { parseFundingOutcome } from "./views.js";

const key = (data: Record<string, unknown>) =>
  JSON.stringify({ data: { label: "sk-or-v1-abc…", is_management_key: false, ...data } });

describe("readKeyCheck", () => {
  it("reads an ordinary key without a limit as usable and ok", () => {
    expect(readKeyCheck(200, key({ limit: null, limit_remaining: null }))).toEqual({
      kind: "usable",
      state: "ok",
      limitRemainingNano: null,
      management: false,
    });
  });

  it("rounds the remaining limit down to the nano, exponents included", () => {
    expect(readKeyCheck(200, key({ limit_remaining: 1.5 }))).toMatchObject({
      limitRemainingNano: 1_500_000_000n,
    });
    expect(readKeyCheck(200, key({ limit_remaining: 1.2e-7 }))).toMatchObject({ limitRemainingNano: 120n });
  });

  it("reads a used-up (even negative) key limit as insufficient with zero headroom", () => {
    expect(readKeyCheck(200, key({ limit_remaining: 0 }))).toMatchObject({
      state: "insufficient",
      limitRemainingNano: 0n,
    });
    expect(readKeyCheck(200, key({ limit_remaining: -0.25 }))).toMatchObject({
      state: "insufficient",
      limitRemainingNano: 0n,
    });
  });

  it("flags management keys under either name", () => {
    expect(readKeyCheck(200, key({ is_management_key: true }))).toMatchObject({ management: true });
    expect(readKeyCheck(200, key({ is_provisioning_key: true }))).toMatchObject({ management: true });
  });

  it("reads 401 as invalid and anything else unreadable as unknown", () => {
    expect(readKeyCheck(401, '{"error":{"code":401,"message":"User not found."}}')).toEqual({
      kind: "invalid",
    });
    expect(readKeyCheck(500, "oops")).toEqual({ kind: "unknown", status: 500 });
    expect(readKeyCheck(200, "not json")).toEqual({ kind: "unknown", status: 200 });
    expect(readKeyCheck(200, '{"nodata":true}')).toEqual({ kind: "unknown", status: 200 });
  });
});

describe("PKCE", () => {
  it("computes the S256 challenge of RFC 7636 appendix B", () => {
    expect(s256Challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")).toBe(
      "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
    );
  });

  it("makes 43-character unreserved verifiers and states, different every time", () => {
    const verifiers = new Set(Array.from({ length: 50 }, createCodeVerifier));
    expect(verifiers.size).toBe(50);
    for (const v of [...verifiers, createOAuthState()]) expect(v).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });
});

describe("oauthAvailableFor", () => {
  it.each([
    ["https://wattfare.example", true],
    ["http://localhost:8787", true],
    ["http://127.0.0.1:3000", true],
    ["http://wattfare.internal:8080", false],
    ["http://10.0.0.5", false],
  ])("%s → %s", (url, expected) => {
    expect(oauthAvailableFor(url)).toBe(expected);
  });
});

describe("parseFundingOutcome", () => {
  it("accepts only known outcomes", () => {
    expect(parseFundingOutcome("connected")).toBe("connected");
    expect(parseFundingOutcome("<script>")).toBeUndefined();
    expect(parseFundingOutcome("")).toBeUndefined();
  });
});
