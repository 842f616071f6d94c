/**
 * The SQLite side of the consent popup and the payer dashboard (issue 6): popup consent sessions,
 * approvals, dashboard reads and the payer's own cap / revoke / pause writes. SqliteStore delegates its
 * issue-6 Store methods here. These are admin paths, off the chat hot path; every write that must be
 * atomic runs in one synchronous transaction.
 */
import type BetterSqlite3 from "better-sqlite3";
import type { Period } from "../../period.js";
import type {
  ApproveConnectionInput,
  ApproveConnectionResult,
  ConnectionRecord,
  ConsentOutcome,
  ConsentSessionRecord,
  MonthlySpend,
  PayerConnection,
  PayerRequest,
} from "../port.js";
import { writeTransaction } from "./database.js";

type Row = Record<string, unknown>;

const num = (v: unknown): number => Number(v as bigint);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : num(v));
const text = (v: unknown): string => v as string;

function toConnection(r: Row): ConnectionRecord {
  return {
    id: text(r.id),
    appId: text(r.app_id),
    appUserId: text(r.app_user_id),
    payerId: text(r.payer_id),
    capNano: r.cap_nano as bigint,
    createdAt: num(r.created_at),
    revokedAt: numOrNull(r.revoked_at),
  };
}

function toConsentSession(r: Row): ConsentSessionRecord {
  const terms = r.grant_terms as string | null;
  return {
    idHash: r.id_hash as Buffer,
    appId: text(r.app_id),
    intent: text(r.intent) as ConsentSessionRecord["intent"],
    appUserId: (r.app_user_id as string | null) ?? null,
    grantTerms: terms === null ? null : (JSON.parse(terms) as ConsentSessionRecord["grantTerms"]),
    origin: text(r.origin),
    requestedCapNano: (r.requested_cap_nano as bigint | null) ?? null,
    sessionJti: text(r.session_jti),
    sessionExpiresAt: num(r.session_expires_at),
    createdAt: num(r.created_at),
    expiresAt: num(r.expires_at),
    answeredAt: numOrNull(r.answered_at),
    outcome: (r.outcome as ConsentOutcome | null) ?? null,
  };
}

/** Every budget account of a payer: their connections (`c:`) and grants (`g:`), revoked ones included. */
const PAYER_ACCOUNTS = `WITH accounts(account) AS (
  SELECT 'c:' || id FROM connections WHERE payer_id = @payerId
  UNION ALL SELECT 'g:' || id FROM grants WHERE payer_id = @payerId)`;

export class SqliteConsentQueries {
  /** The database is opened by SqliteStore's constructor, after this object exists. */
  constructor(private readonly database: () => BetterSqlite3.Database) {}

  private get db(): BetterSqlite3.Database {
    return this.database();
  }

  async createConsentSession(s: ConsentSessionRecord): Promise<void> {
    writeTransaction(this.db, () => {
      // Expired sessions go on the way; an unanswered one from the same token is superseded (a reopened popup).
      this.db.prepare("DELETE FROM consent_sessions WHERE expires_at <= ?").run(s.createdAt);
      this.db
        .prepare("DELETE FROM consent_sessions WHERE session_jti = ? AND answered_at IS NULL")
        .run(s.sessionJti);
      this.db
        .prepare(`
          INSERT INTO consent_sessions (id_hash, app_id, intent, app_user_id, grant_terms, origin,
            requested_cap_nano, session_jti, session_expires_at, created_at, expires_at)
          VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
        .run(
          s.idHash,
          s.appId,
          s.intent,
          s.appUserId,
          s.grantTerms === null ? null : JSON.stringify(s.grantTerms),
          s.origin,
          s.requestedCapNano,
          s.sessionJti,
          s.sessionExpiresAt,
          s.createdAt,
          s.expiresAt,
        );
    })();
  }

  async consentSession(idHash: Buffer): Promise<ConsentSessionRecord | undefined> {
    const r = this.db.prepare("SELECT * FROM consent_sessions WHERE id_hash = ?").get(idHash) as
      | Row
      | undefined;
    return r ? toConsentSession(r) : undefined;
  }

  async consentAnswered(sessionJti: string): Promise<boolean> {
    return (
      this.db
        .prepare("SELECT 1 FROM consent_sessions WHERE session_jti = ? AND answered_at IS NOT NULL LIMIT 1")
        .get(sessionJti) !== undefined
    );
  }

  async answerConsentSession(idHash: Buffer, outcome: ConsentOutcome, now: number): Promise<boolean> {
    // One statement decides "still open" and records the answer: a double submit answers once.
    const info = this.db
      .prepare(
        "UPDATE consent_sessions SET answered_at = ?, outcome = ? WHERE id_hash = ? AND answered_at IS NULL AND expires_at > ?",
      )
      .run(now, outcome, idHash, now);
    return info.changes > 0;
  }

  async approveConnection(input: ApproveConnectionInput): Promise<ApproveConnectionResult> {
    const { appId, appUserId, payerId, capNano, now } = input;
    return writeTransaction(this.db, (): ApproveConnectionResult => {
      const live = this.db
        .prepare("SELECT * FROM connections WHERE app_id = ? AND app_user_id = ? AND revoked_at IS NULL")
        .get(appId, appUserId) as Row | undefined;
      if (live && text(live.payer_id) === payerId) {
        if (capNano !== null) {
          this.db
            .prepare("UPDATE connections SET cap_nano = ?, updated_at = ? WHERE id = ?")
            .run(capNano, now, live.id);
        }
        const row = this.db.prepare("SELECT * FROM connections WHERE id = ?").get(live.id) as Row;
        return { ok: true, connection: toConnection(row), created: false };
      }
      if (live && !input.switchPayer) return { ok: false, reason: "other_payer" };
      if (capNano === null) return { ok: false, reason: "not_connected" };
      if (live) {
        this.db
          .prepare("UPDATE connections SET revoked_at = ?, updated_at = ? WHERE id = ?")
          .run(now, now, live.id);
      }
      // A connection is (app, appUserId, payer): the same payer coming back revives their own row, so
      // the month's spend (kept per connection) carries on instead of starting again from zero.
      const previous = this.db
        .prepare(
          "SELECT id FROM connections WHERE app_id = ? AND app_user_id = ? AND payer_id = ? ORDER BY created_at DESC LIMIT 1",
        )
        .get(appId, appUserId, payerId) as Row | undefined;
      if (previous) {
        this.db
          .prepare("UPDATE connections SET revoked_at = NULL, cap_nano = ?, updated_at = ? WHERE id = ?")
          .run(capNano, now, previous.id);
        const row = this.db.prepare("SELECT * FROM connections WHERE id = ?").get(previous.id) as Row;
        return { ok: true, connection: toConnection(row), created: false };
      }
      this.db
        .prepare(
          "INSERT INTO connections (id, app_id, app_user_id, payer_id, cap_nano, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .run(input.newConnectionId, appId, appUserId, payerId, capNano, now, now);
      const row = this.db.prepare("SELECT * FROM connections WHERE id = ?").get(input.newConnectionId) as Row;
      return { ok: true, connection: toConnection(row), created: true };
    })();
  }

  async payerConnections(payerId: string): Promise<PayerConnection[]> {
    const rows = this.db
      .prepare(`
        SELECT c.*, a.name AS app_name FROM connections c JOIN apps a ON a.id = c.app_id
        WHERE c.payer_id = ? AND c.revoked_at IS NULL ORDER BY c.created_at, c.id`)
      .all(payerId) as Row[];
    return rows.map((r) => ({ ...toConnection(r), appName: text(r.app_name) }));
  }

  async setConnectionCap(
    connectionId: string,
    payerId: string,
    capNano: bigint,
    now: number,
  ): Promise<boolean> {
    const info = this.db
      .prepare(
        "UPDATE connections SET cap_nano = ?, updated_at = ? WHERE id = ? AND payer_id = ? AND revoked_at IS NULL",
      )
      .run(capNano, now, connectionId, payerId);
    return info.changes > 0;
  }

  async revokePayerConnection(connectionId: string, payerId: string, now: number): Promise<boolean> {
    const info = this.db
      .prepare(
        "UPDATE connections SET revoked_at = ?, updated_at = ? WHERE id = ? AND payer_id = ? AND revoked_at IS NULL",
      )
      .run(now, now, connectionId, payerId);
    return info.changes > 0;
  }

  async setPayerPaused(payerId: string, paused: boolean): Promise<void> {
    this.db.prepare("UPDATE payers SET paused = ? WHERE id = ?").run(paused ? 1 : 0, payerId);
  }

  async payerMonthlySpend(payerId: string, fromPeriod: Period): Promise<MonthlySpend[]> {
    // Connection entries carry their month; grant entries (lifetime period "-") count in the month they were made.
    const rows = this.db
      .prepare(`${PAYER_ACCOUNTS}
        SELECT CASE WHEN l.period = '-' THEN strftime('%Y-%m', l.created_at / 1000, 'unixepoch')
                    ELSE l.period END AS month,
               SUM(l.amount_nano) AS settled, SUM(l.kind = 'settle') AS requests
        FROM ledger l WHERE l.account IN (SELECT account FROM accounts)
        GROUP BY month HAVING month >= @fromPeriod ORDER BY month`)
      .all({ payerId, fromPeriod }) as Row[];
    return rows.map((r) => ({
      period: text(r.month),
      settledNano: r.settled as bigint,
      requests: num(r.requests),
    }));
  }

  async payerRecentRequests(payerId: string, limit: number): Promise<PayerRequest[]> {
    const rows = this.db
      .prepare(`${PAYER_ACCOUNTS}
        SELECT l.request_id, l.app_id, COALESCE(a.name, l.app_id) AS app_name,
               substr(l.account, 1, 2) = 'g:' AS via_grant, l.model, l.prompt_tokens, l.completion_tokens,
               l.amount_nano + COALESCE((SELECT x.amount_nano FROM ledger x WHERE x.account = l.account
                 AND x.period = l.period AND x.request_id = l.request_id AND x.kind = 'adjust'), 0) AS amount,
               l.created_at
        FROM ledger l LEFT JOIN apps a ON a.id = l.app_id
        WHERE l.kind = 'settle' AND l.account IN (SELECT account FROM accounts)
        ORDER BY l.created_at DESC, l.request_id DESC LIMIT @limit`)
      .all({ payerId, limit }) as Row[];
    return rows.map((r) => ({
      requestId: text(r.request_id),
      appId: text(r.app_id),
      appName: text(r.app_name),
      viaGrant: num(r.via_grant) === 1,
      model: text(r.model),
      promptTokens: numOrNull(r.prompt_tokens),
      completionTokens: numOrNull(r.completion_tokens),
      amountNano: r.amount as bigint,
      createdAt: num(r.created_at),
    }));
  }
}
