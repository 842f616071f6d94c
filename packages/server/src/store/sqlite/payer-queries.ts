/**
 * The SQLite side of payer accounts and their funding (issue 5): sign-up, sign-in sessions, email
 * links, OAuth attempts, the mail outbox, closing or deleting an account, and replacing or removing a
 * payer's OpenRouter key (with erasing the retired keys nothing needs any more). SqliteStore delegates
 * these Store methods here. These are admin paths, off the chat hot path, and none touches the store's
 * in-memory state: the chat-account cache sees their writes to payers, funding and connections through
 * the trigger-maintained account-change counter, and grants are read uncached. Every write that must be
 * atomic runs in one synchronous transaction.
 */
import type BetterSqlite3 from "better-sqlite3";
import {
  type EmailTokenPurpose,
  type NewEmailToken,
  type NewFunding,
  type NewPayer,
  type OAuthAttempt,
  OUTBOX_KEEP_MS,
  type OutboxMessage,
  type PayerFunding,
  type PayerRecord,
  type PayerSessionRecord,
  UNRECONCILED_RECHECK_WINDOW_MS,
} from "../port.js";
import { writeTransaction } from "./database.js";
import { ERASED_KEY_BLOB, n, nOrNull, type Row, str, toFunding } from "./rows.js";

function toPayer(r: Row): PayerRecord {
  return {
    id: str(r.id),
    email: str(r.email),
    passwordHash: (r.password_hash as string | null) ?? null,
    emailVerifiedAt: nOrNull(r.email_verified_at),
    paused: n(r.paused) === 1,
    createdAt: n(r.created_at),
  };
}

export class SqlitePayerQueries {
  /** The database is opened by SqliteStore's constructor, after this object exists. */
  constructor(private readonly database: () => BetterSqlite3.Database) {}

  private get db(): BetterSqlite3.Database {
    return this.database();
  }

  async createPayer(payer: NewPayer): Promise<boolean> {
    const info = this.db
      .prepare(
        "INSERT INTO payers (id, email, password_hash, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (email) DO NOTHING",
      )
      .run(payer.id, payer.email, payer.passwordHash, payer.createdAt);
    return info.changes > 0;
  }

  async payerByEmail(email: string): Promise<PayerRecord | undefined> {
    const r = this.db.prepare("SELECT * FROM payers WHERE email = ? AND deleted_at IS NULL").get(email) as
      | Row
      | undefined;
    return r ? toPayer(r) : undefined;
  }

  async getPayer(payerId: string): Promise<PayerRecord | undefined> {
    const r = this.db.prepare("SELECT * FROM payers WHERE id = ? AND deleted_at IS NULL").get(payerId) as
      | Row
      | undefined;
    return r ? toPayer(r) : undefined;
  }

  async setPayerPassword(payerId: string, passwordHash: string, now: number): Promise<void> {
    writeTransaction(this.db, () => {
      this.db.prepare("UPDATE payers SET password_hash = ? WHERE id = ?").run(passwordHash, payerId);
      this.db.prepare("DELETE FROM payer_sessions WHERE payer_id = ?").run(payerId);
      this.db
        .prepare(
          "UPDATE payer_email_tokens SET used_at = ? WHERE payer_id = ? AND purpose = 'reset' AND used_at IS NULL",
        )
        .run(now, payerId);
    })();
  }

  async markPayerEmailVerified(payerId: string, now: number): Promise<void> {
    this.db
      .prepare("UPDATE payers SET email_verified_at = ? WHERE id = ? AND email_verified_at IS NULL")
      .run(now, payerId);
  }

  async deletePayer(payerId: string, now: number): Promise<void> {
    writeTransaction(this.db, () => {
      this.closePayer(payerId, now);
      // The row stays for the ledger's sake; the address is freed so it can sign up again.
      this.db
        .prepare(
          "UPDATE payers SET email = 'deleted:' || id, password_hash = NULL, deleted_at = ?, paused = 0 WHERE id = ?",
        )
        .run(now, payerId);
    })();
  }

  async claimPayerEmail(unconfirmedPayerId: string, payer: NewPayer, now: number): Promise<boolean> {
    return writeTransaction(this.db, () => {
      // The guard and the release are one statement: a confirmation that got in first wins.
      const released = this.db
        .prepare(
          "UPDATE payers SET email = 'unclaimed:' || id, password_hash = NULL, deleted_at = ?, paused = 0 WHERE id = ? AND email = ? AND email_verified_at IS NULL AND deleted_at IS NULL",
        )
        .run(now, unconfirmedPayerId, payer.email);
      if (released.changes === 0) return false;
      this.closePayer(unconfirmedPayerId, now);
      this.db
        .prepare(
          "INSERT INTO payers (id, email, password_hash, created_at, email_verified_at) VALUES (?, ?, ?, ?, ?)",
        )
        .run(payer.id, payer.email, payer.passwordHash, payer.createdAt, now);
      return true;
    })();
  }

  /** Everything a closed account could still act through: connections, grants, funding, sessions, links. */
  private closePayer(payerId: string, now: number): void {
    this.db
      .prepare(
        "UPDATE connections SET revoked_at = ?, updated_at = ? WHERE payer_id = ? AND revoked_at IS NULL",
      )
      .run(now, now, payerId);
    this.db
      .prepare("UPDATE grants SET revoked_at = ? WHERE payer_id = ? AND revoked_at IS NULL")
      .run(now, payerId);
    this.retireFunding(payerId, now, false);
    this.db.prepare("DELETE FROM oauth_states WHERE payer_id = ?").run(payerId);
    this.db.prepare("DELETE FROM payer_sessions WHERE payer_id = ?").run(payerId);
    this.db.prepare("DELETE FROM payer_email_tokens WHERE payer_id = ?").run(payerId);
  }

  async createPayerSession(session: PayerSessionRecord): Promise<void> {
    writeTransaction(this.db, () => {
      // Housekeeping on the way: the payer's expired sessions go (their cookies no longer open anything).
      this.db
        .prepare("DELETE FROM payer_sessions WHERE payer_id = ? AND expires_at <= ?")
        .run(session.payerId, session.createdAt);
      this.db
        .prepare("INSERT INTO payer_sessions (id_hash, payer_id, created_at, expires_at) VALUES (?, ?, ?, ?)")
        .run(session.idHash, session.payerId, session.createdAt, session.expiresAt);
    })();
  }

  async payerSession(
    idHash: Buffer,
    now: number,
  ): Promise<{ session: PayerSessionRecord; payer: PayerRecord } | undefined> {
    const r = this.db
      .prepare(`
        SELECT s.id_hash AS s_id_hash, s.payer_id AS s_payer_id, s.created_at AS s_created_at,
               s.expires_at AS s_expires_at, p.*
        FROM payer_sessions s JOIN payers p ON p.id = s.payer_id
        WHERE s.id_hash = ? AND s.expires_at > ? AND p.deleted_at IS NULL`)
      .get(idHash, now) as Row | undefined;
    if (!r) return undefined;
    return {
      session: {
        idHash: r.s_id_hash as Buffer,
        payerId: str(r.s_payer_id),
        createdAt: n(r.s_created_at),
        expiresAt: n(r.s_expires_at),
      },
      payer: toPayer(r),
    };
  }

  async deletePayerSession(idHash: Buffer): Promise<void> {
    this.db.prepare("DELETE FROM payer_sessions WHERE id_hash = ?").run(idHash);
  }

  async createEmailToken(token: NewEmailToken): Promise<void> {
    this.db
      .prepare(
        "DELETE FROM payer_email_tokens WHERE payer_id = ? AND (used_at IS NOT NULL OR expires_at <= ?)",
      )
      .run(token.payerId, token.createdAt);
    this.db
      .prepare(
        "INSERT INTO payer_email_tokens (token_hash, payer_id, purpose, email, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
      )
      .run(token.tokenHash, token.payerId, token.purpose, token.email, token.createdAt, token.expiresAt);
  }

  async peekEmailToken(
    tokenHash: Buffer,
    purpose: EmailTokenPurpose,
    now: number,
  ): Promise<{ payerId: string; email: string } | undefined> {
    const r = this.db
      .prepare(
        "SELECT payer_id, email FROM payer_email_tokens WHERE token_hash = ? AND purpose = ? AND used_at IS NULL AND expires_at > ?",
      )
      .get(tokenHash, purpose, now) as Row | undefined;
    return r ? { payerId: str(r.payer_id), email: str(r.email) } : undefined;
  }

  async consumeEmailToken(
    tokenHash: Buffer,
    purpose: EmailTokenPurpose,
    now: number,
  ): Promise<{ payerId: string; email: string } | undefined> {
    // UPDATE … RETURNING makes "check unused, then use" one statement: a link works exactly once.
    const r = this.db
      .prepare(
        "UPDATE payer_email_tokens SET used_at = ? WHERE token_hash = ? AND purpose = ? AND used_at IS NULL AND expires_at > ? RETURNING payer_id, email",
      )
      .get(now, tokenHash, purpose, now) as Row | undefined;
    return r ? { payerId: str(r.payer_id), email: str(r.email) } : undefined;
  }

  async createOAuthAttempt(attempt: OAuthAttempt): Promise<void> {
    this.db
      .prepare(
        "INSERT INTO oauth_states (state_hash, session_hash, payer_id, code_verifier, return_to, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
      )
      .run(
        attempt.stateHash,
        attempt.sessionHash,
        attempt.payerId,
        attempt.codeVerifier,
        attempt.returnTo,
        attempt.createdAt,
        attempt.expiresAt,
      );
  }

  async takeOAuthAttempt(
    sessionHash: Buffer,
    stateHash: Buffer | null,
    now: number,
  ): Promise<OAuthAttempt | undefined> {
    return writeTransaction(this.db, () => {
      this.db.prepare("DELETE FROM oauth_states WHERE expires_at <= ?").run(now);
      const r = (
        stateHash === null
          ? this.db
              .prepare(
                "SELECT * FROM oauth_states WHERE session_hash = ? ORDER BY created_at DESC, rowid DESC LIMIT 1",
              )
              .get(sessionHash)
          : this.db
              .prepare("SELECT * FROM oauth_states WHERE session_hash = ? AND state_hash = ?")
              .get(sessionHash, stateHash)
      ) as Row | undefined;
      if (!r) return undefined;
      if (stateHash !== null)
        this.db.prepare("DELETE FROM oauth_states WHERE state_hash = ?").run(r.state_hash);
      return {
        stateHash: r.state_hash as Buffer,
        sessionHash: r.session_hash as Buffer,
        payerId: str(r.payer_id),
        codeVerifier: str(r.code_verifier),
        returnTo: str(r.return_to),
        createdAt: n(r.created_at),
        expiresAt: n(r.expires_at),
      };
    })();
  }

  async addOutboxMessage(message: Omit<OutboxMessage, "id">): Promise<void> {
    writeTransaction(this.db, () => {
      this.db.prepare("DELETE FROM mail_outbox WHERE created_at < ?").run(message.createdAt - OUTBOX_KEEP_MS);
      this.db
        .prepare("INSERT INTO mail_outbox (to_address, subject, body_text, created_at) VALUES (?, ?, ?, ?)")
        .run(message.to, message.subject, message.text, message.createdAt);
    })();
  }

  async outboxMessages(to?: string): Promise<OutboxMessage[]> {
    const rows =
      to === undefined
        ? this.db.prepare("SELECT * FROM mail_outbox ORDER BY id").all()
        : this.db.prepare("SELECT * FROM mail_outbox WHERE to_address = ? ORDER BY id").all(to);
    return (rows as Row[]).map((r) => ({
      id: n(r.id),
      to: str(r.to_address),
      subject: str(r.subject),
      text: str(r.body_text),
      createdAt: n(r.created_at),
    }));
  }

  async fundingHistory(payerId: string, limit: number): Promise<PayerFunding[]> {
    const rows = this.db
      .prepare(
        "SELECT * FROM funding WHERE payer_id = ? ORDER BY replaced_at IS NOT NULL, created_at DESC, rowid DESC LIMIT ?",
      )
      .all(payerId, limit) as Row[];
    return rows.map((r) => ({
      ...toFunding(r),
      openRouterKeyHash: (r.openrouter_key_hash as string | null) ?? null,
      replacedAt: nOrNull(r.replaced_at),
    }));
  }

  async replacePayerFunding(payerId: string, next: NewFunding | null, now: number): Promise<void> {
    writeTransaction(this.db, () => {
      this.retireFunding(payerId, now, next !== null);
      if (next === null) return;
      this.db
        .prepare(`
          INSERT INTO funding (id, payer_id, key_blob, fingerprint, source, state, limit_remaining_nano,
            checked_at, created_at, openrouter_key_hash)
          VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
        .run(
          next.id,
          payerId,
          next.keyBlob,
          next.fingerprint,
          next.source,
          next.state,
          next.limitRemainingNano,
          next.checkedAt,
          now,
          next.openRouterKeyHash,
        );
    })();
  }

  /**
   * Retires the payer's current funding row and erases the key blob of every retired row nothing needs:
   * `keepForRecheck` (a replaced key, not a removed one) keeps it also for its unreconciled charges'
   * re-check. Called inside a transaction. A request admitted an instant earlier holds its key in
   * memory, and the reconciler treats an unreadable blob as "cost unknown" (settles at the reservation).
   */
  private retireFunding(payerId: string, now: number, keepForRecheck: boolean): void {
    this.db
      .prepare(
        "UPDATE funding SET replaced_at = ?, keep_for_recheck = ? WHERE payer_id = ? AND replaced_at IS NULL",
      )
      .run(now, keepForRecheck ? 1 : 0, payerId);
    this.eraseUnneededKeys(now, payerId);
  }

  async eraseRetiredFundingKeys(now: number): Promise<number> {
    return this.eraseUnneededKeys(now, null);
  }

  /**
   * Erases retired rows' key blobs (of one payer, or all) that no open reservation needs, nor — for a
   * replaced key — a charge it paid still to be re-checked.
   */
  private eraseUnneededKeys(now: number, payerId: string | null): number {
    return this.db
      .prepare(`
        UPDATE funding SET key_blob = ?
        WHERE (? IS NULL OR payer_id = ?) AND replaced_at IS NOT NULL AND key_blob <> ?
          AND NOT EXISTS (SELECT 1 FROM reservations r WHERE r.funding_id = funding.id)
          AND NOT (keep_for_recheck = 1 AND EXISTS (SELECT 1 FROM ledger l WHERE l.funding_id = funding.id AND l.unreconciled = 1
            AND l.kind = 'settle' AND l.generation_id IS NOT NULL AND l.created_at >= ?
            AND NOT EXISTS (SELECT 1 FROM ledger a WHERE a.account = l.account AND a.period = l.period
              AND a.request_id = l.request_id AND a.kind = 'adjust')))`)
      .run(ERASED_KEY_BLOB, payerId, payerId, ERASED_KEY_BLOB, now - UNRECONCILED_RECHECK_WINDOW_MS).changes;
  }
}
