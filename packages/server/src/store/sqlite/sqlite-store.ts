/**
 * The SQLite adapter of the Store port. The chat hot path uses prepared statements and the group-commit
 * WriteBatcher, with the BudgetBook as the in-memory admission authority; Kysely runs the migrations.
 * Apps, connections, funding keys, grant lookup and use counts, reservations and the ledger are here;
 * the admin-only SQL of payer accounts (payer-queries.ts), grants (grant-queries.ts) and the consent
 * popup and dashboard (consent-queries.ts) is each in its own module, which SqliteStore delegates to.
 */
import type BetterSqlite3 from "better-sqlite3";
import { Kysely } from "kysely";
import type {
  AccountRef,
  AdmitResult,
  AppKeyRecord,
  AppWithOrigins,
  BudgetSnapshot,
  ChatAccount,
  ConnectionRecord,
  DevConnectInput,
  FundingRecord,
  FundingState,
  GrantAccount,
  GrantUse,
  LedgerEntry,
  NewApp,
  ReservationDecider,
  ReservationDraft,
  ReservationRecord,
  Settlement,
  Store,
} from "../port.js";
import { BudgetBook } from "./budget-book.js";
import { BackgroundCheckpointer } from "./checkpointer.js";
import { SqliteConsentQueries } from "./consent-queries.js";
import { openSqlite, writeTransaction } from "./database.js";
import { SqliteGrantQueries } from "./grant-queries.js";
import { MigratingSqliteDialect, migrateToLatest, pendingMigrations } from "./migrations.js";
import { SqlitePayerQueries } from "./payer-queries.js";
import { big, ERASED_KEY_BLOB, n, nOrNull, type Row, str, toFunding, toGrant } from "./rows.js";
import { anotherServerServes, ServerLockError } from "./server-lock.js";
import { WriteBatcher } from "./write-batcher.js";

/** How long a failed closing write (settle, release) waits before it is tried again. */
const CLOSE_RETRY_MS = 1_000;

function toConnection(r: Row, prefix = ""): ConnectionRecord {
  return {
    id: str(r[`${prefix}id`]),
    appId: str(r[`${prefix}app_id`]),
    appUserId: str(r[`${prefix}app_user_id`]),
    payerId: str(r[`${prefix}payer_id`]),
    capNano: big(r[`${prefix}cap_nano`]),
    createdAt: n(r[`${prefix}created_at`]),
    revokedAt: nOrNull(r[`${prefix}revoked_at`]),
  };
}

function toReservation(r: Row): ReservationRecord {
  return {
    id: str(r.id),
    account: str(r.account),
    period: str(r.period),
    appId: str(r.app_id),
    fundingId: str(r.funding_id),
    model: str(r.model),
    stream: n(r.stream) === 1,
    amountNano: big(r.amount_nano),
    generationId: (r.generation_id as string | null) ?? null,
    owner: str(r.owner),
    leaseUntil: n(r.lease_until),
    createdAt: n(r.created_at),
    deadlineAt: n(r.deadline_at),
  };
}

/**
 * The hourly re-check's query (params: since, afterRequestId, limit); it reads through the partial
 * index of unreconciled rows, which its test pins.
 */
export const UNRECONCILED_SINCE_SQL = `SELECT l.* FROM ledger l
  WHERE l.kind = 'settle' AND l.unreconciled = 1 AND l.generation_id IS NOT NULL AND l.created_at >= ?
    AND l.funding_id <> '' AND l.request_id > ?
    AND NOT EXISTS (SELECT 1 FROM ledger a WHERE a.account = l.account AND a.period = l.period
      AND a.request_id = l.request_id AND a.kind = 'adjust')
  ORDER BY l.request_id LIMIT ?`;

/** Ledger rows in the order they were written (an adjustment comes after its settlement). */
const LEDGER_ORDER = "created_at, request_id, kind DESC";

function toLedger(r: Row): LedgerEntry {
  return {
    requestId: str(r.request_id),
    kind: str(r.kind) as LedgerEntry["kind"],
    account: str(r.account),
    period: str(r.period),
    appId: str(r.app_id),
    fundingId: str(r.funding_id),
    amountNano: big(r.amount_nano),
    generationId: (r.generation_id as string | null) ?? null,
    model: str(r.model),
    promptTokens: nOrNull(r.prompt_tokens),
    completionTokens: nOrNull(r.completion_tokens),
    unreconciled: n(r.unreconciled) === 1,
    createdAt: n(r.created_at),
  };
}

/** The payer's pause flag and current funding (prefixed f_), for queries joining `payers p` and `funding f`. */
const PAYER_FUNDING_COLUMNS = `p.paused AS payer_paused,
  f.id AS f_id, f.payer_id AS f_payer_id, f.key_blob AS f_key_blob, f.fingerprint AS f_fingerprint,
  f.source AS f_source, f.state AS f_state, f.limit_remaining_nano AS f_limit_remaining_nano,
  f.checked_at AS f_checked_at, f.created_at AS f_created_at`;

/** An app as the hot path reads it; `expiring` when a key has an expiry (a rotation is in progress). */
interface CachedApp {
  app: AppWithOrigins | undefined;
  keys: AppKeyRecord[];
  expiring: boolean;
}

export interface SqliteStoreOptions {
  /** Path to the database file, or ":memory:" for tests. */
  file: string;
  /** Checkpoint the WAL from a worker thread instead of inside request commits (the server does). */
  backgroundCheckpoints?: boolean;
}

export class SqliteStore implements Store {
  readonly kind = "sqlite" as const;
  readonly db: BetterSqlite3.Database;
  readonly kysely: Kysely<unknown>;
  private readonly file: string;
  private readonly batcher: WriteBatcher;
  private readonly book = new BudgetBook();
  /** Open reservations known to this process, so a settlement is applied to the counters exactly once. */
  private readonly open = new Map<string, ReservationRecord>();
  /**
   * Per funding row: what its key took through this process since its limit was last read — open
   * reservations plus settlements since (ReservationDecider). Rebuilt at start from the open ones only.
   */
  private readonly fundingSpent = new Map<string, bigint>();
  /**
   * Apps and their keys, read on every authenticated request. Valid while `PRAGMA data_version` is
   * unchanged (it moves when another connection — the CLI — commits) and cleared by this process's own
   * app writes, so a change made anywhere applies to the very next request.
   */
  private readonly appCache = new Map<string, CachedApp>();
  private appCacheVersion: bigint | undefined;
  private readonly accountCache = new Map<string, ChatAccount | undefined>();
  private accountCacheVersion: { dataVersion: bigint | undefined; changes: bigint | undefined } = {
    dataVersion: undefined,
    changes: undefined,
  };
  /** See versions(). */
  private turnDataVersion: bigint | undefined;
  private accountChangesSeen: { value: bigint; otherWrites: bigint; dataVersion: bigint } | undefined;
  /**
   * Closing writes (settle, release) not yet committed, by reservation id. The reservation is already
   * closed in memory, so the reconciler must not claim its row meanwhile; a write whose commit failed
   * (`failed`) is retried until it commits (retryFailedCloses). A restart before that takes the row
   * over like any other open reservation.
   */
  private readonly closing = new Map<string, { run: () => void; failed: boolean }>();
  private closeRetryTimer: NodeJS.Timeout | undefined;
  /** Grant use counts: in-memory authority like the budget book, loaded from the row on first use. */
  private readonly grantUses = new Map<string, number>();
  /** A grant's in-memory use count, where this process holds one (read-only; see toGrant). */
  private readonly knownGrantUses = (grantId: string): number | undefined => this.grantUses.get(grantId);
  /** Prepared after migrations (they need the tables); see migrate(). */
  private stmt!: ReturnType<SqliteStore["prepare"]>;
  private closed = false;
  /** Present when checkpoints run in the background (see checkpointer.ts). */
  readonly checkpointer: BackgroundCheckpointer | undefined;

  constructor(options: SqliteStoreOptions) {
    this.db = openSqlite(options.file);
    this.file = options.file;
    this.kysely = new Kysely<unknown>({ dialect: new MigratingSqliteDialect({ database: this.db }) });
    this.batcher = new WriteBatcher(this.db);
    if (options.backgroundCheckpoints === true && options.file !== ":memory:") {
      this.checkpointer = new BackgroundCheckpointer(this.db, options.file);
    }
  }

  private prepare() {
    const db = this.db;
    return {
      app: db.prepare("SELECT * FROM apps WHERE id = ?"),
      origins: db.prepare("SELECT origin FROM app_origins WHERE app_id = ? ORDER BY created_at, origin"),
      appKeys: db.prepare("SELECT * FROM app_keys WHERE app_id = ? ORDER BY id DESC"),
      dataVersion: db.prepare("PRAGMA data_version").pluck(),
      accountChanges: db.prepare("SELECT n FROM account_changes WHERE id = 1").pluck(),
      chatAccount: db.prepare(`
        SELECT c.*, ${PAYER_FUNDING_COLUMNS}
        FROM connections c
        JOIN payers p ON p.id = c.payer_id
        LEFT JOIN funding f ON f.payer_id = c.payer_id AND f.replaced_at IS NULL
        WHERE c.app_id = ? AND c.app_user_id = ? AND c.revoked_at IS NULL`),
      funding: db.prepare("SELECT * FROM funding WHERE id = ?"),
      // Positional parameters on the hot path: binding a named-parameter object costs ≈ 2 µs more per row.
      insertReservation: db.prepare(`
        INSERT INTO reservations (id, account, period, app_id, funding_id, model, stream, amount_nano,
          generation_id, owner, lease_until, created_at, deadline_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?)`),
      setGenerationId: db.prepare("UPDATE reservations SET generation_id = ? WHERE id = ?"),
      writeProbe: db.prepare(
        "INSERT INTO write_probe (id, n) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET n = n + 1",
      ),
      useGrant: db.prepare("UPDATE grants SET uses = uses + 1 WHERE id = ?"),
      refundGrantUse: db.prepare("UPDATE grants SET uses = uses - 1 WHERE id = ? AND uses > 0"),
      grantByTokenHash: db.prepare(`
        SELECT g.*, ${PAYER_FUNDING_COLUMNS}
        FROM grants g
        JOIN payers p ON p.id = g.payer_id
        LEFT JOIN funding f ON f.payer_id = g.payer_id AND f.replaced_at IS NULL
        WHERE g.token_hash = ?`),
      // The table holds open reservations only: closing one deletes it (the ledger keeps what was charged).
      closeReservation: db.prepare("DELETE FROM reservations WHERE id = ?"),
      insertLedger: db.prepare(`
        INSERT OR IGNORE INTO ledger (request_id, kind, account, period, app_id, funding_id, amount_nano,
          generation_id, model, prompt_tokens, completion_tokens, unreconciled, created_at)
        VALUES (?, 'settle', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      addUsage: db.prepare(`
        INSERT INTO usage (account, period, settled_nano, requests) VALUES (?, ?, ?, 1)
        ON CONFLICT (account, period) DO UPDATE SET settled_nano = settled_nano + excluded.settled_nano,
          requests = requests + 1`),
      heartbeat: db.prepare("UPDATE reservations SET lease_until = ? WHERE owner = ?"),
      expired: db.prepare(
        "SELECT * FROM reservations WHERE lease_until <= ? OR (? = 1 AND owner <> ?) ORDER BY created_at LIMIT ?",
      ),
      claim: db.prepare("UPDATE reservations SET owner = ?, lease_until = ? WHERE id = ?"),
      openReservations: db.prepare("SELECT * FROM reservations ORDER BY created_at"),
      setFundingState: db.prepare(
        "UPDATE funding SET state = ?, limit_remaining_nano = ?, checked_at = ? WHERE id = ?",
      ),
      setFundingStateOnly: db.prepare("UPDATE funding SET state = ?, checked_at = ? WHERE id = ?"),
    };
  }

  /**
   * Applies pending migrations, all in one transaction. Refuses while another live server serves this
   * file: it runs the old schema's statements and would fail on the new one (`wattfare serve` migrates
   * when it starts, after taking the lock).
   */
  async migrate(): Promise<string[]> {
    // Read first: with nothing pending (every CLI command beside an up-to-date server) the migrator's
    // IMMEDIATE transaction and its lock row are skipped, so the server's commits never wait for it.
    const pending = await pendingMigrations(this.kysely);
    let applied: string[] = [];
    if (pending.length > 0) {
      const server = this.file === ":memory:" ? undefined : anotherServerServes(this.file);
      if (server !== undefined) {
        throw new ServerLockError(
          `a Wattfare server${server} is serving ${this.file} on an older schema; stop it before migrating (${pending.join(", ")} pending)`,
        );
      }
      applied = await migrateToLatest(this.kysely);
    }
    this.stmt = this.prepare();
    this.rebuildBook();
    return applied;
  }

  /** Counters come back from the durable state: settled usage plus every still-open reservation. */
  private rebuildBook(): void {
    this.book.clear();
    this.open.clear();
    this.fundingSpent.clear();
    for (const r of this.db.prepare("SELECT account, period, settled_nano FROM usage").all() as Row[]) {
      this.book.get({ account: str(r.account), period: str(r.period) }).settled = big(r.settled_nano);
    }
    for (const r of this.stmt.openReservations.all() as Row[]) this.openInMemory(toReservation(r));
  }

  /**
   * Reads, and once a commit has failed for the store's sake (or a closing write is still failing), also
   * writes: a lock held past the busy timeout or a full disk fails writes while reads still answer. The
   * probe goes through the group commit, so it succeeds only if a request's write would now.
   */
  async ping(): Promise<void> {
    if (this.closed) throw new Error("store closed");
    this.db.prepare("SELECT 1").get();
    if (this.batcher.failure === undefined && ![...this.closing.values()].some((w) => w.failed)) return;
    await this.batcher.enqueue(() => this.stmt.writeProbe.run());
  }

  async close(): Promise<void> {
    if (this.closed) return;
    clearTimeout(this.closeRetryTimer);
    // A closing write still failing gets its last chance in the final commit; if that fails too, the
    // row stays open and the next start takes it over.
    for (const [id, write] of this.closing) {
      if (write.failed) this.closeDurably(id, write.run).catch(() => undefined);
    }
    this.batcher.flush();
    this.closed = true;
    await this.checkpointer?.stop();
    await this.kysely.destroy().catch(() => undefined);
    if (this.db.open) this.db.close();
  }

  // ── apps ────────────────────────────────────────────────────────────

  async createApp(app: NewApp): Promise<void> {
    this.appCache.clear();
    writeTransaction(this.db, () => {
      this.db
        .prepare("INSERT INTO apps (id, name, created_at) VALUES (?, ?, ?)")
        .run(app.id, app.name, app.createdAt);
      this.db
        .prepare("INSERT INTO app_keys (app_id, key_hash, created_at) VALUES (?, ?, ?)")
        .run(app.id, app.keyHash, app.createdAt);
      const addOrigin = this.db.prepare(
        "INSERT INTO app_origins (app_id, origin, created_at) VALUES (?, ?, ?)",
      );
      for (const origin of new Set(app.origins)) addOrigin.run(app.id, origin, app.createdAt);
    })();
  }

  private appWithOrigins(r: Row): AppWithOrigins {
    return {
      id: str(r.id),
      name: str(r.name),
      createdAt: n(r.created_at),
      sessionsPerMinute: nOrNull(r.sessions_per_minute),
      chatPerMinute: nOrNull(r.chat_per_minute),
      compromisedAt: nOrNull(r.compromised_at),
      origins: (this.stmt.origins.all(r.id) as Row[]).map((o) => str(o.origin)),
    };
  }

  /**
   * What the hot-path caches are keyed on: `data_version`, which moves when another connection (the
   * CLI) commits, and the trigger-maintained account-change counter, which moves on any write to the
   * tables behind a chat account (`data_version` does not see this connection's own writes). Each read
   * opens a read transaction, so:
   *  - `data_version` is read at most once per event-loop turn: another process's change is seen from
   *    the next turn on;
   *  - the counter is read again only when this connection has written something besides the group
   *    commit's reservation and ledger rows (`changesByOthers()`, no transaction), so a write by this
   *    process is seen by the very next read.
   */
  private dataVersion(): bigint {
    let dataVersion = this.turnDataVersion;
    if (dataVersion === undefined) {
      dataVersion = this.stmt.dataVersion.get() as bigint;
      this.turnDataVersion = dataVersion;
      setImmediate(this.forgetDataVersion);
    }
    return dataVersion;
  }

  private readonly forgetDataVersion = () => {
    this.turnDataVersion = undefined;
  };

  /** The account-change counter as of `dataVersion` (see above). */
  private accountChanges(dataVersion: bigint): bigint {
    const otherWrites = this.batcher.changesByOthers();
    const seen = this.accountChangesSeen;
    if (seen !== undefined && seen.otherWrites === otherWrites && seen.dataVersion === dataVersion) {
      return seen.value;
    }
    const value = this.stmt.accountChanges.get() as bigint;
    this.accountChangesSeen = { value, otherWrites, dataVersion };
    return value;
  }

  private cachedApp(appId: string): CachedApp {
    const version = this.dataVersion();
    if (version !== this.appCacheVersion || this.appCache.size > 10_000) {
      this.appCache.clear();
      this.appCacheVersion = version;
    }
    let entry = this.appCache.get(appId);
    if (!entry) {
      const r = this.stmt.app.get(appId) as Row | undefined;
      const keys = (this.stmt.appKeys.all(appId) as Row[]).map((k) => ({
        id: n(k.id),
        appId: str(k.app_id),
        keyHash: k.key_hash as Buffer,
        createdAt: n(k.created_at),
        expiresAt: nOrNull(k.expires_at),
      }));
      entry = {
        app: r ? this.appWithOrigins(r) : undefined,
        keys,
        expiring: keys.some((k) => k.expiresAt !== null),
      };
      this.appCache.set(appId, entry);
    }
    return entry;
  }

  async getApp(appId: string): Promise<AppWithOrigins | undefined> {
    return this.cachedApp(appId).app;
  }

  async listApps(): Promise<AppWithOrigins[]> {
    const rows = (await this.kysely
      .selectFrom("apps" as never)
      .selectAll()
      .orderBy("created_at" as never)
      .execute()) as Row[];
    return rows.map((r) => this.appWithOrigins(r));
  }

  async activeAppKeys(appId: string, now: number): Promise<readonly AppKeyRecord[]> {
    const { keys, expiring } = this.cachedApp(appId);
    // Usually no key expires (no rotation in progress): the cached list itself, not a copy per request.
    return expiring ? keys.filter((k) => k.expiresAt === null || k.expiresAt > now) : keys;
  }

  async rotateAppKey(
    appId: string,
    newKeyHash: Buffer,
    now: number,
    oldExpiresAt: number,
    compromised: boolean,
  ): Promise<void> {
    this.appCache.clear();
    writeTransaction(this.db, () => {
      this.db
        .prepare(
          "UPDATE app_keys SET expires_at = ? WHERE app_id = ? AND (expires_at IS NULL OR expires_at > ?)",
        )
        .run(oldExpiresAt, appId, oldExpiresAt);
      this.db
        .prepare("INSERT INTO app_keys (app_id, key_hash, created_at) VALUES (?, ?, ?)")
        .run(appId, newKeyHash, now);
      if (compromised) {
        this.db.prepare("UPDATE apps SET compromised_at = ? WHERE id = ?").run(Math.floor(now / 1000), appId);
      }
    })();
  }

  async addOrigin(appId: string, origin: string, now: number): Promise<boolean> {
    this.appCache.clear();
    const info = this.db
      .prepare("INSERT OR IGNORE INTO app_origins (app_id, origin, created_at) VALUES (?, ?, ?)")
      .run(appId, origin, now);
    return info.changes > 0;
  }

  async removeOrigin(appId: string, origin: string): Promise<boolean> {
    this.appCache.clear();
    const info = this.db
      .prepare("DELETE FROM app_origins WHERE app_id = ? AND origin = ?")
      .run(appId, origin);
    return info.changes > 0;
  }

  async setAppLimits(
    appId: string,
    limits: { sessionsPerMinute?: number | null; chatPerMinute?: number | null },
  ): Promise<void> {
    this.appCache.clear();
    // One transaction: both limits change together, or (the lock held elsewhere too long) neither does.
    writeTransaction(this.db, () => {
      if (limits.sessionsPerMinute !== undefined) {
        this.db
          .prepare("UPDATE apps SET sessions_per_minute = ? WHERE id = ?")
          .run(limits.sessionsPerMinute, appId);
      }
      if (limits.chatPerMinute !== undefined) {
        this.db.prepare("UPDATE apps SET chat_per_minute = ? WHERE id = ?").run(limits.chatPerMinute, appId);
      }
    })();
  }

  // ── payers, funding, connections ───────────────────────────────────

  async devConnect(input: DevConnectInput): Promise<ConnectionRecord> {
    return writeTransaction(this.db, () => {
      const existing = this.db.prepare("SELECT id FROM payers WHERE email = ?").get(input.payerEmail) as
        | Row
        | undefined;
      const payerId = existing ? str(existing.id) : `pay_${input.funding.id.slice(4)}`;
      if (!existing) {
        this.db
          .prepare("INSERT INTO payers (id, email, created_at) VALUES (?, ?, ?)")
          .run(payerId, input.payerEmail, input.now);
      }
      this.db
        .prepare("UPDATE funding SET replaced_at = ? WHERE payer_id = ? AND replaced_at IS NULL")
        .run(input.now, payerId);
      this.db
        .prepare(
          "INSERT INTO funding (id, payer_id, key_blob, fingerprint, source, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .run(
          input.funding.id,
          payerId,
          input.funding.keyBlob,
          input.funding.fingerprint,
          input.funding.source,
          input.now,
        );
      this.db
        .prepare(
          "UPDATE connections SET revoked_at = ? WHERE app_id = ? AND app_user_id = ? AND revoked_at IS NULL",
        )
        .run(input.now, input.appId, input.appUserId);
      // A connection is (app, appUserId, payer): the same payer again revives their row and its spend.
      const previous = this.db
        .prepare("SELECT id FROM connections WHERE app_id = ? AND app_user_id = ? AND payer_id = ? LIMIT 1")
        .get(input.appId, input.appUserId, payerId) as Row | undefined;
      const id = previous ? str(previous.id) : `con_${input.funding.id.slice(4)}`;
      if (previous) {
        this.db
          .prepare("UPDATE connections SET revoked_at = NULL, cap_nano = ?, updated_at = ? WHERE id = ?")
          .run(input.capNano, input.now, id);
      } else {
        this.db
          .prepare(
            "INSERT INTO connections (id, app_id, app_user_id, payer_id, cap_nano, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
          )
          .run(id, input.appId, input.appUserId, payerId, input.capNano, input.now, input.now);
      }
      return toConnection(this.db.prepare("SELECT * FROM connections WHERE id = ?").get(id) as Row);
    })();
  }

  async revokeConnection(appId: string, appUserId: string, now: number): Promise<boolean> {
    const info = this.db
      .prepare(
        "UPDATE connections SET revoked_at = ?, updated_at = ? WHERE app_id = ? AND app_user_id = ? AND revoked_at IS NULL",
      )
      .run(now, now, appId, appUserId);
    return info.changes > 0;
  }

  async lowerCap(connectionId: string, capNano: bigint, now: number): Promise<boolean> {
    // The WHERE makes "only lower" a property of the write itself, not of a read before it.
    const info = this.db
      .prepare(
        "UPDATE connections SET cap_nano = ?, updated_at = ? WHERE id = ? AND revoked_at IS NULL AND cap_nano > ?",
      )
      .run(capNano, now, connectionId, capNano);
    return info.changes > 0;
  }

  async isRegisteredOrigin(origin: string): Promise<boolean> {
    return this.db.prepare("SELECT 1 FROM app_origins WHERE origin = ? LIMIT 1").get(origin) !== undefined;
  }

  /**
   * Read on every chat request. Cached while the trigger-maintained `account_changes` counter and
   * `data_version` are unchanged: any write to connections, payers or funding — from any code or
   * process — bumps the counter, so a revoke, a cap change or a pause applies to the very next request.
   */
  async chatAccount(appId: string, appUserId: string): Promise<ChatAccount | undefined> {
    const dataVersion = this.dataVersion();
    const changes = this.accountChanges(dataVersion);
    const version = this.accountCacheVersion;
    if (
      version.dataVersion !== dataVersion ||
      version.changes !== changes ||
      this.accountCache.size >= 10_000
    ) {
      this.accountCache.clear();
      this.accountCacheVersion = { dataVersion, changes };
    }
    const key = `${appId}\u0000${appUserId}`;
    if (this.accountCache.has(key)) return this.accountCache.get(key);
    const r = this.stmt.chatAccount.get(appId, appUserId) as Row | undefined;
    const account = r
      ? {
          connection: toConnection(r),
          payerPaused: n(r.payer_paused) === 1,
          funding: r.f_id === null ? null : toFunding(r, "f_"),
        }
      : undefined;
    this.accountCache.set(key, account);
    return account;
  }

  async setFundingState(
    fundingId: string,
    state: FundingState,
    limitRemainingNano: bigint | null | undefined,
    now: number,
  ): Promise<void> {
    if (limitRemainingNano === undefined) {
      this.stmt.setFundingStateOnly.run(state, now, fundingId);
      return;
    }
    this.stmt.setFundingState.run(state, limitRemainingNano, now, fundingId);
    // The fresh limit already reflects what the key's settled requests cost; its open ones still count.
    let open = 0n;
    for (const r of this.open.values()) if (r.fundingId === fundingId) open += r.amountNano;
    this.fundingSpent.set(fundingId, open);
  }

  async getFunding(fundingId: string): Promise<FundingRecord | undefined> {
    const r = this.stmt.funding.get(fundingId) as Row | undefined;
    return r ? toFunding(r) : undefined;
  }

  async fundingKeyBlobs(): Promise<{ id: string; keyBlob: string }[]> {
    const rows = this.db
      .prepare("SELECT id, key_blob FROM funding WHERE key_blob <> ?")
      .all(ERASED_KEY_BLOB) as Row[];
    return rows.map((r) => ({ id: str(r.id), keyBlob: str(r.key_blob) }));
  }

  async replaceFundingKeyBlob(fundingId: string, from: string, to: string): Promise<boolean> {
    const changed = this.db
      .prepare("UPDATE funding SET key_blob = ? WHERE id = ? AND key_blob = ?")
      .run(to, fundingId, from);
    return changed.changes > 0;
  }

  // ── budgets, reservations, ledger ──────────────────────────────────

  async budget(ref: AccountRef, capNano: bigint): Promise<BudgetSnapshot> {
    const c = this.book.get(ref);
    return { capNano, settledNano: c.settled, reservedNano: c.reserved };
  }

  async admit(
    draft: ReservationDraft,
    capNano: bigint,
    decide: ReservationDecider,
    owner: string,
    leaseUntil: number,
    grantUse?: GrantUse,
  ): Promise<AdmitResult> {
    // Decision and counter update are synchronous: no await between reading the headroom and taking it.
    const headroom = this.book.headroom(draft, capNano);
    const uses = grantUse === undefined ? 0 : this.grantUsesOf(grantUse.grantId);
    if (grantUse && grantUse.maxUses !== null && uses >= grantUse.maxUses) {
      return { admitted: false, headroomNano: headroom, usedUp: true };
    }
    const amount = decide(headroom, this.fundingSpent.get(draft.fundingId) ?? 0n);
    if (amount === null || amount > headroom || amount < 0n)
      return { admitted: false, headroomNano: headroom };
    // Spelled out: on Node 20, `{ ...draft, amountNano, … }` costs ≈ 13 µs (a spread followed by more
    // properties makes V8 build a fresh hidden class each time) — more than the rest of admission.
    const reservation: ReservationRecord = {
      id: draft.id,
      account: draft.account,
      period: draft.period,
      appId: draft.appId,
      fundingId: draft.fundingId,
      model: draft.model,
      stream: draft.stream,
      createdAt: draft.createdAt,
      deadlineAt: draft.deadlineAt,
      amountNano: amount,
      generationId: null,
      owner,
      leaseUntil,
    };
    this.openInMemory(reservation);
    if (grantUse) this.grantUses.set(grantUse.grantId, uses + 1);
    try {
      await this.batcher.enqueue(() => {
        if (grantUse) this.stmt.useGrant.run(grantUse.grantId);
        this.stmt.insertReservation.run(
          draft.id,
          draft.account,
          draft.period,
          draft.appId,
          draft.fundingId,
          draft.model,
          draft.stream ? 1 : 0,
          amount,
          owner,
          leaseUntil,
          draft.createdAt,
          draft.deadlineAt,
        );
      });
    } catch (error) {
      // Not durable → never forwarded; give the headroom back.
      this.closeInMemory(reservation);
      // Not `uses`: another admission of this grant may have failed (and given its use back) before this one.
      if (grantUse) this.grantUses.set(grantUse.grantId, this.grantUsesOf(grantUse.grantId) - 1);
      throw error;
    }
    return { admitted: true, amountNano: amount, reservation };
  }

  async recordGenerationId(reservationId: string, generationId: string): Promise<void> {
    const open = this.open.get(reservationId);
    if (open) open.generationId = generationId;
    await this.batcher.enqueue(() => {
      this.stmt.setGenerationId.run(generationId, reservationId);
    });
  }

  /** Adds an open reservation to the counters: its account's and its funding key's. */
  private openInMemory(reservation: ReservationRecord): void {
    this.open.set(reservation.id, reservation);
    this.book.get(reservation).reserved += reservation.amountNano;
    this.addFundingSpent(reservation.fundingId, reservation.amountNano);
  }

  /** Removes the reservation from the counters exactly once; false when it was already closed. */
  private closeInMemory(reservation: ReservationRecord): boolean {
    const known = this.open.get(reservation.id);
    if (!known) return false;
    this.open.delete(reservation.id);
    this.book.get(known).reserved -= known.amountNano;
    this.addFundingSpent(known.fundingId, -known.amountNano);
    return true;
  }

  private addFundingSpent(fundingId: string, nano: bigint): void {
    this.fundingSpent.set(fundingId, (this.fundingSpent.get(fundingId) ?? 0n) + nano);
  }

  async settle(reservation: ReservationRecord, s: Settlement): Promise<boolean> {
    if (!this.closeInMemory(reservation)) return false;
    this.book.get(reservation).settled += s.costNano;
    this.addFundingSpent(reservation.fundingId, s.costNano);
    await this.closeDurably(reservation.id, () => {
      const closed = this.stmt.closeReservation.run(reservation.id);
      if (closed.changes === 0) return;
      const entered = this.stmt.insertLedger.run(
        reservation.id,
        reservation.account,
        reservation.period,
        reservation.appId,
        reservation.fundingId,
        s.costNano,
        s.generationId ?? reservation.generationId,
        reservation.model,
        s.promptTokens,
        s.completionTokens,
        s.unreconciled ? 1 : 0,
        s.at,
      );
      // The month's usage is the sum of its ledger: an entry that already existed adds nothing.
      if (entered.changes > 0) this.stmt.addUsage.run(reservation.account, reservation.period, s.costNano);
    });
    return true;
  }

  async release(reservation: ReservationRecord): Promise<void> {
    if (!this.closeInMemory(reservation)) return;
    // A grant's use is consumed at admission and refunded on a proven release.
    const grantId = reservation.account.startsWith("g:") ? reservation.account.slice(2) : null;
    if (grantId !== null) this.grantUses.set(grantId, Math.max(0, this.grantUsesOf(grantId) - 1));
    await this.closeDurably(reservation.id, () => {
      const closed = this.stmt.closeReservation.run(reservation.id);
      if (closed.changes > 0 && grantId !== null) this.stmt.refundGrantUse.run(grantId);
    });
  }

  /**
   * Commits a closing write (idempotent: it deletes the open row, then records what the deletion
   * allows). If the commit fails, the error is passed on and the write is kept for retryFailedCloses.
   */
  private async closeDurably(reservationId: string, run: () => void): Promise<void> {
    const write = { run, failed: false };
    this.closing.set(reservationId, write);
    try {
      await this.batcher.enqueue(run);
      this.closing.delete(reservationId);
    } catch (error) {
      write.failed = true;
      this.scheduleCloseRetry();
      throw error;
    }
  }

  private scheduleCloseRetry(): void {
    if (this.closed || this.closeRetryTimer !== undefined) return;
    this.closeRetryTimer = setTimeout(() => {
      this.closeRetryTimer = undefined;
      void this.retryFailedCloses();
    }, CLOSE_RETRY_MS);
    this.closeRetryTimer.unref();
  }

  /**
   * Retries every closing write whose commit failed (one that fails again is kept and rescheduled by
   * closeDurably); resolves to how many have still not committed.
   */
  async retryFailedCloses(): Promise<number> {
    const failed = [...this.closing].filter(([, write]) => write.failed);
    const results = await Promise.allSettled(failed.map(([id, write]) => this.closeDurably(id, write.run)));
    return results.filter((result) => result.status === "rejected").length;
  }

  private grantUsesOf(grantId: string): number {
    let uses = this.grantUses.get(grantId);
    if (uses === undefined) {
      const row = this.db.prepare("SELECT uses FROM grants WHERE id = ?").get(grantId) as Row | undefined;
      uses = row ? n(row.uses) : 0;
      this.grantUses.set(grantId, uses);
    }
    return uses;
  }

  // ── one-time grants: the chat path's lookup here, the rest in grant-queries.ts ──

  async grantByTokenHash(tokenHash: Buffer): Promise<GrantAccount | undefined> {
    const r = this.stmt.grantByTokenHash.get(tokenHash) as Row | undefined;
    if (!r) return undefined;
    return {
      grant: toGrant(r, this.knownGrantUses),
      payerPaused: n(r.payer_paused) === 1,
      funding: r.f_id === null ? null : toFunding(r, "f_"),
    };
  }

  async heartbeat(owner: string, leaseUntil: number): Promise<void> {
    await this.batcher.enqueue(() => {
      this.stmt.heartbeat.run(leaseUntil, owner);
    });
  }

  async claimExpired(
    owner: string,
    now: number,
    leaseUntil: number,
    takeOverAll: boolean,
    limit: number,
  ): Promise<ReservationRecord[]> {
    return writeTransaction(this.db, () => {
      const rows = this.stmt.expired.all(now, takeOverAll ? 1 : 0, owner, limit) as Row[];
      // A row whose closing write has not committed yet is already closed here: it is not claimed again.
      return rows
        .filter((r) => !this.closing.has(str(r.id)))
        .map((r) => {
          this.stmt.claim.run(owner, leaseUntil, r.id);
          const res = { ...toReservation(r), owner, leaseUntil };
          const known = this.open.get(res.id);
          if (known) {
            known.owner = owner;
            known.leaseUntil = leaseUntil;
          } else {
            // Not known to this process (rebuildBook loads every open row): count it as rebuildBook would.
            this.openInMemory(res);
          }
          return res;
        });
    })();
  }

  async openReservations(): Promise<ReservationRecord[]> {
    return (this.stmt.openReservations.all() as Row[]).map(toReservation);
  }

  async unreconciledSince(since: number, limit: number, afterRequestId = ""): Promise<LedgerEntry[]> {
    const rows = this.db.prepare(UNRECONCILED_SINCE_SQL).all(since, afterRequestId, limit) as Row[];
    return rows.map(toLedger);
  }

  async adjust(entry: LedgerEntry, realCostNano: bigint, at: number): Promise<void> {
    const delta = realCostNano - entry.amountNano;
    let applied = false;
    await this.batcher.enqueue(() => {
      applied = false; // a batch that rolled back is retried write by write: count only the committed run
      const inserted = this.db
        .prepare(
          `INSERT OR IGNORE INTO ledger (request_id, kind, account, period, app_id, funding_id, amount_nano,
             generation_id, model, prompt_tokens, completion_tokens, unreconciled, created_at)
           VALUES (?, 'adjust', ?, ?, ?, ?, ?, ?, ?, NULL, NULL, 0, ?)`,
        )
        .run(
          entry.requestId,
          entry.account,
          entry.period,
          entry.appId,
          entry.fundingId,
          delta,
          entry.generationId,
          entry.model,
          at,
        );
      if (inserted.changes === 0) return;
      this.db
        .prepare("UPDATE usage SET settled_nano = settled_nano + ? WHERE account = ? AND period = ?")
        .run(delta, entry.account, entry.period);
      applied = true;
    });
    if (applied) {
      this.book.get(entry).settled += delta;
      this.addFundingSpent(entry.fundingId, delta);
    }
  }

  async ledger(filter: { account?: string } = {}): Promise<LedgerEntry[]> {
    const rows =
      filter.account === undefined
        ? this.db.prepare(`SELECT * FROM ledger ORDER BY ${LEDGER_ORDER}`).all()
        : this.db
            .prepare(`SELECT * FROM ledger WHERE account = ? ORDER BY ${LEDGER_ORDER}`)
            .all(filter.account);
    return (rows as Row[]).map(toLedger);
  }

  // ── payer accounts and funding (issue 5): the SQL is in payer-queries.ts ──
  private readonly payers = new SqlitePayerQueries(() => this.db);
  createPayer: Store["createPayer"] = (payer) => this.payers.createPayer(payer);
  payerByEmail: Store["payerByEmail"] = (email) => this.payers.payerByEmail(email);
  getPayer: Store["getPayer"] = (payerId) => this.payers.getPayer(payerId);
  setPayerPassword: Store["setPayerPassword"] = (payerId, passwordHash, now) =>
    this.payers.setPayerPassword(payerId, passwordHash, now);
  markPayerEmailVerified: Store["markPayerEmailVerified"] = (payerId, now) =>
    this.payers.markPayerEmailVerified(payerId, now);
  deletePayer: Store["deletePayer"] = (payerId, now) => this.payers.deletePayer(payerId, now);
  claimPayerEmail: Store["claimPayerEmail"] = (unconfirmedPayerId, payer, now) =>
    this.payers.claimPayerEmail(unconfirmedPayerId, payer, now);
  createPayerSession: Store["createPayerSession"] = (session) => this.payers.createPayerSession(session);
  payerSession: Store["payerSession"] = (idHash, now) => this.payers.payerSession(idHash, now);
  deletePayerSession: Store["deletePayerSession"] = (idHash) => this.payers.deletePayerSession(idHash);
  createEmailToken: Store["createEmailToken"] = (token) => this.payers.createEmailToken(token);
  peekEmailToken: Store["peekEmailToken"] = (tokenHash, purpose, now) =>
    this.payers.peekEmailToken(tokenHash, purpose, now);
  consumeEmailToken: Store["consumeEmailToken"] = (tokenHash, purpose, now) =>
    this.payers.consumeEmailToken(tokenHash, purpose, now);
  createOAuthAttempt: Store["createOAuthAttempt"] = (attempt) => this.payers.createOAuthAttempt(attempt);
  takeOAuthAttempt: Store["takeOAuthAttempt"] = (sessionHash, stateHash, now) =>
    this.payers.takeOAuthAttempt(sessionHash, stateHash, now);
  addOutboxMessage: Store["addOutboxMessage"] = (message) => this.payers.addOutboxMessage(message);
  outboxMessages: Store["outboxMessages"] = (to) => this.payers.outboxMessages(to);
  fundingHistory: Store["fundingHistory"] = (payerId, limit) => this.payers.fundingHistory(payerId, limit);
  replacePayerFunding: Store["replacePayerFunding"] = (payerId, next, now) =>
    this.payers.replacePayerFunding(payerId, next, now);
  eraseRetiredFundingKeys: Store["eraseRetiredFundingKeys"] = (now) =>
    this.payers.eraseRetiredFundingKeys(now);

  // ── one-time grants' admin paths: the SQL is in grant-queries.ts ──
  private readonly grants = new SqliteGrantQueries(() => this.db, this.knownGrantUses);
  createGrant: Store["createGrant"] = (grant) => this.grants.createGrant(grant);
  grantsOfPayer: Store["grantsOfPayer"] = (payerId) => this.grants.grantsOfPayer(payerId);
  revokeGrant: Store["revokeGrant"] = (grantId, payerId, now) =>
    this.grants.revokeGrant(grantId, payerId, now);
  putGrantHandoff: Store["putGrantHandoff"] = (sessionJti, appId, tokenBlob, expiresAt) =>
    this.grants.putGrantHandoff(sessionJti, appId, tokenBlob, expiresAt);
  takeGrantHandoff: Store["takeGrantHandoff"] = (sessionJti, appId, now) =>
    this.grants.takeGrantHandoff(sessionJti, appId, now);

  // ── consent popup and payer dashboard (issue 6): the SQL is in consent-queries.ts ──
  private readonly consent = new SqliteConsentQueries(() => this.db);
  createConsentSession: Store["createConsentSession"] = (s) => this.consent.createConsentSession(s);
  consentSession: Store["consentSession"] = (idHash) => this.consent.consentSession(idHash);
  consentAnswered: Store["consentAnswered"] = (jti) => this.consent.consentAnswered(jti);
  answerConsentSession: Store["answerConsentSession"] = (idHash, outcome, now) =>
    this.consent.answerConsentSession(idHash, outcome, now);
  approveConnection: Store["approveConnection"] = (input) => this.consent.approveConnection(input);
  payerConnections: Store["payerConnections"] = (payerId) => this.consent.payerConnections(payerId);
  setConnectionCap: Store["setConnectionCap"] = (id, payerId, capNano, now) =>
    this.consent.setConnectionCap(id, payerId, capNano, now);
  revokePayerConnection: Store["revokePayerConnection"] = (id, payerId, now) =>
    this.consent.revokePayerConnection(id, payerId, now);
  setPayerPaused: Store["setPayerPaused"] = (payerId, paused) => this.consent.setPayerPaused(payerId, paused);
  payerMonthlySpend: Store["payerMonthlySpend"] = (payerId, from) =>
    this.consent.payerMonthlySpend(payerId, from);
  payerRecentRequests: Store["payerRecentRequests"] = (payerId, limit) =>
    this.consent.payerRecentRequests(payerId, limit);
}

export async function openSqliteStore(
  file: string,
  options: { backgroundCheckpoints?: boolean } = {},
): Promise<SqliteStore> {
  const store = new SqliteStore({ file, ...options });
  await store.migrate();
  return store;
}
