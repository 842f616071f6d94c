import { createHmac, timingSafeEqual } from "node:crypto";
import type { KeyRing } from "./keyring.js";

const MAC_BYTES = 32;
// The kid prefix lets a token minted just before a secret rotation still verify under the previous key.
const TOKEN_PATTERN = /^([0-9a-f]{16})\.([A-Za-z0-9_-]{43})$/;

function mac(key: Buffer, sessionId: string): Buffer {
  return createHmac("sha256", key).update(sessionId, "utf8").digest();
}

/**
 * A CSRF token bound to one server-side session (payer or consent-popup session): `<kid>.<HMAC b64url>`.
 * Stateless — nothing to store; it changes when the session id does.
 *
 * @example
 * const csrf = createCsrfToken(ring, session.id); // rendered into the form as a hidden field
 */
export function createCsrfToken(ring: KeyRing, sessionId: string): string {
  // An empty id would make one token valid for every session without an id.
  if (typeof sessionId !== "string" || sessionId.length === 0) {
    throw new TypeError("sessionId must be a non-empty string");
  }
  const { kid, csrf } = ring.current;
  return `${kid}.${mac(csrf, sessionId).toString("base64url")}`;
}

/**
 * True when `token` has the form {@link createCsrfToken} gives and names a key of this server (the current
 * or previous secret), whatever session it was made for: garbage, or a token from before the last two
 * rotations, is false.
 */
export function csrfTokenOfThisServer(ring: KeyRing, token: string): boolean {
  const kid = TOKEN_PATTERN.exec(token)?.[1];
  return kid !== undefined && ring.byKid(kid) !== undefined;
}

/**
 * True when `token` was made by {@link createCsrfToken} for this session under the current or previous
 * secret. The MAC comparison is constant-time; malformed input is simply false.
 *
 * @example
 * if (!verifyCsrfToken(ring, session.id, body.csrf)) throw new ApiError("forbidden");
 */
export function verifyCsrfToken(ring: KeyRing, sessionId: string, token: string): boolean {
  if (typeof sessionId !== "string" || sessionId.length === 0 || typeof token !== "string") return false;
  const match = TOKEN_PATTERN.exec(token);
  if (match === null) return false;
  const [, kid, macText] = match;
  if (kid === undefined || macText === undefined) return false;
  const keys = ring.byKid(kid);
  if (keys === undefined) return false;
  const given = Buffer.from(macText, "base64url");
  // 43 base64url chars carry 258 bits, so two spellings could decode to the same 32 bytes; requiring the
  // canonical one keeps exactly one valid token per session.
  if (given.length !== MAC_BYTES || given.toString("base64url") !== macText) return false;
  return timingSafeEqual(given, mac(keys.csrf, sessionId));
}
