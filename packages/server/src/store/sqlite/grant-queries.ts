/**
 * The SQLite side of one-time grants' admin paths: creating one, the payer's list, revoking, and the
 * popup's one-time handoff of a new grant's token to its app. SqliteStore delegates these Store methods
 * here; the chat path's lookup (grantByTokenHash, a prepared statement) and use counting stay in
 * SqliteStore. The only store state read here is the in-memory use count, through `knownUses`.
 */
import type BetterSqlite3 from "better-sqlite3";
import type { GrantRecord, NewGrant } from "../port.js";
import { writeTransaction } from "./database.js";
import { type Row, str, toGrant } from "./rows.js";

export class SqliteGrantQueries {
  /**
   * The database is opened by SqliteStore's constructor, after this object exists. `knownUses` is the
   * store's in-memory use count of a grant, where it holds one (see toGrant).
   */
  constructor(
    private readonly database: () => BetterSqlite3.Database,
    private readonly knownUses: (grantId: string) => number | undefined,
  ) {}

  private get db(): BetterSqlite3.Database {
    return this.database();
  }

  async createGrant(grant: NewGrant): Promise<void> {
    this.db
      .prepare(
        `INSERT INTO grants (id, app_id, token_hash, payer_id, max_nano, max_uses, uses, expires_at, created_at)
         VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)`,
      )
      .run(
        grant.id,
        grant.appId,
        grant.tokenHash,
        grant.payerId,
        grant.maxNano,
        grant.maxUses,
        grant.expiresAt,
        grant.createdAt,
      );
  }

  async grantsOfPayer(payerId: string): Promise<GrantRecord[]> {
    const rows = this.db
      .prepare("SELECT * FROM grants WHERE payer_id = ? ORDER BY created_at DESC")
      .all(payerId) as Row[];
    return rows.map((r) => toGrant(r, this.knownUses));
  }

  async revokeGrant(grantId: string, payerId: string, now: number): Promise<boolean> {
    const info = this.db
      .prepare("UPDATE grants SET revoked_at = ? WHERE id = ? AND payer_id = ? AND revoked_at IS NULL")
      .run(now, grantId, payerId);
    return info.changes > 0;
  }

  async putGrantHandoff(
    sessionJti: string,
    appId: string,
    tokenBlob: string,
    expiresAt: number,
  ): Promise<void> {
    this.db
      .prepare(
        "INSERT INTO grant_handoffs (session_jti, app_id, token_blob, expires_at) VALUES (?, ?, ?, ?) ON CONFLICT (session_jti) DO NOTHING",
      )
      .run(sessionJti, appId, tokenBlob, expiresAt);
  }

  async takeGrantHandoff(sessionJti: string, appId: string, now: number): Promise<string | undefined> {
    return writeTransaction(this.db, () => {
      const row = this.db
        .prepare(
          "SELECT token_blob FROM grant_handoffs WHERE session_jti = ? AND app_id = ? AND taken_at IS NULL AND expires_at > ?",
        )
        .get(sessionJti, appId, now) as Row | undefined;
      if (!row) return undefined;
      this.db.prepare("UPDATE grant_handoffs SET taken_at = ? WHERE session_jti = ?").run(now, sessionJti);
      return str(row.token_blob);
    })();
  }
}
