import { createHash, hkdfSync } from "node:crypto";
import { inspect } from "node:util";

/** The shortest server secret accepted; config validates it too, this is the last line of defence. */
export const MIN_SERVER_SECRET_BYTES = 32;

const SUBKEY_BYTES = 32;
// Empty salt on purpose (RFC 5869 §3.1: the secret is already uniformly random). Changing the salt or
// any info string re-keys every stored blob and token, so these are part of the storage format.
const HKDF_SALT = Buffer.alloc(0);
const INFO_JWT = "wattfare jwt v1";
const INFO_FUNDING = "wattfare funding v1";
const INFO_CSRF = "wattfare csrf v1";
const KID_PREFIX = "wattfare-kid";

/** The subkeys derived from one server secret, tagged with that secret's key id. */
export interface SubkeySet {
  readonly kid: string;
  /** HS256 key for session JWTs (jose takes a Uint8Array). */
  readonly jwt: Uint8Array;
  /** AES-256-GCM key for funding keys at rest. */
  readonly funding: Buffer;
  /** HMAC-SHA256 key for CSRF tokens. */
  readonly csrf: Buffer;
}

/** The current subkeys plus, during a rotation, the previous ones (verify/decrypt only). */
export interface KeyRing {
  readonly current: SubkeySet;
  readonly previous: SubkeySet | undefined;
  /** The subkeys whose kid matches (current first), or undefined for an unknown kid. */
  byKid(kid: string): SubkeySet | undefined;
}

// Key material lives in #private fields behind getters: spreading, Object.keys, JSON.stringify,
// util.inspect and String() then see only the kid, so a stray `log.info({ ring })` cannot leak a key.
class DerivedSubkeys implements SubkeySet {
  readonly kid: string;
  readonly #jwt: Uint8Array;
  readonly #funding: Buffer;
  readonly #csrf: Buffer;

  constructor(kid: string, jwt: Uint8Array, funding: Buffer, csrf: Buffer) {
    this.kid = kid;
    this.#jwt = jwt;
    this.#funding = funding;
    this.#csrf = csrf;
  }

  get jwt(): Uint8Array {
    return this.#jwt;
  }

  get funding(): Buffer {
    return this.#funding;
  }

  get csrf(): Buffer {
    return this.#csrf;
  }

  toJSON(): { kid: string } {
    return { kid: this.kid };
  }

  toString(): string {
    return `SubkeySet(kid=${this.kid})`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

class RotatingKeyRing implements KeyRing {
  readonly current: SubkeySet;
  readonly previous: SubkeySet | undefined;

  constructor(current: SubkeySet, previous: SubkeySet | undefined) {
    this.current = current;
    this.previous = previous;
  }

  byKid(kid: string): SubkeySet | undefined {
    if (kid === this.current.kid) return this.current;
    if (this.previous !== undefined && kid === this.previous.kid) return this.previous;
    return undefined;
  }

  toJSON(): { current: string; previous: string | null } {
    return { current: this.current.kid, previous: this.previous?.kid ?? null };
  }

  toString(): string {
    return `KeyRing(current=${this.current.kid}, previous=${this.previous?.kid ?? "none"})`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

/** The public key id of a secret: 16 hex chars, safe to store beside data and to put in JWT headers. */
export function keyIdOf(secret: Buffer): string {
  return createHash("sha256").update(KID_PREFIX).update(secret).digest("hex").slice(0, 16);
}

function hkdf(secret: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync("sha256", secret, HKDF_SALT, info, SUBKEY_BYTES));
}

/**
 * Derives the JWT, funding and CSRF subkeys from one server secret.
 *
 * The kid is the first 16 hex chars of SHA-256("wattfare-kid" || secret), so a key "version" comes from
 * the secret itself and rotation needs no counter. Each subkey is HKDF-SHA256 with its own info string,
 * 32 bytes, so a leak of one purpose's key reveals nothing about the others.
 *
 * @example
 * const keys = deriveSubkeys(Buffer.from(config.serverSecret, "utf8"));
 */
export function deriveSubkeys(secret: Buffer): SubkeySet {
  if (!Buffer.isBuffer(secret) || secret.length < MIN_SERVER_SECRET_BYTES) {
    // Only the length requirement is reported; the value never enters a message.
    throw new RangeError(`server secret must be at least ${MIN_SERVER_SECRET_BYTES} bytes`);
  }
  return new DerivedSubkeys(
    keyIdOf(secret),
    new Uint8Array(hkdf(secret, INFO_JWT)),
    hkdf(secret, INFO_FUNDING),
    hkdf(secret, INFO_CSRF),
  );
}

/**
 * Builds the key ring: `current` signs and encrypts; `previous` (WATTFARE_SERVER_SECRET_PREVIOUS) is
 * only looked up by kid to verify and decrypt what was made before a rotation.
 *
 * @example
 * const ring = createKeyRing(config.serverSecret, config.serverSecretPrevious);
 */
export function createKeyRing(current: Buffer, previous?: Buffer): KeyRing {
  const currentKeys = deriveSubkeys(current);
  const previousKeys = previous === undefined ? undefined : deriveSubkeys(previous);
  // The same secret configured twice is harmless; dropping the duplicate keeps `previous` meaningful.
  const distinctPrevious = previousKeys?.kid === currentKeys.kid ? undefined : previousKeys;
  return new RotatingKeyRing(currentKeys, distinctPrevious);
}
