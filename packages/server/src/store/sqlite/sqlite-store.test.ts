import { spawn } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Kysely, Migrator, SqliteDialect } from "kysely";
import { describe, expect, it } from "vitest";
import { storeContract } from "../contract.js";
import type { LedgerEntry, ReservationRecord } from "../port.js";
import { openSqlite } from "./database.js";
import { SQLITE_MIGRATIONS } from "./migrations.js";
import { openSqliteStore, type SqliteStore, UNRECONCILED_SINCE_SQL } from "./sqlite-store.js";

storeContract("sqlite (memory)", () => openSqliteStore(":memory:"));

const tempFile = () => path.join(fs.mkdtempSync(path.join(os.tmpdir(), "wattfare-store-")), "w.db");

const createTestApp = (store: SqliteStore) =>
  store.createApp({ id: "app00001", name: "A", keyHash: Buffer.alloc(32, 1), origins: [], createdAt: 0 });

/** Connects alice to app00001, paid by `email` with funding row `fundingId`. */
const connectAlice = (
  store: SqliteStore,
  capNano: bigint,
  fundingId: string,
  email = "a@example.com",
  now = 0,
) =>
  store.devConnect({
    appId: "app00001",
    appUserId: "alice",
    capNano,
    payerEmail: email,
    funding: { id: fundingId, keyBlob: "b", fingerprint: "f", source: "dev" },
    now,
  });

/** A store on a fresh file with app00001, and alice connected with cap `capNano` (funding fnd_a0000000). */
async function storeWithAlice(capNano: bigint) {
  const file = tempFile();
  const store = await openSqliteStore(file);
  await createTestApp(store);
  const c = await connectAlice(store, capNano, "fnd_a0000000");
  return { file, store, c };
}

/** Admits reservation `id` of `amount` on alice's connection `c` (cap 1000 nano), or throws. */
async function reserve(store: SqliteStore, c: { id: string }, id: string, amount: bigint) {
  const a = await store.admit(
    reservationDraft(id, `c:${c.id}`, "fnd_a0000000"),
    1000n,
    () => amount,
    "i",
    10,
  );
  if (!a.admitted) throw new Error("not admitted");
  return a.reservation;
}

/**
 * Another connection (as the CLI could) holds the file's write lock, and the store stops waiting for it
 * at once, so its writes fail as they would past the busy timeout. Returns the release.
 */
function holdWriteLock(store: SqliteStore, file: string): () => void {
  store.db.pragma("busy_timeout = 0");
  const blocker = openSqlite(file);
  blocker.exec("BEGIN IMMEDIATE");
  return () => {
    blocker.exec("ROLLBACK");
    blocker.close();
  };
}

/** A reservation draft for `id` on a connection's account, paid by funding row `fundingId`. */
const reservationDraft = (id: string, account: string, fundingId: string) => ({
  id,
  account,
  period: "2026-11",
  appId: "app00001",
  fundingId,
  model: "m",
  stream: false,
  createdAt: 0,
  deadlineAt: 1,
});

/** A database at migration 0005 (before the lean hot-path tables) holding a settled, a released and an open reservation. */
async function database0005(file: string): Promise<void> {
  const db = openSqlite(file);
  const kysely = new Kysely<unknown>({ dialect: new SqliteDialect({ database: db }) });
  const migrator = new Migrator({ db: kysely, provider: { getMigrations: async () => SQLITE_MIGRATIONS } });
  const to0005 = await migrator.migrateTo("0005_account_changes");
  if (to0005.error) throw to0005.error;
  const reservation = db.prepare(
    `INSERT INTO reservations (id, account, period, app_id, funding_id, model, stream, amount_nano, generation_id,
         state, owner, lease_until, created_at, deadline_at, closed_at)
       VALUES (?, 'c:con_a', '2026-11', 'app00001', ?, 'm', 0, ?, ?, ?, 'inst_old', 5, ?, 99, NULL)`,
  );
  reservation.run("req_settled", "fnd_old", 500n, "gen-settled", "settled", 1);
  reservation.run("req_released", "fnd_old", 400n, null, "released", 2);
  reservation.run("req_open", "fnd_new", 300n, "gen-open", "open", 3);
  const ledger = db.prepare(
    `INSERT INTO ledger (request_id, kind, account, period, app_id, amount_nano, generation_id, model,
         prompt_tokens, completion_tokens, unreconciled, created_at)
       VALUES ('req_settled', ?, 'c:con_a', '2026-11', 'app00001', ?, 'gen-settled', 'm', NULL, NULL, ?, ?)`,
  );
  ledger.run("settle", 500n, 1, 10);
  ledger.run("adjust", -120n, 0, 20);
  db.prepare(
    "INSERT INTO usage (account, period, settled_nano, requests) VALUES ('c:con_a', '2026-11', 380, 1)",
  ).run();
  await kysely.destroy();
}

describe("SQLite adapter", () => {
  it("rebuilds its budget counters from the file after a restart: settled usage and open reservations", async () => {
    const file = tempFile();
    const first = await openSqliteStore(file);
    await createTestApp(first);
    const c = await connectAlice(first, 1000n, "fnd_a0000000");
    const account = `c:${c.id}`;
    const a = await first.admit(
      reservationDraft("r1", account, "fnd_a0000000"),
      1000n,
      () => 300n,
      "inst_a",
      10,
    );
    await first.admit(reservationDraft("r2", account, "fnd_a0000000"), 1000n, () => 200n, "inst_a", 10);
    if (!a.admitted) throw new Error("not admitted");
    await first.settle(a.reservation, {
      costNano: 250n,
      generationId: null,
      promptTokens: null,
      completionTokens: null,
      unreconciled: false,
      at: 1,
    });
    await first.close();

    const second = await openSqliteStore(file);
    expect(await second.budget({ account, period: "2026-11" }, 1000n)).toEqual({
      capNano: 1000n,
      settledNano: 250n,
      reservedNano: 200n,
    });
    expect((await second.openReservations()).map((r) => r.id)).toEqual(["r2"]);
    await second.close();
  });

  it("keeps a reservation whose closing write failed closed: the reconciler does not claim it, and the write commits on retry", async () => {
    const { file, store, c } = await storeWithAlice(1000n);
    const ref = { account: `c:${c.id}`, period: "2026-11" };
    const settled = await reserve(store, c, "r1", 300n);
    const released = await reserve(store, c, "r2", 300n);
    const unlock = holdWriteLock(store, file);
    await expect(
      store.settle(settled, {
        costNano: 100n,
        generationId: "gen-1",
        promptTokens: null,
        completionTokens: null,
        unreconciled: false,
        at: 1,
      }),
    ).rejects.toThrow(/locked|busy/i);
    await expect(store.release(released)).rejects.toThrow(/locked|busy/i);
    expect(await store.budget(ref, 1000n)).toMatchObject({ settledNano: 100n, reservedNano: 0n });
    expect(await store.retryFailedCloses()).toBe(2); // still locked
    unlock();

    // Both rows are still open in the file with expired leases, but already closed in memory.
    expect(await store.claimExpired("inst_b", 1_000, 2_000, true, 10)).toEqual([]);
    expect(await store.budget(ref, 1000n)).toMatchObject({ settledNano: 100n, reservedNano: 0n });
    expect(await store.retryFailedCloses()).toBe(0);
    expect(await store.openReservations()).toEqual([]);
    await store.close();

    const restarted = await openSqliteStore(file);
    expect(await restarted.budget(ref, 1000n)).toMatchObject({ settledNano: 100n, reservedNano: 0n });
    const ledger = restarted.db.prepare("SELECT request_id, amount_nano FROM ledger").all();
    expect(ledger).toEqual([{ request_id: "r1", amount_nano: 100n }]);
    await restarted.close();
  });

  it("answers ping without writing while commits go through, and fails it while a commit failed for the store's sake until a probe write commits", async () => {
    const { file, store, c } = await storeWithAlice(1000n);
    const reservation = await reserve(store, c, "r1", 300n);
    const probes = () => store.db.prepare("SELECT COUNT(*) FROM write_probe").pluck().get();
    await store.ping();
    expect(probes()).toBe(0n);

    const unlock = holdWriteLock(store, file);
    await store.ping(); // reads still answer, and no write has failed yet
    await expect(reserve(store, c, "r2", 100n)).rejects.toThrow(/locked|busy/i);
    await expect(store.ping()).rejects.toThrow(/locked|busy/i);
    unlock();
    await store.ping();
    expect(probes()).toBe(1n);
    await store.ping();
    expect(store.db.prepare("SELECT n FROM write_probe").pluck().get()).toBe(1n); // healthy again: no write

    // A closing write still failing (and waiting for its retry) keeps ping writing until it commits.
    const again = holdWriteLock(store, file);
    await expect(store.release(reservation)).rejects.toThrow(/locked|busy/i);
    again();
    await store.ping();
    await store.ping();
    expect(store.db.prepare("SELECT n FROM write_probe").pluck().get()).toBe(3n);
    expect(await store.retryFailedCloses()).toBe(0);
    await store.ping();
    expect(store.db.prepare("SELECT n FROM write_probe").pluck().get()).toBe(3n);
    await store.close();
  });

  it("counts in what a funding key spent a reservation another connection opened, once claimed, and an adjustment of a charge", async () => {
    const { file, store, c } = await storeWithAlice(1000n);
    const account = `c:${c.id}`;
    const spent = async () => {
      let seen = -1n;
      await store.admit(
        reservationDraft("probe", account, "fnd_a0000000"),
        1000n,
        (_room, s) => {
          seen = s;
          return null;
        },
        "i",
        10,
      );
      return seen;
    };
    // As a second process could: an open row this process never admitted.
    const other = openSqlite(file);
    other
      .prepare(
        `INSERT INTO reservations (id, account, period, app_id, funding_id, model, stream, amount_nano,
           generation_id, owner, lease_until, created_at, deadline_at)
         VALUES ('r_other', ?, '2026-11', 'app00001', 'fnd_a0000000', 'm', 0, 300, NULL, 'inst_x', 0, 0, 60000)`,
      )
      .run(account);
    other.close();
    expect(await spent()).toBe(0n);
    const [claimed] = await store.claimExpired("i", 1_000, 2_000, true, 10);
    expect(await spent()).toBe(300n);
    await store.settle(claimed as ReservationRecord, {
      costNano: 300n,
      generationId: "gen-1",
      promptTokens: null,
      completionTokens: null,
      unreconciled: true,
      at: 1,
    });
    expect(await spent()).toBe(300n);
    const [entry] = await store.ledger();
    await store.adjust(entry as LedgerEntry, 100n, 2);
    expect(await spent()).toBe(100n);
    await store.close();
  });

  it("commits a closing write that failed when the store closes before its retry", async () => {
    const { file, store, c } = await storeWithAlice(1000n);
    const reservation = await reserve(store, c, "r1", 300n);
    const unlock = holdWriteLock(store, file);
    await expect(store.release(reservation)).rejects.toThrow(/locked|busy/i);
    unlock();
    await store.close();
    const restarted = await openSqliteStore(file);
    expect(await restarted.openReservations()).toEqual([]);
    expect(await restarted.budget({ account: `c:${c.id}`, period: "2026-11" }, 1000n)).toMatchObject({
      settledNano: 0n,
      reservedNano: 0n,
    });
    await restarted.close();
  });

  it("gives a grant's uses back when two of its admissions fail together", async () => {
    const { file, store, c } = await storeWithAlice(1000n);
    await store.createGrant({
      id: "grt_1",
      appId: "app00001",
      tokenHash: Buffer.alloc(32, 2),
      payerId: c.payerId,
      maxNano: 1000n,
      maxUses: 2,
      expiresAt: 10_000,
      createdAt: 0,
    });
    const grantUse = { grantId: "grt_1", maxUses: 2 };
    const admit = (id: string) =>
      store.admit(
        { ...reservationDraft(id, "g:grt_1", "fnd_a0000000"), period: "-" },
        1000n,
        () => 100n,
        "inst_a",
        10,
        grantUse,
      );
    const unlock = holdWriteLock(store, file);
    const failed = await Promise.allSettled([admit("r1"), admit("r2")]);
    expect(failed.map((f) => f.status)).toEqual(["rejected", "rejected"]);
    unlock();
    const admitted = await Promise.all([admit("r3"), admit("r4")]);
    expect(admitted.map((a) => a.admitted)).toEqual([true, true]);
    await store.close();
  });

  it("keeps a chat account cached across its own reservation and ledger writes, not across an account write", async () => {
    const store = await openSqliteStore(tempFile());
    await createTestApp(store);
    const c = await connectAlice(store, 1_000_000n, "fnd_a0000000");
    const cached = await store.chatAccount("app00001", "alice");
    const admitted = await store.admit(
      reservationDraft("req_cache", `c:${c.id}`, "fnd_a0000000"),
      1_000_000n,
      () => 100n,
      "inst",
      10,
    );
    if (!admitted.admitted) throw new Error("not admitted");
    await store.settle(admitted.reservation, {
      costNano: 50n,
      generationId: "gen-1",
      promptTokens: 1,
      completionTokens: 1,
      unreconciled: false,
      at: 2,
    });
    expect(await store.chatAccount("app00001", "alice")).toBe(cached); // the same object: still cached
    await store.lowerCap(c.id, 500_000n, 3);
    const fresh = await store.chatAccount("app00001", "alice");
    expect(fresh).not.toBe(cached);
    expect(fresh?.connection.capNano).toBe(500_000n);
    await store.close();
  });

  it("sees a connection changed by another process (the CLI) from the next event-loop turn on", async () => {
    // Another process's commit can only reach the server through I/O, so at least a turn passes.
    const nextTurn = () => new Promise((resolve) => setImmediate(resolve));
    const file = tempFile();
    const server = await openSqliteStore(file);
    const cli = await openSqliteStore(file);
    await createTestApp(cli);
    const connect = (capNano: bigint, n: number) =>
      cli.devConnect({
        appId: "app00001",
        appUserId: "alice",
        capNano,
        payerEmail: "a@example.com",
        funding: { id: `fnd_a000000${n}`, keyBlob: "b", fingerprint: "f", source: "dev" },
        now: n,
      });
    await connect(100n, 1);
    expect((await server.chatAccount("app00001", "alice"))?.connection.capNano).toBe(100n);
    expect((await server.chatAccount("app00001", "alice"))?.connection.capNano).toBe(100n); // cached
    await connect(200n, 2);
    await nextTurn();
    expect((await server.chatAccount("app00001", "alice"))?.connection.capNano).toBe(200n);
    cli.db.prepare("UPDATE payers SET paused = 1").run();
    await nextTurn();
    expect((await server.chatAccount("app00001", "alice"))?.payerPaused).toBe(true);
    await cli.revokeConnection("app00001", "alice", 3);
    await nextTurn();
    expect(await server.chatAccount("app00001", "alice")).toBeUndefined();
    // And this process's own writes, which data_version does not see, are caught by the triggers at once.
    await connect(300n, 4);
    await nextTurn();
    expect((await server.chatAccount("app00001", "alice"))?.connection.capNano).toBe(300n);
    server.db.prepare("UPDATE connections SET cap_nano = 7").run();
    expect((await server.chatAccount("app00001", "alice"))?.connection.capNano).toBe(7n);
    await cli.close();
    await server.close();
  });

  it("keeps a month's spend when the same payer revokes and reconnects, but not for a new payer", async () => {
    const store = await openSqliteStore(":memory:");
    await createTestApp(store);
    const first = await connectAlice(store, 100n, "fnd_p0000001", "p@example.com");
    const payerId = first.payerId;
    const account = `c:${first.id}`;
    const a = await store.admit(reservationDraft("r1", account, "fnd_p0000001"), 100n, () => 80n, "inst", 10);
    if (!a.admitted) throw new Error("not admitted");
    await store.settle(a.reservation, {
      costNano: 80n,
      generationId: null,
      promptTokens: null,
      completionTokens: null,
      unreconciled: false,
      at: 1,
    });
    await store.revokeConnection("app00001", "alice", 2);
    const again = await store.approveConnection({
      appId: "app00001",
      appUserId: "alice",
      payerId,
      capNano: 100n,
      switchPayer: false,
      newConnectionId: "con_fresh",
      now: 3,
    });
    if (!again.ok) throw new Error("not approved");
    expect(again.connection.id).toBe(first.id);
    expect(
      (await store.budget({ account: `c:${again.connection.id}`, period: "2026-11" }, 100n)).settledNano,
    ).toBe(80n);
    const other = await connectAlice(store, 100n, "fnd_o0000001", "other@example.com", 4);
    expect(other.id).not.toBe(first.id);
    expect((await store.budget({ account: `c:${other.id}`, period: "2026-11" }, 100n)).settledNano).toBe(0n);
    await store.close();
  });

  it("migrates a 0005 database to open-only reservations and a ledger that carries each row's funding id", async () => {
    const file = tempFile();
    await database0005(file);

    const store = await openSqliteStore(file);
    const open = await store.openReservations();
    expect(open.map((r) => [r.id, r.fundingId, r.amountNano, r.generationId, r.owner])).toEqual([
      ["req_open", "fnd_new", 300n, "gen-open", "inst_old"],
    ]);
    expect((await store.ledger()).map((e) => [e.requestId, e.kind, e.fundingId, e.amountNano])).toEqual([
      ["req_settled", "settle", "fnd_old", 500n],
      ["req_settled", "adjust", "fnd_old", -120n],
    ]);
    expect(await store.budget({ account: "c:con_a", period: "2026-11" }, 1000n)).toEqual({
      capNano: 1000n,
      settledNano: 380n,
      reservedNano: 300n,
    });
    await store.close();
  });

  it("keeps a 0008 database's email links through 0009, which adds claim links: live ones usable, spent ones spent", async () => {
    const file = tempFile();
    const db = openSqlite(file);
    const kysely = new Kysely<unknown>({ dialect: new SqliteDialect({ database: db }) });
    const migrator = new Migrator({ db: kysely, provider: { getMigrations: async () => SQLITE_MIGRATIONS } });
    const to0008 = await migrator.migrateTo("0008_funding_keep_for_recheck");
    if (to0008.error) throw to0008.error;
    db.prepare(
      "INSERT INTO payers (id, email, password_hash, created_at) VALUES ('pay_a', 'a@example.com', 'h', 1)",
    ).run();
    const token = (purpose: string, fill: number) => ({
      tokenHash: Buffer.alloc(32, fill),
      payerId: "pay_a",
      purpose,
      email: "a@example.com",
      createdAt: 1,
      expiresAt: 100,
    });
    const insert = db.prepare(
      "INSERT INTO payer_email_tokens (token_hash, payer_id, purpose, email, created_at, expires_at) VALUES (@tokenHash, @payerId, @purpose, @email, @createdAt, @expiresAt)",
    );
    insert.run(token("verify", 1));
    expect(() => insert.run(token("claim", 2))).toThrow(/CHECK constraint/);
    // Spent links must stay spent through the table's rebuild.
    const spend = db.prepare("UPDATE payer_email_tokens SET used_at = 2 WHERE token_hash = ?");
    insert.run(token("reset", 3));
    spend.run(Buffer.alloc(32, 3));
    insert.run(token("verify", 4));
    spend.run(Buffer.alloc(32, 4));
    await kysely.destroy();

    const store = await openSqliteStore(file);
    await store.createEmailToken({ ...token("claim", 2), purpose: "claim" });
    expect(await store.consumeEmailToken(Buffer.alloc(32, 1), "verify", 2)).toEqual({
      payerId: "pay_a",
      email: "a@example.com",
    });
    expect(await store.peekEmailToken(Buffer.alloc(32, 2), "claim", 2)).toEqual({
      payerId: "pay_a",
      email: "a@example.com",
    });
    expect(await store.consumeEmailToken(Buffer.alloc(32, 3), "reset", 3)).toBeUndefined();
    expect(await store.consumeEmailToken(Buffer.alloc(32, 4), "verify", 3)).toBeUndefined();
    await store.close();
  });

  it("applies a migration whole or not at all: a failing statement leaves the 0005 tables and rows as they were", async () => {
    const file = tempFile();
    await database0005(file);
    const blocker = openSqlite(file);
    blocker.exec("CREATE TABLE open_reservations (x)"); // 0006 creates this table after rebuilding the ledger
    blocker.close();
    await expect(openSqliteStore(file)).rejects.toThrow(/open_reservations already exists/);

    const db = openSqlite(file);
    const columns = (table: string) =>
      (db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map((c) => c.name);
    expect(columns("ledger")).toContain("id");
    expect(columns("ledger")).not.toContain("funding_id");
    expect(columns("reservations")).toContain("state");
    expect(db.prepare("SELECT COUNT(*) FROM reservations").pluck().get()).toBe(3n);
    expect(db.prepare("SELECT COUNT(*) FROM ledger").pluck().get()).toBe(2n);
    expect(db.prepare("SELECT name FROM kysely_migration ORDER BY name").pluck().all()).not.toContain(
      "0006_lean_hot_path",
    );
    db.exec("DROP TABLE open_reservations");
    db.close();

    const store = await openSqliteStore(file);
    expect((await store.openReservations()).map((r) => r.id)).toEqual(["req_open"]);
    expect((await store.ledger()).map((e) => e.fundingId)).toEqual(["fnd_old", "fnd_old"]);
    await store.close();
  });

  it("does not migrate a database another live server is serving, but opens it once that server is gone", async () => {
    const file = tempFile();
    await database0005(file);
    // Another process holds the server lock, as a running server does.
    const holdLock = () => {
      const child = spawn(
        process.execPath,
        [
          "--input-type=module",
          "-e",
          `import { acquireServerLock } from ${JSON.stringify(new URL("../../../dist/store/sqlite/server-lock.js", import.meta.url).href)};
           acquireServerLock(${JSON.stringify(file)}); process.stdout.write("held\\n"); process.stdin.resume();`,
        ],
        { stdio: ["pipe", "pipe", "inherit"] },
      );
      return once(child.stdout as NodeJS.ReadableStream, "data").then(() => child);
    };
    const server = await holdLock();
    await expect(openSqliteStore(file)).rejects.toThrow(
      new RegExp(
        `server \\(pid ${server.pid}\\) is serving .* stop it before migrating \\(0006_lean_hot_path, 0007_write_probe, 0008_funding_keep_for_recheck, 0009_claim_links pending\\)`,
      ),
    );
    server.kill("SIGKILL"); // gone, as after kill -9: nothing to clean up
    await once(server, "exit");
    const store = await openSqliteStore(file);
    await store.close();
    // Up to date, the CLI opens the file beside a live server, as it always could.
    const again = await holdLock();
    const cli = await openSqliteStore(file);
    expect(await cli.openReservations()).toHaveLength(1);
    await cli.close();
    again.kill("SIGKILL");
  });

  it("keeps the ledger to one B-tree on the hot path; the re-check reads the unreconciled rows through a partial index", async () => {
    const store = await openSqliteStore(":memory:");
    const indexes = store.db
      .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'ledger'")
      .all() as { name: string; sql: string | null }[];
    // A settled row with unreconciled = 0 touches no index: only the partial one exists.
    expect(indexes.map((i) => [i.name, i.sql?.includes("WHERE unreconciled = 1")])).toEqual([
      ["ledger_unreconciled", true],
    ]);
    const recheckPlan = store.db.prepare(`EXPLAIN QUERY PLAN ${UNRECONCILED_SINCE_SQL}`).all(0, "", 10) as {
      detail: string;
    }[];
    expect(recheckPlan.map((r) => r.detail).join(" | ")).toContain("USING INDEX ledger_unreconciled");
    await store.close();
  });

  it("opens the database in WAL mode with synchronous=NORMAL", async () => {
    const file = tempFile();
    const store = await openSqliteStore(file);
    expect(store.db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(store.db.pragma("synchronous", { simple: true })).toBe(1n);
    await store.close();
  });
});
