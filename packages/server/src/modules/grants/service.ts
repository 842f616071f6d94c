/**
 * One-time grants (DESIGN.md "Core flows" 5): for apps with no user accounts, a payer approves a grant —
 * a dollar cap, an optional number of uses, an expiry — and the app's backend spends it with
 * `x-wattfare-grant`. The token (`gt_…`) is shown once and stored only as its SHA-256; a grant is bound
 * to its app. Its cap is for its lifetime (budget period "-").
 */
import { createHash, randomBytes } from "node:crypto";
import type { AppDeps } from "../../deps.js";
import { ApiError } from "../../errors.js";
import { nanoToUsd, usdToNano } from "../../money.js";
import {
  decryptFundingKey,
  encryptFundingKey,
  GRANT_TOKEN_PATTERN,
  type GrantTerms,
  generateGrantToken,
} from "../../security/index.js";
import type { AccountRef, GrantAccount, GrantRecord } from "../../store/port.js";

export const DEFAULT_GRANT_EXPIRY_SECONDS = 24 * 3600;
export const MAX_GRANT_EXPIRY_SECONDS = 30 * 24 * 3600;
/** A grant's budget account: lifetime, not monthly. */
export const GRANT_PERIOD = "-";

export const grantAccountRef = (grantId: string): AccountRef => ({
  account: `g:${grantId}`,
  period: GRANT_PERIOD,
});

export function hashGrantToken(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

export const grantInvalid = (message: string) => new ApiError("grant_invalid", message);

/** Resolves `x-wattfare-grant` for an app; every failure says which, without revealing other apps' grants. */
export async function resolveGrant(
  deps: Pick<AppDeps, "store">,
  appId: string,
  token: string,
  now: number,
): Promise<GrantAccount> {
  return checkGrantUsable(await findGrant(deps, appId, token), now);
}

/** The app's grant for `x-wattfare-grant`, whatever its state; an unknown or another app's → 402. */
export async function findGrant(
  deps: Pick<AppDeps, "store">,
  appId: string,
  token: string,
): Promise<GrantAccount> {
  const account = GRANT_TOKEN_PATTERN.test(token)
    ? await deps.store.grantByTokenHash(hashGrantToken(token))
    : undefined;
  if (!account || account.grant.appId !== appId) throw grantInvalid("Unknown grant token.");
  return account;
}

/** Throws 402 `grant_invalid` saying why when the grant cannot be spent now (revoked, expired, used up). */
export function checkGrantUsable(account: GrantAccount, now: number): GrantAccount {
  const { grant } = account;
  if (grant.revokedAt !== null) throw grantInvalid("This grant was revoked by the payer.");
  if (now >= grant.expiresAt) throw grantInvalid("This grant has expired.");
  if (grant.maxUses !== null && grant.uses >= grant.maxUses)
    throw grantInvalid("This grant has no uses left.");
  return account;
}

export interface GrantStatus {
  status: "active" | "exhausted" | "expired" | "revoked";
  remainingUsd: number;
  /** null when the grant has no use limit. */
  usesLeft: number | null;
  /** Unix seconds. */
  expiresAt: number;
}

export async function grantStatus(deps: AppDeps, grant: GrantRecord, now: number): Promise<GrantStatus> {
  const budget = await deps.store.budget(grantAccountRef(grant.id), grant.maxNano);
  const left = grant.maxNano - budget.settledNano - budget.reservedNano;
  const remaining = left > 0n ? left : 0n;
  const usesLeft = grant.maxUses === null ? null : Math.max(0, grant.maxUses - grant.uses);
  const status: GrantStatus["status"] =
    grant.revokedAt !== null
      ? "revoked"
      : now >= grant.expiresAt
        ? "expired"
        : usesLeft === 0 || remaining === 0n
          ? "exhausted"
          : "active";
  return {
    status,
    remainingUsd: nanoToUsd(remaining, "down"),
    usesLeft,
    expiresAt: Math.floor(grant.expiresAt / 1000),
  };
}

export interface ApprovedGrant {
  grantId: string;
  /** Shown once: to the opener that asked, and via the one-time handoff. */
  grantToken: string;
  grant: GrantRecord;
}

/**
 * The payer approved a grant session's terms in the popup. Stores the grant (hashed token) and keeps the
 * token, encrypted, for one `GET /grants/pending` by the same session (an opener that lost its popup).
 */
export async function approveGrant(
  deps: AppDeps,
  input: { appId: string; payerId: string; terms: GrantTerms; sessionJti: string; sessionExpiresAt: number },
  now: number,
): Promise<ApprovedGrant> {
  const { terms } = input;
  const grantId = `gr_${randomBytes(12).toString("hex")}`;
  const grantToken = generateGrantToken();
  const expiresInSeconds = Math.min(
    terms.expiresInSeconds ?? DEFAULT_GRANT_EXPIRY_SECONDS,
    MAX_GRANT_EXPIRY_SECONDS,
  );
  const grant = {
    id: grantId,
    appId: input.appId,
    payerId: input.payerId,
    maxNano: usdToNano(Math.min(terms.maxUsd, deps.config.limits.maxMonthlyUsd), "down"),
    maxUses: terms.maxUses ?? null,
    expiresAt: now + expiresInSeconds * 1000,
    createdAt: now,
  };
  await deps.store.createGrant({ ...grant, tokenHash: hashGrantToken(grantToken) });
  await deps.store.putGrantHandoff(
    input.sessionJti,
    input.appId,
    encryptFundingKey(deps.keyRing, grantToken, `handoff:${input.sessionJti}`),
    Math.max(input.sessionExpiresAt * 1000, now + 10 * 60_000),
  );
  return { grantId, grantToken, grant: { ...grant, uses: 0, revokedAt: null } };
}

/** The approved token for this grant session, once. */
export async function takePendingGrantToken(deps: AppDeps, appId: string, sessionJti: string, now: number) {
  const blob = await deps.store.takeGrantHandoff(sessionJti, appId, now);
  return blob === undefined ? undefined : decryptFundingKey(deps.keyRing, blob, `handoff:${sessionJti}`);
}
