/**
 * Secrets never leak: not through error messages, not through String(), JSON.stringify or util.inspect
 * of anything these modules return or throw. Each case collects every rendering a logger or error
 * handler might produce and checks that no form of the secret appears in any of them.
 */
import { inspect } from "node:util";
import { SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { ApiError, errorBody } from "../errors.js";
import { generateSecretKey, parseSecretKey } from "./app-keys.js";
import { createCsrfToken } from "./csrf.js";
import {
  decryptFundingKey,
  encryptFundingKey,
  FundingDecryptError,
  fundingKeyFingerprint,
} from "./funding-crypto.js";
import { createKeyRing, deriveSubkeys, type KeyRing } from "./keyring.js";
import { type TokenConfig, verifySession } from "./tokens.js";

const SERVER_SECRET = Buffer.from("this-is-the-server-secret-0123456789-abcdef");
const PREVIOUS_SECRET = Buffer.from("this-is-the-previous-secret-0123456789-xyz");
const FUNDING_KEY = `sk-or-v1-${"9f8e7d6c5b4a".repeat(5)}beef`;
const cfg: TokenConfig = { issuer: "https://wattfare.test", audience: "wattfare-session", ttlSeconds: 600 };
const NOW = 1_700_000_000;

/** Every way a value tends to get printed: String(), JSON, util.inspect (deep), and an Error's stack. */
function renderings(value: unknown): string[] {
  const out = [inspect(value, { depth: 10, showHidden: false }), JSON.stringify(value) ?? ""];
  if (value instanceof Error) {
    out.push(String(value), value.message, value.stack ?? "", inspect(value.cause, { depth: 10 }));
  } else if (value !== null && typeof value === "object") {
    out.push(String(value));
  }
  return out;
}

/**
 * The forms a secret takes on its way to a log line. Byte forms use an 8-byte prefix so that a
 * rendering which truncates long buffers (util.inspect does) is still caught.
 */
function forms(secret: Uint8Array | string): string[] {
  if (typeof secret === "string") return [secret];
  const bytes = Buffer.from(secret);
  const head = [...bytes.subarray(0, 8)];
  return [
    bytes.toString("hex"),
    bytes.toString("base64"),
    bytes.toString("base64url"),
    bytes.toString("latin1"),
    head.map((b) => b.toString(16).padStart(2, "0")).join(" "), // <Buffer 25 9a …>
    head.join(","), // Buffer#toJSON's "data" array
    head.join(", "), // Uint8Array(32) [ 37, 154, … ]
    head.map((b, i) => `"${i}":${b}`).join(","), // JSON of a bare Uint8Array
  ];
}

function expectNoLeak(value: unknown, secrets: Array<Uint8Array | string>): void {
  const texts = renderings(value);
  for (const secret of secrets) {
    for (const form of forms(secret)) {
      for (const text of texts) expect(text).not.toContain(form);
    }
  }
}

function subkeyMaterial(ring: KeyRing): Uint8Array[] {
  const sets = [ring.current, ...(ring.previous === undefined ? [] : [ring.previous])];
  return sets.flatMap((keys) => [keys.jwt, keys.funding, keys.csrf]);
}

const ring = createKeyRing(SERVER_SECRET, PREVIOUS_SECRET);
const allKeyMaterial = [SERVER_SECRET, PREVIOUS_SECRET, ...subkeyMaterial(ring)];

async function caught(run: () => unknown): Promise<unknown> {
  try {
    await run();
  } catch (error) {
    return error;
  }
  throw new Error("expected a throw");
}

describe("key material never leaks", () => {
  it("a key ring prints and serializes as kids only", () => {
    expectNoLeak(ring, allKeyMaterial);
    expect(JSON.parse(JSON.stringify(ring))).toEqual({
      current: ring.current.kid,
      previous: ring.previous?.kid,
    });
  });

  it("a subkey set prints and serializes as its kid only, even when spread", () => {
    for (const keys of [ring.current, deriveSubkeys(SERVER_SECRET)]) {
      expectNoLeak(keys, allKeyMaterial);
      expectNoLeak({ ...keys }, allKeyMaterial);
      expectNoLeak(Object.entries(keys), allKeyMaterial);
      expect(JSON.parse(JSON.stringify(keys))).toEqual({ kid: keys.kid });
    }
  });

  it("a short server secret is reported by length, never by value", async () => {
    const short = Buffer.from("short-secret-value");
    expectNoLeak(await caught(() => deriveSubkeys(short)), [short]);
  });

  it("CSRF tokens carry no subkey", () => {
    expectNoLeak(createCsrfToken(ring, "session-1"), allKeyMaterial);
  });
});

describe("secret keys never leak", () => {
  const key = generateSecretKey("k3j9x0q2m4a7");
  const secret = key.slice(-43);

  it("a parsed key prints and serializes with its secret redacted", () => {
    const parsed = parseSecretKey(key);
    expect(parsed).not.toBeNull();
    expectNoLeak(parsed, [secret]);
    expectNoLeak({ ...parsed }, [secret]);
    expect(JSON.parse(JSON.stringify(parsed))).toEqual({ appId: "k3j9x0q2m4a7", secret: "[redacted]" });
    expect(parsed?.secret).toBe(secret); // still there for the code that needs it
  });

  it("a malformed key is refused with null, so there is no error to carry it", () => {
    expect(parseSecretKey(`${key}x`)).toBeNull();
  });
});

describe("funding keys never leak", () => {
  it("decryption errors name a reason only", async () => {
    const blob = encryptFundingKey(ring, FUNDING_KEY, "row-1");
    const tampered = `${blob.slice(0, -2)}AA`;
    const stranger = createKeyRing(Buffer.alloc(32, 99));
    const attempts: Array<() => unknown> = [
      () => decryptFundingKey(ring, blob, "row-2"),
      () => decryptFundingKey(ring, tampered, "row-1"),
      () => decryptFundingKey(stranger, blob, "row-1"),
      () => decryptFundingKey(ring, "v1.garbage", "row-1"),
    ];
    for (const attempt of attempts) {
      const error = await caught(attempt);
      expect(error).toBeInstanceOf(FundingDecryptError);
      expectNoLeak(error, [FUNDING_KEY, FUNDING_KEY.slice(9), blob, ...allKeyMaterial]);
      expect((error as Error).cause).toBeUndefined();
    }
  });

  it("an invalid row id is reported without the plaintext", async () => {
    expectNoLeak(await caught(() => encryptFundingKey(ring, FUNDING_KEY, "")), [FUNDING_KEY]);
  });

  it("the blob does not contain the key in any encoding", () => {
    const blob = encryptFundingKey(ring, FUNDING_KEY, "row-1");
    for (const form of forms(Buffer.from(FUNDING_KEY))) expect(blob).not.toContain(form);
  });

  it("the fingerprint shows no more than the last 4 characters", () => {
    const fingerprint = fundingKeyFingerprint(FUNDING_KEY);
    expect(fingerprint).toBe("sk-or-v1-…beef");
    expect(fingerprint).not.toContain(FUNDING_KEY.slice(9, -4));
  });
});

describe("session tokens are never echoed", () => {
  async function rejectionFor(token: string): Promise<ApiError> {
    const error = await caught(() => verifySession(ring, cfg, token, "user", NOW));
    expect(error).toBeInstanceOf(ApiError);
    return error as ApiError;
  }

  it("refusing a token leaks none of its parts or claims into the error, its body or its cause", async () => {
    const stranger = createKeyRing(Buffer.alloc(32, 77));
    const appUserId = "victim-user-7f3a";
    const claims = {
      typ: "user",
      sub: appUserId,
      app: "k3j9x0q2m4a7",
      jti: "J".repeat(22),
      iat: NOW,
      exp: NOW + 600,
    };
    const tokens = [
      await new SignJWT({ ...claims, iss: cfg.issuer, aud: cfg.audience })
        .setProtectedHeader({ alg: "HS256", typ: "JWT", kid: ring.current.kid })
        .sign(stranger.current.jwt), // bad signature
      await new SignJWT({ ...claims, iss: "https://evil.test", aud: cfg.audience })
        .setProtectedHeader({ alg: "HS256", typ: "JWT", kid: ring.current.kid })
        .sign(ring.current.jwt), // bad issuer: jose's own error would quote the claims
      await new SignJWT({ ...claims, exp: NOW, iss: cfg.issuer, aud: cfg.audience })
        .setProtectedHeader({ alg: "HS256", typ: "JWT", kid: ring.current.kid })
        .sign(ring.current.jwt), // expired
      "not-a-jwt-but-a-secret-looking-string",
    ];
    for (const token of tokens) {
      const error = await rejectionFor(token);
      const segments = token.split(".").filter((part) => part.length > 8);
      expectNoLeak(error, [token, ...segments, appUserId, "evil.test", ...allKeyMaterial]);
      expectNoLeak(errorBody(error), [token, ...segments, appUserId]);
    }
  });
});
