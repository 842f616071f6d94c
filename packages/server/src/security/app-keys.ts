import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { inspect } from "node:util";

/** An app id as stored and as embedded in secret keys (DESIGN.md "Identifiers and keys"). */
export const APP_ID_PATTERN = /^[a-z0-9]{8,32}$/;
export const SECRET_KEY_PREFIX = "sk_live_";
/** 43 base62 characters carry 43 · log2(62) ≈ 256.03 bits. */
export const SECRET_LENGTH = 43;

const APP_ID_LENGTH = 12;
const APP_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";
const BASE62_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
// The appId cannot contain "_", so "appId up to the next _" is the same as this anchored pattern.
const SECRET_KEY_PATTERN = /^sk_live_([a-z0-9]{8,32})_([0-9A-Za-z]{43})$/;
const MAX_SECRET_KEY_LENGTH = SECRET_KEY_PREFIX.length + 32 + 1 + SECRET_LENGTH;

/**
 * Uniform random string over `alphabet` from the CSPRNG. A byte is used only when it falls below the
 * largest multiple of the alphabet size (rejection sampling), so every character is equally likely —
 * `byte % 62` alone would make the first 8 characters ~25 % more frequent.
 */
function randomString(alphabet: string, length: number): string {
  const limit = 256 - (256 % alphabet.length);
  let out = "";
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte >= limit) continue;
      out += alphabet[byte % alphabet.length];
      if (out.length === length) break;
    }
  }
  return out;
}

/** A fresh app id: 12 characters of [a-z0-9] from the CSPRNG. */
export function generateAppId(): string {
  return randomString(APP_ID_ALPHABET, APP_ID_LENGTH);
}

/**
 * A fresh secret key `sk_live_{appId}_{secret}`; the secret is 43 uniform base62 characters (≥ 256 bits).
 * Shown once; only {@link hashSecretKey} of it is stored.
 *
 * @example
 * const key = generateSecretKey(app.id); // "sk_live_k3j9x0q2m4a7_…"
 */
export function generateSecretKey(appId: string): string {
  if (!APP_ID_PATTERN.test(appId)) throw new TypeError("appId must match [a-z0-9]{8,32}");
  return `${SECRET_KEY_PREFIX}${appId}_${randomString(BASE62_ALPHABET, SECRET_LENGTH)}`;
}

/** A parsed secret key. `secret` is non-enumerable, so logging or serializing the result shows only the app id. */
export interface ParsedSecretKey {
  readonly appId: string;
  readonly secret: string;
}

function redactedParsedKey(appId: string, secret: string): ParsedSecretKey {
  const parsed = { appId };
  Object.defineProperty(parsed, "secret", { value: secret, enumerable: false });
  const redacted = () => ({ appId, secret: "[redacted]" });
  Object.defineProperties(parsed, {
    toJSON: { value: redacted, enumerable: false },
    toString: { value: () => `ParsedSecretKey(appId=${appId})`, enumerable: false },
    [inspect.custom]: { value: redacted, enumerable: false },
  });
  return parsed as ParsedSecretKey;
}

/**
 * Splits `sk_live_{appId}_{secret}` so the caller can look the app up by id; null for anything else
 * (wrong prefix, bad app id, extra underscores, a secret that is not exactly 43 base62 characters).
 * Never throws, so no code path can put the input into an error.
 *
 * @example
 * const parsed = parseSecretKey(bearer);
 * if (parsed === null) throw new ApiError("auth");
 */
export function parseSecretKey(key: string): ParsedSecretKey | null {
  // The length guard keeps an attacker-sized header from reaching the regex engine at all.
  if (typeof key !== "string" || key.length > MAX_SECRET_KEY_LENGTH) return null;
  const match = SECRET_KEY_PATTERN.exec(key);
  if (match === null) return null;
  const [, appId, secret] = match;
  if (appId === undefined || secret === undefined) return null;
  return redactedParsedKey(appId, secret);
}

/** SHA-256 of the WHOLE key (prefix, app id and secret), the only form of a secret key that is stored. */
export function hashSecretKey(key: string): Buffer {
  return createHash("sha256").update(key, "utf8").digest();
}

/** Constant-time comparison of two hashes; false (not a throw) when their lengths differ. */
export function safeEqualHash(a: Buffer, b: Buffer): boolean {
  // Hash lengths are public (always 32 for SHA-256), so the early return leaks nothing.
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}

/** One-time grant tokens: `gt_` + 43 base62 chars (≥ 256 bits), stored only as SHA-256. */
export const GRANT_TOKEN_PATTERN = /^gt_[0-9A-Za-z]{43}$/;

export function generateGrantToken(): string {
  return `gt_${randomString(BASE62_ALPHABET, SECRET_LENGTH)}`;
}

/**
 * The appId of a well-formed secret key, or null — the hot-path twin of parseSecretKey() that allocates
 * nothing (no redacting wrapper object). Never include the input in errors.
 */
export function secretKeyAppId(key: string): string | null {
  if (key.length > MAX_SECRET_KEY_LENGTH) return null;
  return SECRET_KEY_PATTERN.exec(key)?.[1] ?? null;
}
