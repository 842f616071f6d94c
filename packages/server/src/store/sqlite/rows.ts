/**
 * Row decoding shared by SqliteStore and its query modules (payer-queries.ts, grant-queries.ts): the
 * number/text casts better-sqlite3's rows need, and the funding and grant row mappers.
 */
import type { FundingRecord, FundingState, GrantRecord } from "../port.js";

export type Row = Record<string, unknown>;

export const n = (v: unknown): number => Number(v as bigint);
export const nOrNull = (v: unknown): number | null =>
  v === null || v === undefined ? null : Number(v as bigint);
export const big = (v: unknown): bigint => v as bigint;
export const str = (v: unknown): string => v as string;

/** What a retired funding row's key blob becomes once nothing needs the key (not a valid blob). */
export const ERASED_KEY_BLOB = "erased";

export function toFunding(r: Row, prefix = ""): FundingRecord {
  const remaining = r[`${prefix}limit_remaining_nano`];
  return {
    id: str(r[`${prefix}id`]),
    payerId: str(r[`${prefix}payer_id`]),
    keyBlob: str(r[`${prefix}key_blob`]),
    fingerprint: str(r[`${prefix}fingerprint`]),
    source: str(r[`${prefix}source`]) as FundingRecord["source"],
    state: str(r[`${prefix}state`]) as FundingState,
    limitRemainingNano: remaining === null ? null : big(remaining),
    checkedAt: nOrNull(r[`${prefix}checked_at`]),
    createdAt: n(r[`${prefix}created_at`]),
  };
}

/**
 * A grant row. `knownUses` is the store's in-memory use count where it holds one (SqliteStore's
 * `grantUses`, the authority like the budget book); otherwise the row's.
 */
export function toGrant(
  r: Row,
  knownUses: (grantId: string) => number | undefined,
  prefix = "",
): GrantRecord {
  const id = str(r[`${prefix}id`]);
  return {
    id,
    appId: str(r[`${prefix}app_id`]),
    payerId: str(r[`${prefix}payer_id`]),
    maxNano: big(r[`${prefix}max_nano`]),
    maxUses: nOrNull(r[`${prefix}max_uses`]),
    uses: knownUses(id) ?? n(r[`${prefix}uses`]),
    expiresAt: n(r[`${prefix}expires_at`]),
    createdAt: n(r[`${prefix}created_at`]),
    revokedAt: nOrNull(r[`${prefix}revoked_at`]),
  };
}
