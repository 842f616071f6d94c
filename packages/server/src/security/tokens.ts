import { randomBytes } from "node:crypto";
import { type JWTPayload, errors as joseErrors, jwtVerify, SignJWT } from "jose";
import { ApiError } from "../errors.js";
import { APP_ID_PATTERN } from "./app-keys.js";
import type { KeyRing } from "./keyring.js";

export type SessionTyp = "user" | "grant";

export interface UserSessionClaims {
  typ: "user";
  /** The app's own user id (appUserId). */
  sub: string;
  /** The app id. */
  app: string;
  /** The monthly cap in USD the app requested (`requestLimit.monthlyUsd`), pre-filled in the popup. */
  lim?: number;
  jti: string;
  iat: number;
  exp: number;
  iss: string;
  aud: string;
}

export interface GrantTerms {
  maxUsd: number;
  maxUses?: number;
  expiresInSeconds?: number;
}

export interface GrantSessionClaims {
  typ: "grant";
  app: string;
  grant: GrantTerms;
  jti: string;
  iat: number;
  exp: number;
  iss: string;
  aud: string;
}

export type SessionClaims = UserSessionClaims | GrantSessionClaims;

export interface TokenConfig {
  /** Exact `iss` written and required; Wattfare's public URL. */
  issuer: string;
  /** Exact `aud` written and required. */
  audience: string;
  /** Session lifetime in seconds (600 by design); also the longest exp − iat a token may claim. */
  ttlSeconds: number;
}

export interface SignedSession<C extends SessionClaims> {
  token: string;
  /** Unix seconds; the `exp` claim. */
  expiresAt: number;
  claims: C;
}

/** Why a session token was refused; carried as the ApiError's cause for logs, never in the body. */
export type SessionRejection =
  | "malformed"
  | "algorithm"
  | "unknown_kid"
  | "signature"
  | "expired"
  | "not_yet_valid"
  | "claims"
  | "wrong_typ";

/** The internal cause of a refused session token: a reason code only, never token content. */
export class SessionTokenError extends Error {
  readonly reason: SessionRejection;

  constructor(reason: SessionRejection) {
    super(`session token rejected (${reason})`);
    this.name = "SessionTokenError";
    this.reason = reason;
  }
}

/** appUserId: 1–256 printable ASCII characters without spaces (DESIGN.md "Identifiers and keys"). */
export const APP_USER_ID_PATTERN = /^[\x21-\x7E]{1,256}$/;

const ALGORITHM = "HS256";
/** A browser clock may run ahead of ours; a token "issued" up to this far in the future is still taken. */
const MAX_IAT_SKEW_SECONDS = 5;
// Real tokens are ~400 bytes; the cap keeps hostile headers away from base64 and JSON parsing.
const MAX_TOKEN_LENGTH = 4096;
const COMPACT_JWS_PATTERN = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const JTI_PATTERN = /^[A-Za-z0-9_-]{16,128}$/;
const MESSAGE_INVALID = "Invalid session token.";
const MESSAGE_EXPIRED = "Session token expired; mint a new one.";

function newJti(): string {
  return randomBytes(16).toString("base64url");
}

function isPositiveFinite(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value) && value > 0;
}

function isPositiveInteger(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value > 0;
}

function isUnixSeconds(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function assertNow(nowSeconds: number): void {
  if (!isUnixSeconds(nowSeconds)) throw new TypeError("nowSeconds must be whole unix seconds");
}

function assertAppId(appId: string): void {
  if (!APP_ID_PATTERN.test(appId)) throw new TypeError("appId must match [a-z0-9]{8,32}");
}

function assertGrantTerms(grant: GrantTerms): void {
  if (!isPositiveFinite(grant.maxUsd)) throw new TypeError("grant.maxUsd must be a positive number");
  if (grant.maxUses !== undefined && !isPositiveInteger(grant.maxUses)) {
    throw new TypeError("grant.maxUses must be a positive integer");
  }
  if (grant.expiresInSeconds !== undefined && !isPositiveInteger(grant.expiresInSeconds)) {
    throw new TypeError("grant.expiresInSeconds must be a positive integer");
  }
}

async function sign<C extends SessionClaims>(ring: KeyRing, claims: C): Promise<SignedSession<C>> {
  const token = await new SignJWT({ ...claims })
    .setProtectedHeader({ alg: ALGORITHM, typ: "JWT", kid: ring.current.kid })
    .sign(ring.current.jwt);
  return { token, expiresAt: claims.exp, claims };
}

function timeClaims(cfg: TokenConfig, nowSeconds: number): { iat: number; exp: number } {
  assertNow(nowSeconds);
  if (!isPositiveInteger(cfg.ttlSeconds)) throw new TypeError("ttlSeconds must be a positive integer");
  return { iat: nowSeconds, exp: nowSeconds + cfg.ttlSeconds };
}

/**
 * Mints the 10-minute session JWT an app backend hands to its frontend (`POST /api/v1/sessions`).
 * Signed HS256 with the current JWT subkey; the header names its kid so rotation can find the key.
 *
 * @example
 * const { token, expiresAt } = await signUserSession(ring, cfg, { appId, appUserId, monthlyUsd: 20 }, now);
 */
export async function signUserSession(
  ring: KeyRing,
  cfg: TokenConfig,
  input: { appId: string; appUserId: string; monthlyUsd?: number | undefined },
  nowSeconds: number,
): Promise<SignedSession<UserSessionClaims>> {
  assertAppId(input.appId);
  if (!APP_USER_ID_PATTERN.test(input.appUserId)) {
    throw new TypeError("appUserId must be 1-256 printable ASCII characters");
  }
  if (input.monthlyUsd !== undefined && !isPositiveFinite(input.monthlyUsd)) {
    throw new TypeError("monthlyUsd must be a positive number");
  }
  const claims: UserSessionClaims = {
    typ: "user",
    sub: input.appUserId,
    app: input.appId,
    ...(input.monthlyUsd === undefined ? {} : { lim: input.monthlyUsd }),
    jti: newJti(),
    ...timeClaims(cfg, nowSeconds),
    iss: cfg.issuer,
    aud: cfg.audience,
  };
  return sign(ring, claims);
}

/**
 * Mints a grant session (`typ:"grant"`, no `sub`) for apps without user accounts; the popup turns it
 * into an opaque `gt_…` grant token once the payer approves these terms.
 *
 * @example
 * const { token } = await signGrantSession(ring, cfg, { appId, grant: { maxUsd: 5, maxUses: 10 } }, now);
 */
export async function signGrantSession(
  ring: KeyRing,
  cfg: TokenConfig,
  input: {
    appId: string;
    grant: { maxUsd: number; maxUses?: number | undefined; expiresInSeconds?: number | undefined };
  },
  nowSeconds: number,
): Promise<SignedSession<GrantSessionClaims>> {
  assertAppId(input.appId);
  const grant: GrantTerms = {
    maxUsd: input.grant.maxUsd,
    ...(input.grant.maxUses === undefined ? {} : { maxUses: input.grant.maxUses }),
    ...(input.grant.expiresInSeconds === undefined ? {} : { expiresInSeconds: input.grant.expiresInSeconds }),
  };
  assertGrantTerms(grant);
  const claims: GrantSessionClaims = {
    typ: "grant",
    app: input.appId,
    grant,
    jti: newJti(),
    ...timeClaims(cfg, nowSeconds),
    iss: cfg.issuer,
    aud: cfg.audience,
  };
  return sign(ring, claims);
}

function reject(reason: SessionRejection): never {
  const message = reason === "expired" ? MESSAGE_EXPIRED : MESSAGE_INVALID;
  throw new ApiError("auth", message, { cause: new SessionTokenError(reason) });
}

function rejectionOf(error: unknown): SessionRejection {
  if (error instanceof SessionTokenError) return error.reason;
  if (error instanceof joseErrors.JWTExpired) return "expired";
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return "algorithm";
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return "signature";
  if (error instanceof joseErrors.JWTClaimValidationFailed) return "claims";
  return "malformed";
}

function grantTermsOf(value: unknown): GrantTerms | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const { maxUsd, maxUses, expiresInSeconds } = value as Record<string, unknown>;
  if (!isPositiveFinite(maxUsd)) return undefined;
  if (maxUses !== undefined && !isPositiveInteger(maxUses)) return undefined;
  if (expiresInSeconds !== undefined && !isPositiveInteger(expiresInSeconds)) return undefined;
  return {
    maxUsd,
    ...(maxUses === undefined ? {} : { maxUses }),
    ...(expiresInSeconds === undefined ? {} : { expiresInSeconds }),
  };
}

/**
 * Re-checks every claim by hand (jose has already checked the signature, iss, aud and exp) and returns a
 * fresh object holding only the known claims, so nothing unexpected in a token reaches the caller.
 */
function claimsOf(
  payload: JWTPayload,
  cfg: TokenConfig,
  expectedTyp: SessionTyp,
  nowSeconds: number,
): SessionClaims {
  const { typ, iss, aud, jti, iat, exp, app } = payload;
  // jose accepts an aud array containing ours; Wattfare only ever issues the exact string.
  if (iss !== cfg.issuer || aud !== cfg.audience) reject("claims");
  if (typeof jti !== "string" || !JTI_PATTERN.test(jti)) reject("claims");
  if (!isUnixSeconds(iat) || !isUnixSeconds(exp)) reject("claims");
  if (exp <= nowSeconds) reject("expired");
  if (iat > nowSeconds + MAX_IAT_SKEW_SECONDS) reject("not_yet_valid");
  // Only our own key can produce a valid signature, so this bounds damage if a signer ever misbehaves.
  if (exp <= iat || exp - iat > cfg.ttlSeconds) reject("claims");
  if (typeof app !== "string" || !APP_ID_PATTERN.test(app)) reject("claims");
  if (typ !== "user" && typ !== "grant") reject("claims");
  // A user token on a grant route (or the reverse) would cross the two consent models, so typ is exact.
  if (typ !== expectedTyp) reject("wrong_typ");

  if (typ === "user") {
    const { sub, lim } = payload;
    if (typeof sub !== "string" || !APP_USER_ID_PATTERN.test(sub)) reject("claims");
    if (lim !== undefined && !isPositiveFinite(lim)) reject("claims");
    const claims: UserSessionClaims = { typ, sub, app, jti, iat, exp, iss, aud };
    if (lim !== undefined) claims.lim = lim;
    return claims;
  }
  // A grant session names no user; one that does was not minted by signGrantSession.
  if (payload.sub !== undefined) reject("claims");
  const grant = grantTermsOf(payload.grant);
  if (grant === undefined) reject("claims");
  return { typ, app, grant, jti, iat, exp, iss, aud };
}

/**
 * Verifies a session JWT strictly and returns its claims.
 *
 * Only HS256 is accepted (`alg:none`, HS384/512 and RS/ES/PS algorithms are refused before any key is
 * chosen, which closes the RS→HS confusion), the header kid must be the current or previous secret's,
 * and iss, aud and typ must match exactly. exp, iat and jti are required; exp has zero tolerance (a token
 * is dead at exactly `exp`), iat may be at most 5 s in the future. jose runs on the injected clock.
 *
 * Every failure is `ApiError("auth")` with a generic message; the reason code is in `cause`.
 * The caller still checks that the app exists and {@link issuedBeforeCompromise}.
 *
 * @example
 * const claims = await verifySession(ring, cfg, bearer, "user", now);
 */
export async function verifySession(
  ring: KeyRing,
  cfg: TokenConfig,
  token: string,
  expectedTyp: SessionTyp,
  nowSeconds: number,
): Promise<SessionClaims> {
  assertNow(nowSeconds);
  if (typeof token !== "string" || token.length > MAX_TOKEN_LENGTH || !COMPACT_JWS_PATTERN.test(token)) {
    reject("malformed");
  }
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(
      token,
      (header) => {
        const keys = typeof header.kid === "string" ? ring.byKid(header.kid) : undefined;
        if (keys === undefined) throw new SessionTokenError("unknown_kid");
        return keys.jwt;
      },
      {
        algorithms: [ALGORITHM],
        typ: "JWT",
        issuer: cfg.issuer,
        audience: cfg.audience,
        requiredClaims: ["iss", "aud", "typ", "app", "jti", "iat", "exp"],
        clockTolerance: 0,
        currentDate: new Date(nowSeconds * 1000),
      },
    ));
  } catch (error) {
    // jose's own errors may quote claim values; none of them goes further than this reason code.
    reject(rejectionOf(error));
  }
  return claimsOf(payload, cfg, expectedTyp, nowSeconds);
}

/**
 * True when a token issued at `iat` must be refused because the app's secret key was rotated as
 * compromised at `compromisedAt` (unix seconds). `<=` because iat has one-second resolution: a token
 * minted in the same second as the rotation may have been minted with the stolen key.
 */
export function issuedBeforeCompromise(iat: number, compromisedAt: number | null): boolean {
  return compromisedAt !== null && iat <= compromisedAt;
}
