import { decodeProtectedHeader, generateKeyPair, type JWTHeaderParameters, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { ApiError } from "../errors.js";
import { createKeyRing, type KeyRing } from "./keyring.js";
import {
  issuedBeforeCompromise,
  type SessionClaims,
  type SessionRejection,
  SessionTokenError,
  signGrantSession,
  signUserSession,
  type TokenConfig,
  verifySession,
} from "./tokens.js";

const SECRET = Buffer.alloc(32, 3);
const OLD_SECRET = Buffer.alloc(32, 4);
const STRANGER_SECRET = Buffer.alloc(32, 5);
const ring = createKeyRing(SECRET);
const cfg: TokenConfig = { issuer: "https://wattfare.test", audience: "wattfare-session", ttlSeconds: 600 };
// A fixed instant far from the real clock: if jose ever read Date.now(), these tests would fail.
const NOW = 1_500_000_000;
const APP = "k3j9x0q2m4a7";

function userClaims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    typ: "user",
    sub: "user_123",
    app: APP,
    jti: "AAAAAAAAAAAAAAAAAAAAAA",
    iat: NOW,
    exp: NOW + 600,
    iss: cfg.issuer,
    aud: cfg.audience,
    ...overrides,
  };
}

function grantClaims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const { sub: _sub, ...rest } = userClaims({ typ: "grant", grant: { maxUsd: 5 } });
  return { ...rest, ...overrides };
}

/** Signs arbitrary claims and header fields, the way an attacker or a buggy signer might. */
async function forge(
  claims: Record<string, unknown>,
  header: Partial<JWTHeaderParameters> = {},
  key: Uint8Array = ring.current.jwt,
): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256", typ: "JWT", kid: ring.current.kid, ...header })
    .sign(key);
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

async function rejectionOf(promise: Promise<SessionClaims>): Promise<SessionRejection> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ApiError);
  const apiError = error as ApiError;
  expect(apiError.code).toBe("auth");
  expect(apiError.status).toBe(401);
  expect(apiError.cause).toBeInstanceOf(SessionTokenError);
  return (apiError.cause as SessionTokenError).reason;
}

const verifyUser = (token: string, now = NOW, keys: KeyRing = ring) =>
  verifySession(keys, cfg, token, "user", now);

describe("signUserSession", () => {
  it("signs HS256 with typ JWT and the current kid, valid for ttlSeconds", async () => {
    const { token, expiresAt, claims } = await signUserSession(
      ring,
      cfg,
      { appId: APP, appUserId: "user_123" },
      NOW,
    );
    expect(decodeProtectedHeader(token)).toEqual({ alg: "HS256", typ: "JWT", kid: ring.current.kid });
    expect(expiresAt).toBe(NOW + 600);
    expect(claims).toMatchObject({ typ: "user", sub: "user_123", app: APP, iat: NOW, exp: NOW + 600 });
    expect(claims.iss).toBe(cfg.issuer);
    expect(claims.aud).toBe(cfg.audience);
    expect(claims.jti).toMatch(/^[A-Za-z0-9_-]{22}$/);
  });

  it("round-trips through verifySession, lim included when requested", async () => {
    const signed = await signUserSession(ring, cfg, { appId: APP, appUserId: "u", monthlyUsd: 20 }, NOW);
    expect(signed.claims.lim).toBe(20);
    expect(await verifyUser(signed.token)).toEqual(signed.claims);
  });

  it("leaves lim out entirely when no monthly limit is requested", async () => {
    const signed = await signUserSession(
      ring,
      cfg,
      { appId: APP, appUserId: "u", monthlyUsd: undefined },
      NOW,
    );
    expect("lim" in signed.claims).toBe(false);
    expect("lim" in (await verifyUser(signed.token))).toBe(false);
  });

  it("gives every token its own jti", async () => {
    const a = await signUserSession(ring, cfg, { appId: APP, appUserId: "u" }, NOW);
    const b = await signUserSession(ring, cfg, { appId: APP, appUserId: "u" }, NOW);
    expect(a.claims.jti).not.toBe(b.claims.jti);
  });

  it.each([
    ["an invalid app id", { appId: "BAD", appUserId: "u" }],
    ["an empty appUserId", { appId: APP, appUserId: "" }],
    ["an appUserId with a space", { appId: APP, appUserId: "a b" }],
    ["an appUserId over 256 chars", { appId: APP, appUserId: "u".repeat(257) }],
    ["a zero monthlyUsd", { appId: APP, appUserId: "u", monthlyUsd: 0 }],
    ["a NaN monthlyUsd", { appId: APP, appUserId: "u", monthlyUsd: Number.NaN }],
  ])("refuses to sign %s", async (_label, input) => {
    await expect(signUserSession(ring, cfg, input, NOW)).rejects.toThrow(TypeError);
  });

  it("refuses a fractional clock, which would mint a token with fractional iat", async () => {
    await expect(signUserSession(ring, cfg, { appId: APP, appUserId: "u" }, NOW + 0.5)).rejects.toThrow(
      TypeError,
    );
  });
});

describe("signGrantSession", () => {
  it("signs a typ grant session without sub that verifies only as a grant", async () => {
    const grant = { maxUsd: 5, maxUses: 10, expiresInSeconds: 3600 };
    const signed = await signGrantSession(ring, cfg, { appId: APP, grant }, NOW);
    expect(signed.claims).toMatchObject({ typ: "grant", app: APP, grant });
    expect("sub" in signed.claims).toBe(false);
    expect(await verifySession(ring, cfg, signed.token, "grant", NOW)).toEqual(signed.claims);
  });

  it("leaves optional grant terms out when not given", async () => {
    const signed = await signGrantSession(
      ring,
      cfg,
      { appId: APP, grant: { maxUsd: 1, maxUses: undefined, expiresInSeconds: undefined } },
      NOW,
    );
    expect(signed.claims.grant).toEqual({ maxUsd: 1 });
  });

  it.each([
    ["a zero maxUsd", { maxUsd: 0 }],
    ["a fractional maxUses", { maxUsd: 1, maxUses: 1.5 }],
    ["a negative expiresInSeconds", { maxUsd: 1, expiresInSeconds: -1 }],
  ])("refuses to sign %s", async (_label, grant) => {
    await expect(signGrantSession(ring, cfg, { appId: APP, grant }, NOW)).rejects.toThrow(TypeError);
  });
});

describe("verifySession: algorithms and keys", () => {
  it("refuses alg none, whatever its spelling", async () => {
    for (const alg of ["none", "None", "NONE"]) {
      const token = `${b64url({ alg, typ: "JWT", kid: ring.current.kid })}.${b64url(userClaims())}.`;
      expect(await rejectionOf(verifyUser(token))).toBe("malformed");
      const withSig = `${b64url({ alg, typ: "JWT", kid: ring.current.kid })}.${b64url(userClaims())}.AAAA`;
      expect(await rejectionOf(verifyUser(withSig))).toBe("algorithm");
    }
  });

  it.each(["HS384", "HS512"])("refuses %s even with the right key", async (alg) => {
    const longKey = new Uint8Array(
      Buffer.concat([Buffer.from(ring.current.jwt), Buffer.from(ring.current.jwt)]),
    );
    expect(await rejectionOf(verifyUser(await forge(userClaims(), { alg }, longKey)))).toBe("algorithm");
    expect(await rejectionOf(verifyUser(await forge(userClaims(), { alg })))).toBe("algorithm");
  });

  it("refuses RS256 tokens before choosing a key (no RS→HS confusion)", async () => {
    const { privateKey } = await generateKeyPair("RS256");
    const token = await new SignJWT(userClaims())
      .setProtectedHeader({ alg: "RS256", typ: "JWT", kid: ring.current.kid })
      .sign(privateKey);
    expect(await rejectionOf(verifyUser(token))).toBe("algorithm");
  });

  it("refuses a token signed with another secret under the current kid", async () => {
    const stranger = createKeyRing(STRANGER_SECRET);
    const token = await forge(userClaims(), {}, stranger.current.jwt);
    expect(await rejectionOf(verifyUser(token))).toBe("signature");
  });

  it("refuses a token whose kid is unknown", async () => {
    const stranger = createKeyRing(STRANGER_SECRET);
    const token = await forge(userClaims(), { kid: stranger.current.kid }, stranger.current.jwt);
    expect(await rejectionOf(verifyUser(token))).toBe("unknown_kid");
  });

  it("refuses a token without a kid", async () => {
    const token = await new SignJWT(userClaims())
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .sign(ring.current.jwt);
    expect(await rejectionOf(verifyUser(token))).toBe("unknown_kid");
  });

  it("refuses a header typ other than JWT", async () => {
    expect(await rejectionOf(verifyUser(await forge(userClaims(), { typ: "at+jwt" })))).toBe("claims");
  });

  it("refuses a tampered payload", async () => {
    const [header, , signature] = (await forge(userClaims())).split(".");
    const token = `${header}.${b64url(userClaims({ sub: "someone_else" }))}.${signature}`;
    expect(await rejectionOf(verifyUser(token))).toBe("signature");
  });

  it.each([
    ["an empty string", ""],
    ["one segment", "abc"],
    ["junk segments", "a.b.c"],
    ["four segments", "a.b.c.d"],
    ["a secret key instead of a token", `sk_live_${APP}_${"A".repeat(43)}`],
    ["an over-long token", `${"a".repeat(5000)}.b.c`],
  ])("refuses %s as malformed", async (_label, token) => {
    expect(await rejectionOf(verifyUser(token))).toBe("malformed");
  });
});

describe("verifySession: rotation", () => {
  const oldRing = createKeyRing(OLD_SECRET);
  const rotated = createKeyRing(SECRET, OLD_SECRET);

  it("accepts a token signed under the previous secret during rotation", async () => {
    const { token, claims } = await signUserSession(oldRing, cfg, { appId: APP, appUserId: "u" }, NOW);
    expect(await verifyUser(token, NOW, rotated)).toEqual(claims);
  });

  it("refuses it once the previous secret is gone", async () => {
    const { token } = await signUserSession(oldRing, cfg, { appId: APP, appUserId: "u" }, NOW);
    expect(await rejectionOf(verifyUser(token, NOW, ring))).toBe("unknown_kid");
  });

  it("signs new tokens with the current secret only", async () => {
    const { token } = await signUserSession(rotated, cfg, { appId: APP, appUserId: "u" }, NOW);
    expect(decodeProtectedHeader(token).kid).toBe(ring.current.kid);
  });
});

describe("verifySession: claims", () => {
  it("refuses a wrong issuer", async () => {
    expect(await rejectionOf(verifyUser(await forge(userClaims({ iss: "https://evil.test" }))))).toBe(
      "claims",
    );
  });

  it("refuses a wrong audience", async () => {
    expect(await rejectionOf(verifyUser(await forge(userClaims({ aud: "other" }))))).toBe("claims");
  });

  it("refuses an audience array even when it contains ours", async () => {
    const token = await forge(userClaims({ aud: [cfg.audience, "other"] }));
    expect(await rejectionOf(verifyUser(token))).toBe("claims");
  });

  it("refuses an unknown typ", async () => {
    expect(await rejectionOf(verifyUser(await forge(userClaims({ typ: "admin" }))))).toBe("claims");
  });

  it("refuses a user token where a grant session is expected", async () => {
    const { token } = await signUserSession(ring, cfg, { appId: APP, appUserId: "u" }, NOW);
    expect(await rejectionOf(verifySession(ring, cfg, token, "grant", NOW))).toBe("wrong_typ");
  });

  it("refuses a grant token where a user session is expected", async () => {
    const { token } = await signGrantSession(ring, cfg, { appId: APP, grant: { maxUsd: 5 } }, NOW);
    expect(await rejectionOf(verifyUser(token))).toBe("wrong_typ");
  });

  it.each(["iss", "aud", "typ", "sub", "app", "jti", "iat", "exp"])(
    "refuses a user token missing %s",
    async (claim) => {
      const { [claim]: _dropped, ...claims } = userClaims();
      expect(await rejectionOf(verifyUser(await forge(claims)))).toBe("claims");
    },
  );

  it.each(["app", "grant", "jti"])("refuses a grant token missing %s", async (claim) => {
    const { [claim]: _dropped, ...claims } = grantClaims();
    expect(await rejectionOf(verifySession(ring, cfg, await forge(claims), "grant", NOW))).toBe("claims");
  });

  it.each([
    ["an upper-case app id", { app: "K3J9X0Q2M4A7" }],
    ["a numeric sub", { sub: 123 }],
    ["a sub with a space", { sub: "a b" }],
    ["an empty sub", { sub: "" }],
    ["a short jti", { jti: "abc" }],
    ["a string iat", { iat: String(NOW) }],
    ["a fractional exp", { exp: NOW + 600.5 }],
    ["a negative lim", { lim: -1 }],
    ["a string lim", { lim: "20" }],
  ])("refuses a user token with %s", async (_label, overrides) => {
    expect(await rejectionOf(verifyUser(await forge(userClaims(overrides))))).toBe("claims");
  });

  it.each([
    ["a sub", { sub: "user_123" }],
    ["no maxUsd", { grant: { maxUses: 3 } }],
    ["a fractional maxUses", { grant: { maxUsd: 5, maxUses: 0.5 } }],
    ["a grant that is an array", { grant: [5] }],
  ])("refuses a grant token with %s", async (_label, overrides) => {
    const token = await forge(grantClaims(overrides));
    expect(await rejectionOf(verifySession(ring, cfg, token, "grant", NOW))).toBe("claims");
  });

  it("returns only known claims, dropping anything extra", async () => {
    const claims = await verifyUser(await forge(userClaims({ admin: true, nbf: NOW })));
    expect(Object.keys(claims).sort()).toEqual(["app", "aud", "exp", "iat", "iss", "jti", "sub", "typ"]);
  });
});

describe("verifySession: time, on the injected clock", () => {
  it("accepts a token one second before exp and refuses it at exactly exp", async () => {
    const token = await forge(userClaims());
    await expect(verifyUser(token, NOW + 599)).resolves.toMatchObject({ sub: "user_123" });
    expect(await rejectionOf(verifyUser(token, NOW + 600))).toBe("expired");
  });

  it("says 'expired' so the SDK knows to mint a new token, and says nothing else", async () => {
    const error = await verifyUser(await forge(userClaims()), NOW + 600).catch((e: unknown) => e);
    expect((error as ApiError).message).toBe("Session token expired; mint a new one.");
  });

  it("accepts an iat up to 5 s in the future and refuses 6 s", async () => {
    await expect(
      verifyUser(await forge(userClaims({ iat: NOW + 5, exp: NOW + 605 }))),
    ).resolves.toBeDefined();
    const early = await forge(userClaims({ iat: NOW + 6, exp: NOW + 606 }));
    expect(await rejectionOf(verifyUser(early))).toBe("not_yet_valid");
  });

  it("refuses a token claiming a longer life than ttlSeconds", async () => {
    expect(await rejectionOf(verifyUser(await forge(userClaims({ exp: NOW + 601 }))))).toBe("claims");
  });

  it("refuses exp not after iat", async () => {
    expect(await rejectionOf(verifyUser(await forge(userClaims({ iat: NOW, exp: NOW })), NOW - 1))).toBe(
      "claims",
    );
  });

  it("verifies tokens minted decades from the real clock, so no real time is used", async () => {
    for (const when of [1_000_000_000, 4_000_000_000]) {
      const { token } = await signUserSession(ring, cfg, { appId: APP, appUserId: "u" }, when);
      await expect(verifyUser(token, when + 1)).resolves.toMatchObject({ iat: when });
    }
  });
});

describe("issuedBeforeCompromise", () => {
  it.each([
    [NOW - 1, NOW, true],
    [NOW, NOW, true],
    [NOW + 1, NOW, false],
    [NOW, null, false],
  ])("iat %d with compromise at %s → %s", (iat, compromisedAt, expected) => {
    expect(issuedBeforeCompromise(iat, compromisedAt)).toBe(expected);
  });
});
