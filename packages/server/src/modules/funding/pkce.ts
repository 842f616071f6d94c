/** OAuth PKCE (RFC 7636) pieces for OpenRouter's `/auth` flow (openrouter-api.md §1). */
import { createHash, randomBytes } from "node:crypto";

/** 32 random bytes → 43 base64url characters: the shortest verifier RFC 7636 §4.1 allows, 256 bits. */
export function createCodeVerifier(): string {
  return randomBytes(32).toString("base64url");
}

/** `S256`: base64url(SHA-256(verifier)) without padding. */
export function s256Challenge(verifier: string): string {
  return createHash("sha256").update(verifier, "ascii").digest("base64url");
}

/** The opaque `state` round-tripped through OpenRouter; only its hash is stored. */
export function createOAuthState(): string {
  return randomBytes(32).toString("base64url");
}

export const hashState = (state: string): Buffer => createHash("sha256").update(state, "utf8").digest();
