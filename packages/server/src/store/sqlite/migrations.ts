/**
 * Numbered SQLite migrations, run through Kysely's Migrator at start and by `wattfare migrate`.
 * Never edit a shipped migration: add the next number. Money columns are INTEGER nano-USD, read back as
 * BigInt (the database is opened with safe integers), times are INTEGER unix milliseconds.
 */
import {
  CompiledQuery,
  type DatabaseConnection,
  type Kysely,
  type Migration,
  type MigrationProvider,
  Migrator,
  SqliteAdapter,
  SqliteDialect,
  type SqliteDialectConfig,
  SqliteDriver,
  sql,
} from "kysely";

const m0001_initial: Migration = {
  async up(db: Kysely<unknown>) {
    for (const statement of [
      sql`CREATE TABLE apps (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        sessions_per_minute INTEGER,
        chat_per_minute INTEGER,
        compromised_at INTEGER
      ) STRICT`,
      sql`CREATE TABLE app_keys (
        id INTEGER PRIMARY KEY,
        app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        key_hash BLOB NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER
      ) STRICT`,
      sql`CREATE INDEX app_keys_by_app ON app_keys(app_id)`,
      sql`CREATE TABLE app_origins (
        app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        origin TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (app_id, origin)
      ) STRICT`,
      sql`CREATE TABLE payers (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL UNIQUE COLLATE NOCASE,
        password_hash TEXT,
        email_verified_at INTEGER,
        paused INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        deleted_at INTEGER
      ) STRICT`,
      // A payer's current funding is the row with replaced_at NULL. Replaced rows stay readable until
      // the reservations that used them have closed (DESIGN.md "Invariant 2").
      sql`CREATE TABLE funding (
        id TEXT PRIMARY KEY,
        payer_id TEXT NOT NULL REFERENCES payers(id),
        key_blob TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        source TEXT NOT NULL CHECK (source IN ('oauth','pasted','dev')),
        state TEXT NOT NULL DEFAULT 'ok' CHECK (state IN ('ok','insufficient','invalid')),
        limit_remaining_nano INTEGER,
        checked_at INTEGER,
        created_at INTEGER NOT NULL,
        replaced_at INTEGER
      ) STRICT`,
      sql`CREATE UNIQUE INDEX funding_current ON funding(payer_id) WHERE replaced_at IS NULL`,
      // A connection is (app, appUserId, payer); usage belongs to it, so a new payer starts at zero.
      sql`CREATE TABLE connections (
        id TEXT PRIMARY KEY,
        app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        app_user_id TEXT NOT NULL,
        payer_id TEXT NOT NULL REFERENCES payers(id),
        cap_nano INTEGER NOT NULL CHECK (cap_nano >= 0),
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        revoked_at INTEGER
      ) STRICT`,
      sql`CREATE UNIQUE INDEX connections_live ON connections(app_id, app_user_id) WHERE revoked_at IS NULL`,
      sql`CREATE INDEX connections_by_payer ON connections(payer_id)`,
      // Settled spend per budget account ("c:<connection>" or "g:<grant>") and period ("2026-11"; "-"
      // for grants, whose cap is for their lifetime).
      sql`CREATE TABLE usage (
        account TEXT NOT NULL,
        period TEXT NOT NULL,
        settled_nano INTEGER NOT NULL DEFAULT 0,
        requests INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (account, period)
      ) STRICT`,
      sql`CREATE TABLE reservations (
        id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        period TEXT NOT NULL,
        app_id TEXT NOT NULL,
        funding_id TEXT NOT NULL,
        model TEXT NOT NULL,
        stream INTEGER NOT NULL,
        amount_nano INTEGER NOT NULL CHECK (amount_nano >= 0),
        generation_id TEXT,
        state TEXT NOT NULL CHECK (state IN ('open','settled','released')),
        owner TEXT NOT NULL,
        lease_until INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        deadline_at INTEGER NOT NULL,
        closed_at INTEGER
      ) STRICT`,
      sql`CREATE INDEX reservations_open ON reservations(lease_until) WHERE state = 'open'`,
      // Idempotent by (request id, kind): replaying a settlement can never double-charge.
      sql`CREATE TABLE ledger (
        id INTEGER PRIMARY KEY,
        request_id TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('settle','adjust')),
        account TEXT NOT NULL,
        period TEXT NOT NULL,
        app_id TEXT NOT NULL,
        amount_nano INTEGER NOT NULL,
        generation_id TEXT,
        model TEXT NOT NULL,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        unreconciled INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        UNIQUE (request_id, kind)
      ) STRICT`,
      sql`CREATE INDEX ledger_by_account ON ledger(account, period)`,
      sql`CREATE TABLE grants (
        id TEXT PRIMARY KEY,
        app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        token_hash BLOB NOT NULL UNIQUE,
        payer_id TEXT NOT NULL REFERENCES payers(id),
        max_nano INTEGER NOT NULL CHECK (max_nano >= 0),
        max_uses INTEGER,
        uses INTEGER NOT NULL DEFAULT 0,
        expires_at INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
      ) STRICT`,
    ]) {
      await statement.execute(db);
    }
  },
};

// Payer accounts and funding (issue 5): web sessions, one-time email tokens, pending OAuth PKCE attempts,
// the development mail outbox, and the OpenRouter key hash beside each funding row (for the "delete
// this key at OpenRouter" link, which must survive the key's removal).
const m0002_payers: Migration = {
  async up(db: Kysely<unknown>) {
    for (const statement of [
      // Only SHA-256 of the cookie token is stored: a database dump cannot be replayed as a session.
      sql`CREATE TABLE payer_sessions (
        id_hash BLOB PRIMARY KEY,
        payer_id TEXT NOT NULL REFERENCES payers(id),
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
      ) STRICT`,
      sql`CREATE INDEX payer_sessions_by_payer ON payer_sessions(payer_id)`,
      sql`CREATE TABLE payer_email_tokens (
        token_hash BLOB PRIMARY KEY,
        payer_id TEXT NOT NULL REFERENCES payers(id),
        purpose TEXT NOT NULL CHECK (purpose IN ('verify','reset')),
        email TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at INTEGER
      ) STRICT`,
      sql`CREATE INDEX payer_email_tokens_by_payer ON payer_email_tokens(payer_id)`,
      // The PKCE verifier lives only here, bound to the web session that started the attempt; signing
      // out (deleting the session) drops its pending attempts.
      sql`CREATE TABLE oauth_states (
        state_hash BLOB PRIMARY KEY,
        session_hash BLOB NOT NULL REFERENCES payer_sessions(id_hash) ON DELETE CASCADE,
        payer_id TEXT NOT NULL REFERENCES payers(id),
        code_verifier TEXT NOT NULL,
        return_to TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
      ) STRICT`,
      sql`CREATE INDEX oauth_states_by_session ON oauth_states(session_hash, created_at)`,
      sql`CREATE TABLE mail_outbox (
        id INTEGER PRIMARY KEY,
        to_address TEXT NOT NULL,
        subject TEXT NOT NULL,
        body_text TEXT NOT NULL,
        created_at INTEGER NOT NULL
      ) STRICT`,
      sql`ALTER TABLE funding ADD COLUMN openrouter_key_hash TEXT`,
    ]) {
      await statement.execute(db);
    }
  },
};

/** One-time grants: the grant token handed to an opener that lost its popup, once, encrypted. */
const m0003_grant_handoffs: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`CREATE TABLE grant_handoffs (
      session_jti TEXT PRIMARY KEY,
      app_id TEXT NOT NULL,
      token_blob TEXT NOT NULL,
      expires_at INTEGER NOT NULL,
      taken_at INTEGER
    ) STRICT`.execute(db);
    await sql`CREATE INDEX grants_by_payer ON grants(payer_id)`.execute(db);
  },
};

// Consent popup (issue 6): the popup consent session a verified session token is exchanged for. Only
// the SHA-256 of its cookie is stored; rows are kept after the answer so a grant session token can be
// answered once only, and are swept when they expire.
const m0004_consent_sessions: Migration = {
  async up(db: Kysely<unknown>) {
    for (const statement of [
      sql`CREATE TABLE consent_sessions (
        id_hash BLOB PRIMARY KEY,
        app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        intent TEXT NOT NULL CHECK (intent IN ('connect','raise','reconnect-funding','grant')),
        app_user_id TEXT,
        grant_terms TEXT,
        origin TEXT NOT NULL,
        requested_cap_nano INTEGER CHECK (requested_cap_nano >= 0),
        session_jti TEXT NOT NULL,
        session_expires_at INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        answered_at INTEGER,
        outcome TEXT CHECK (outcome IN ('approved','denied')),
        CHECK ((intent = 'grant') = (app_user_id IS NULL)),
        CHECK ((intent = 'grant') = (grant_terms IS NOT NULL))
      ) STRICT`,
      sql`CREATE INDEX consent_sessions_by_jti ON consent_sessions(session_jti)`,
      sql`CREATE INDEX consent_sessions_by_expiry ON consent_sessions(expires_at)`,
    ]) {
      await statement.execute(db);
    }
  },
};

/**
 * A counter every write to the tables behind a chat account bumps, by trigger — whoever writes (this
 * process, the CLI, code added later). The hot path caches accounts while it (and data_version) hold.
 */
const m0005_account_changes: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`CREATE TABLE account_changes (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL) STRICT`.execute(
      db,
    );
    await sql`INSERT INTO account_changes (id, n) VALUES (1, 0)`.execute(db);
    for (const table of ["connections", "payers", "funding"]) {
      for (const event of ["INSERT", "UPDATE", "DELETE"]) {
        await sql
          .raw(
            `CREATE TRIGGER ${table}_${event.toLowerCase()}_changes AFTER ${event} ON ${table}
             BEGIN UPDATE account_changes SET n = n + 1 WHERE id = 1; END`,
          )
          .execute(db);
      }
    }
  },
};

/**
 * The hot path's tables, leaner (bench/README.md "Where the time goes now"): every request inserts a
 * reservation, closes it and writes a ledger row, so each B-tree touched per request costs CPU and WAL
 * pages. `reservations` now holds only the open ones, keyed by the time-ordered request id without a
 * separate rowid (closing deletes the row; the ledger is the record of what was charged, and a
 * release charged nothing), so the table stays a few pages that every commit already holds. `ledger`
 * is one B-tree keyed by (account, period, request_id, kind) — every reader asks by account — with no
 * rowid and no index the hot path has to maintain: the hourly re-check finds its rows through a partial
 * index of the rare `unreconciled` ones. It carries its funding id, which that re-check needs once the
 * reservation is gone. Closed reservations' rows are not kept.
 */
const m0006_lean_hot_path: Migration = {
  async up(db: Kysely<unknown>) {
    for (const statement of [
      sql`CREATE TABLE ledger_v2 (
        request_id TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('settle','adjust')),
        account TEXT NOT NULL,
        period TEXT NOT NULL,
        app_id TEXT NOT NULL,
        funding_id TEXT NOT NULL,
        amount_nano INTEGER NOT NULL,
        generation_id TEXT,
        model TEXT NOT NULL,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        unreconciled INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (account, period, request_id, kind)
      ) STRICT, WITHOUT ROWID`,
      sql`INSERT INTO ledger_v2 (request_id, kind, account, period, app_id, funding_id, amount_nano, generation_id,
            model, prompt_tokens, completion_tokens, unreconciled, created_at)
          SELECT l.request_id, l.kind, l.account, l.period, l.app_id, COALESCE(r.funding_id, ''), l.amount_nano,
            l.generation_id, l.model, l.prompt_tokens, l.completion_tokens, l.unreconciled, l.created_at
          FROM ledger l LEFT JOIN reservations r ON r.id = l.request_id`,
      sql`DROP TABLE ledger`,
      sql`ALTER TABLE ledger_v2 RENAME TO ledger`,
      sql`CREATE INDEX ledger_unreconciled ON ledger(request_id) WHERE unreconciled = 1`,
      sql`CREATE TABLE open_reservations (
        id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        period TEXT NOT NULL,
        app_id TEXT NOT NULL,
        funding_id TEXT NOT NULL,
        model TEXT NOT NULL,
        stream INTEGER NOT NULL,
        amount_nano INTEGER NOT NULL CHECK (amount_nano >= 0),
        generation_id TEXT,
        owner TEXT NOT NULL,
        lease_until INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        deadline_at INTEGER NOT NULL
      ) STRICT, WITHOUT ROWID`,
      sql`INSERT INTO open_reservations (id, account, period, app_id, funding_id, model, stream, amount_nano,
            generation_id, owner, lease_until, created_at, deadline_at)
          SELECT id, account, period, app_id, funding_id, model, stream, amount_nano, generation_id, owner,
            lease_until, created_at, deadline_at
          FROM reservations WHERE state = 'open'`,
      sql`DROP TABLE reservations`,
      sql`ALTER TABLE open_reservations RENAME TO reservations`,
    ]) {
      await statement.execute(db);
    }
  },
};

/**
 * One row /readyz rewrites, only after a commit failed, to learn whether the store can write again
 * (a lock held elsewhere past the busy timeout, a full disk, a read-only file): a read cannot tell.
 */
const m0007_write_probe: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`CREATE TABLE write_probe (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL) STRICT`.execute(
      db,
    );
  },
};

/**
 * Why a funding row was retired: replaced by another key (its key blob may be kept for the re-check of
 * unreconciled charges it paid) or removed with the account or by the payer (erased once no open
 * reservation needs it).
 */
const m0008_funding_keep_for_recheck: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`ALTER TABLE funding ADD COLUMN keep_for_recheck INTEGER NOT NULL DEFAULT 0`.execute(db);
  },
};

/**
 * Claim links (docs/payers.md "Accounts"): the owner of an address that an unconfirmed account uses
 * can take it back by email. A third email-token purpose; SQLite cannot change a CHECK, so the table
 * is rebuilt with its rows.
 */
const m0009_claim_links: Migration = {
  async up(db: Kysely<unknown>) {
    for (const statement of [
      sql`CREATE TABLE payer_email_tokens_v2 (
        token_hash BLOB PRIMARY KEY,
        payer_id TEXT NOT NULL REFERENCES payers(id),
        purpose TEXT NOT NULL CHECK (purpose IN ('verify','reset','claim')),
        email TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at INTEGER
      ) STRICT`,
      sql`INSERT INTO payer_email_tokens_v2 (token_hash, payer_id, purpose, email, created_at, expires_at, used_at)
          SELECT token_hash, payer_id, purpose, email, created_at, expires_at, used_at FROM payer_email_tokens`,
      sql`DROP TABLE payer_email_tokens`,
      sql`ALTER TABLE payer_email_tokens_v2 RENAME TO payer_email_tokens`,
      sql`CREATE INDEX payer_email_tokens_by_payer ON payer_email_tokens(payer_id)`,
    ]) {
      await statement.execute(db);
    }
  },
};

export const SQLITE_MIGRATIONS: Record<string, Migration> = {
  "0001_initial": m0001_initial,
  "0002_payers": m0002_payers,
  "0003_grant_handoffs": m0003_grant_handoffs,
  "0004_consent_sessions": m0004_consent_sessions,
  "0005_account_changes": m0005_account_changes,
  "0006_lean_hot_path": m0006_lean_hot_path,
  "0007_write_probe": m0007_write_probe,
  "0008_funding_keep_for_recheck": m0008_funding_keep_for_recheck,
  "0009_claim_links": m0009_claim_links,
};

class StaticProvider implements MigrationProvider {
  async getMigrations(): Promise<Record<string, Migration>> {
    return SQLITE_MIGRATIONS;
  }
}

class TransactionalDdlAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

class ImmediateTransactionDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw("begin immediate"));
  }
}

/**
 * SQLite runs DDL inside transactions, but Kysely's SQLite adapter says it does not, so its migrator
 * would commit each statement of a migration on its own: a crash — or another process's commit — in the
 * middle of a table rebuild could lose rows or leave a database no server can start on. With this
 * dialect the migrator applies every pending migration and records it in one transaction, begun
 * IMMEDIATE so that it holds the write lock from the start (a deferred one cannot turn its read snapshot
 * into a write after someone else commits).
 */
export class MigratingSqliteDialect extends SqliteDialect {
  constructor(private readonly dialectConfig: SqliteDialectConfig) {
    super(dialectConfig);
  }

  override createAdapter(): SqliteAdapter {
    return new TransactionalDdlAdapter();
  }

  override createDriver(): SqliteDriver {
    return new ImmediateTransactionDriver(this.dialectConfig);
  }
}

/** Names of the migrations this database has not had yet. */
export async function pendingMigrations(db: Kysely<unknown>): Promise<string[]> {
  const migrator = new Migrator({ db, provider: new StaticProvider() });
  return (await migrator.getMigrations()).filter((m) => m.executedAt === undefined).map((m) => m.name);
}

export async function migrateToLatest(db: Kysely<unknown>): Promise<string[]> {
  const migrator = new Migrator({ db, provider: new StaticProvider() });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === "Success").map((r) => r.migrationName);
}
