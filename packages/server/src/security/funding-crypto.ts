import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import type { KeyRing } from "./keyring.js";

const BLOB_VERSION = "v1";
const IV_BYTES = 12; // NIST SP 800-38D's recommended GCM nonce length; random per blob.
const TAG_BYTES = 16;
const KID_PATTERN = /^[0-9a-f]{16}$/;
const B64URL_PATTERN = /^[A-Za-z0-9_-]+$/;
/** How every OpenRouter API key begins (the simulator's too). */
export const OPENROUTER_KEY_PREFIX = "sk-or-v1-";
const FUNDING_KEY_PATTERN = /^[\x21-\x7e]{8,512}$/;

/**
 * Whether `key` can be a funding key at all: printable ASCII without spaces, 8–512 characters. OpenRouter
 * keys are `sk-or-v1-` + 64 hex, but the upstream decides (the payer's form asks `/key`); with
 * `requirePrefix`, also OpenRouter's prefix, for a caller that cannot ask (the CLI).
 */
export function isFundingKeyShaped(key: string, requirePrefix = false): boolean {
  if (!FUNDING_KEY_PATTERN.test(key)) return false;
  return (
    !requirePrefix || (key.startsWith(OPENROUTER_KEY_PREFIX) && key.length > OPENROUTER_KEY_PREFIX.length)
  );
}
// Below this many characters after the prefix, even 4 trailing characters reveal too much of the key.
const MIN_BODY_FOR_TAIL = 16;

/** Why a funding blob could not be opened; for logs and metrics, never shown to payers. */
export type FundingDecryptFailure = "malformed" | "unknown_kid" | "auth_failed";

/** A stored funding key could not be decrypted. Its message never contains the blob or the key. */
export class FundingDecryptError extends Error {
  readonly reason: FundingDecryptFailure;

  constructor(reason: FundingDecryptFailure) {
    super(`funding key could not be decrypted (${reason})`);
    this.name = "FundingDecryptError";
    this.reason = reason;
  }
}

interface ParsedBlob {
  kid: string;
  iv: Buffer;
  sealed: Buffer;
}

// Buffer.from(…, "base64url") silently skips junk; requiring the canonical encoding makes every blob
// have exactly one spelling, so a tampered-but-equivalent string is rejected as malformed up front.
function decodeCanonicalB64url(text: string): Buffer | undefined {
  if (!B64URL_PATTERN.test(text)) return undefined;
  const bytes = Buffer.from(text, "base64url");
  return bytes.toString("base64url") === text ? bytes : undefined;
}

function parseBlob(blob: string): ParsedBlob | undefined {
  if (typeof blob !== "string") return undefined;
  const parts = blob.split(".");
  if (parts.length !== 4) return undefined;
  const [version, kid, ivText, sealedText] = parts as [string, string, string, string];
  if (version !== BLOB_VERSION || !KID_PATTERN.test(kid)) return undefined;
  const iv = decodeCanonicalB64url(ivText);
  const sealed = decodeCanonicalB64url(sealedText);
  if (iv === undefined || iv.length !== IV_BYTES) return undefined;
  if (sealed === undefined || sealed.length < TAG_BYTES) return undefined;
  return { kid, iv, sealed };
}

function assertRowId(rowId: string): void {
  // An empty AAD would bind the ciphertext to nothing, letting rows swap blobs undetected.
  if (typeof rowId !== "string" || rowId.length === 0)
    throw new TypeError("rowId must be a non-empty string");
}

/**
 * Encrypts a payer's funding key with AES-256-GCM under the current subkey, binding it to its row.
 *
 * Returns the self-describing blob `v1.<kid>.<iv b64url>.<ciphertext+tag b64url>` with a random 12-byte
 * IV. The row id is the AAD, so a blob copied into another payer's row does not decrypt.
 *
 * @example
 * const blob = encryptFundingKey(ring, "sk-or-v1-…", funding.id);
 */
export function encryptFundingKey(ring: KeyRing, plaintext: string, rowId: string): string {
  if (typeof plaintext !== "string") throw new TypeError("plaintext must be a string");
  assertRowId(rowId);
  const { kid, funding } = ring.current;
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", funding, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(rowId, "utf8"));
  const sealed = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final(), cipher.getAuthTag()]);
  return [BLOB_VERSION, kid, iv.toString("base64url"), sealed.toString("base64url")].join(".");
}

/**
 * Decrypts a blob made by {@link encryptFundingKey} under the current or previous secret.
 *
 * Throws {@link FundingDecryptError} on a malformed blob, an unknown kid, tampering or a different row
 * id; the error carries only a reason code.
 *
 * @example
 * const key = decryptFundingKey(ring, row.encryptedKey, row.id);
 */
export function decryptFundingKey(ring: KeyRing, blob: string, rowId: string): string {
  assertRowId(rowId);
  const parsed = parseBlob(blob);
  if (parsed === undefined) throw new FundingDecryptError("malformed");
  const keys = ring.byKid(parsed.kid);
  if (keys === undefined) throw new FundingDecryptError("unknown_kid");
  const ciphertext = parsed.sealed.subarray(0, parsed.sealed.length - TAG_BYTES);
  const tag = parsed.sealed.subarray(parsed.sealed.length - TAG_BYTES);
  try {
    const decipher = createDecipheriv("aes-256-gcm", keys.funding, parsed.iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(rowId, "utf8"));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString("utf8");
  } catch {
    // Node's GCM failure carries no data, but it is dropped anyway so no cause chain can grow one.
    throw new FundingDecryptError("auth_failed");
  }
}

/**
 * True when a blob is not under the current kid (made before a rotation, or unreadable), so a
 * background job should decrypt and re-encrypt it before the previous secret is retired.
 */
export function needsReencryption(ring: KeyRing, blob: string): boolean {
  return parseBlob(blob)?.kid !== ring.current.kid;
}

/**
 * The only form of a funding key ever shown: the known prefix plus the last 4 characters.
 *
 * @example
 * fundingKeyFingerprint("sk-or-v1-0123…a1b2"); // "sk-or-v1-…a1b2"
 */
export function fundingKeyFingerprint(key: string): string {
  const prefix = key.startsWith(OPENROUTER_KEY_PREFIX) ? OPENROUTER_KEY_PREFIX : "";
  const body = key.slice(prefix.length);
  const tail = body.length >= MIN_BODY_FOR_TAIL ? body.slice(-4) : "";
  return `${prefix}…${tail}`;
}

/**
 * SHA-256 hex of the key, which OpenRouter uses to address a key's pages
 * (`https://openrouter.ai/keys/<hex>`, `https://openrouter.ai/logs?api_key_hash=<hex>`), so a payer can
 * delete the key there after disconnecting.
 */
export function openRouterKeyHash(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex");
}
