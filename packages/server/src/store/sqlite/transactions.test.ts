/**
 * Transactions beside another writer on the same file: the server's group commit beside a CLI command,
 * or the CLI beside the server. In WAL mode a transaction begun DEFERRED takes its read snapshot at its
 * first read; if it then writes after another connection has committed (or while another holds the
 * write lock), SQLite fails it at once with SQLITE_BUSY(_SNAPSHOT) and never calls the busy handler, so
 * the busy timeout does not help. Every transaction is therefore begun IMMEDIATE: it takes the write lock
 * first, waiting for it up to the busy timeout.
 */
import { once } from "node:events";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type BetterSqlite3 from "better-sqlite3";
import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { openSqlite } from "./database.js";
import { SqliteStore } from "./sqlite-store.js";

const tempFile = () => path.join(fs.mkdtempSync(path.join(os.tmpdir(), "wattfare-tx-")), "w.db");

const devConnectInput = (user: string, fundingId: string, now = 0) => ({
  appId: "app00001",
  appUserId: user,
  capNano: 1000n,
  payerEmail: `${user}@example.com`,
  funding: { id: fundingId, keyBlob: "b", fingerprint: "f", source: "dev" as const },
  now,
});

/**
 * A migrated store on a fresh file with app00001, whose connection is rigged so that right after the
 * first row read inside a transaction — between a read-then-write transaction's read and its write —
 * another connection on the file commits a write, once, when `interleave` says so. That connection does
 * not wait for the lock (busy timeout 0): its outcome is "committed", or the code it was refused with.
 */
async function storeWithInterleavedCommit() {
  const file = tempFile();
  const store = new SqliteStore({ file });
  const other = openSqlite(file);
  other.pragma("busy_timeout = 0");
  const state = { armed: false, outcome: "none" };
  const afterRead = () => {
    if (!state.armed || !store.db.inTransaction) return;
    state.armed = false;
    try {
      other.exec("INSERT INTO write_probe (id, n) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET n = n + 1");
      state.outcome = "committed";
    } catch (error) {
      state.outcome = (error as { code?: string }).code ?? String(error);
    }
  };
  // Every reading statement the store (and Kysely) prepares from now on, those migrate() prepares included.
  const prepare = store.db.prepare.bind(store.db) as (source: string) => BetterSqlite3.Statement;
  (store.db as { prepare: (source: string) => BetterSqlite3.Statement }).prepare = (source) => {
    const stmt = prepare(source);
    if (stmt.reader) {
      const methods = stmt as unknown as Record<"get" | "all", (...args: unknown[]) => unknown>;
      for (const method of ["get", "all"] as const) {
        const read = methods[method];
        methods[method] = function (this: unknown, ...args: unknown[]) {
          const result = read.apply(this, args);
          afterRead();
          return result;
        };
      }
    }
    return stmt;
  };
  await store.migrate();
  await store.createApp({
    id: "app00001",
    name: "A",
    keyHash: Buffer.alloc(32, 1),
    origins: [],
    createdAt: 0,
  });
  /** Runs `op` with the interleaved commit armed; resolves to "ok" or the code `op` failed with. */
  const interleave = async (op: () => Promise<unknown>): Promise<string> => {
    state.armed = true;
    state.outcome = "none";
    try {
      await op();
      return "ok";
    } catch (error) {
      return (error as { code?: string }).code ?? String(error);
    } finally {
      state.armed = false;
    }
  };
  const close = async () => {
    other.close();
    await store.close();
  };
  return { store, file, state, interleave, close };
}

/**
 * Another process's connection to `file`, in a worker thread: `hold(ms)` has it run `begin` (which
 * takes the write lock) and returns once it holds the lock; it commits `ms` later, on its own, while
 * this thread may be blocked waiting for that lock. `done` settles when it has committed.
 */
async function lockHolder(file: string, begin: string) {
  const go = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(
    `const { parentPort, workerData } = require("node:worker_threads");
     const db = new (require(workerData.driver))(workerData.file);
     parentPort.postMessage("ready");
     Atomics.wait(workerData.go, 0, 0);
     db.exec(workerData.begin);
     const ms = Atomics.load(workerData.go, 0);
     Atomics.store(workerData.go, 0, -1);
     Atomics.notify(workerData.go, 0);
     Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
     db.exec("COMMIT");
     db.close();
     parentPort.postMessage("done");`,
    {
      eval: true,
      workerData: {
        file,
        begin,
        go,
        driver: createRequire(fileURLToPath(import.meta.url)).resolve("better-sqlite3"),
      },
    },
  );
  expect(await once(worker, "message")).toEqual(["ready"]);
  const done = once(worker, "message");
  return {
    hold(ms: number) {
      Atomics.store(go, 0, ms);
      Atomics.notify(go, 0);
      if (Atomics.wait(go, 0, ms, 5_000) === "timed-out") throw new Error("the other process took no lock");
    },
    done,
    stop: () => worker.terminate(),
  };
}

type Rigged = Awaited<ReturnType<typeof storeWithInterleavedCommit>>;

/** Each transaction that reads before it writes, set up so that it does write. */
const readThenWrite: { name: string; run: (s: Rigged["store"]) => Promise<unknown> }[] = [
  {
    name: "devConnect (wattfare dev connect)",
    run: (store) => store.devConnect(devConnectInput("bob", "fnd_b0000000")),
  },
  {
    name: "approveConnection (the consent popup)",
    run: async (store) => {
      const alice = await store.devConnect(devConnectInput("alice", "fnd_a0000000"));
      return store.approveConnection({
        appId: "app00001",
        appUserId: "carol",
        payerId: alice.payerId,
        capNano: 500n,
        switchPayer: false,
        newConnectionId: "con_c0000000",
        now: 1,
      });
    },
  },
  {
    name: "takeGrantHandoff (the popup's grant handoff)",
    run: async (store) => {
      await store.putGrantHandoff("jti_1", "app00001", "blob", 10_000);
      if ((await store.takeGrantHandoff("jti_1", "app00001", 1)) !== "blob") throw new Error("not taken");
    },
  },
  {
    name: "claimExpired (the reconciler)",
    run: async (store) => {
      const alice = await store.devConnect(devConnectInput("alice", "fnd_a0000000"));
      const draft = {
        id: "r1",
        account: `c:${alice.id}`,
        period: "2026-11",
        appId: "app00001",
        fundingId: "fnd_a0000000",
        model: "m",
        stream: false,
        createdAt: 0,
        deadlineAt: 1_000,
      };
      await store.admit(draft, 1000n, () => 10n, "inst_a", 10);
      if ((await store.claimExpired("inst_b", 20, 100, false, 10)).length !== 1) throw new Error("no claim");
    },
  },
  {
    name: "a Kysely transaction (migrations)",
    run: (store) =>
      store.kysely.transaction().execute(async (trx) => {
        await sql`SELECT count(*) AS n FROM apps`.execute(trx);
        await sql`INSERT INTO write_probe (id, n) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET n = n + 1`.execute(
          trx,
        );
      }),
  },
];

describe("SQLite transactions beside another writer", () => {
  it.each(readThenWrite)(
    "$name holds the write lock from its start: another connection's commit cannot slip in between its read and its write and fail it",
    async ({ run }) => {
      const rigged = await storeWithInterleavedCommit();
      try {
        const result = await rigged.interleave(() => run(rigged.store));
        // Begun DEFERRED: the other connection commits and this one fails with SQLITE_BUSY_SNAPSHOT.
        expect({ result, other: rigged.state.outcome }).toEqual({ result: "ok", other: "SQLITE_BUSY" });
      } finally {
        await rigged.close();
      }
    },
  );

  it("waits for a write lock another process holds, up to the busy timeout, instead of failing at once (dev connect beside a busy server)", async () => {
    const rigged = await storeWithInterleavedCommit();
    const holder = await lockHolder(
      rigged.file,
      "BEGIN IMMEDIATE; INSERT INTO write_probe (id, n) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET n = n + 1",
    );
    try {
      holder.hold(300);
      const started = Date.now();
      const result = await rigged.store.devConnect(devConnectInput("dave", "fnd_d0000000")).then(
        () => "ok",
        (error: { code?: string }) => error.code,
      );
      expect(result).toBe("ok");
      expect(Date.now() - started).toBeGreaterThanOrEqual(200);
      await holder.done;
    } finally {
      await holder.stop();
      await rigged.close();
    }
  });

  it("opens an up-to-date database without taking the write lock, so a CLI command never makes the server's commits wait for it", async () => {
    const file = tempFile();
    const first = new SqliteStore({ file });
    await first.migrate();
    await first.close();
    // The server, mid-commit: its connection holds the write lock (in this thread, so a store that asked
    // for the lock would wait out the busy timeout and fail, never get it).
    const server = openSqlite(file);
    server.exec("BEGIN IMMEDIATE");
    const cli = new SqliteStore({ file });
    try {
      expect(await cli.migrate()).toEqual([]);
    } finally {
      server.exec("ROLLBACK");
      server.close();
      await cli.close();
    }
  });

  it("begins every transaction of the server and the CLI IMMEDIATE (through writeTransaction), never DEFERRED", () => {
    const src = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
    const offenders: string[] = [];
    const walk = (dir: string) => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const file = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(file);
        else if (/\.ts$/.test(entry.name) && !/\.test\.ts$/.test(entry.name)) {
          const text = fs.readFileSync(file, "utf8");
          // better-sqlite3's db.transaction(fn) begins DEFERRED unless called as .immediate; Kysely's
          // transaction().execute begins through MigratingSqliteDialect's driver, IMMEDIATE (tested above).
          const uses = text.match(/\.transaction\((?!\)\.execute)/g) ?? [];
          if (uses.length > 0 && path.relative(src, file) !== path.join("store", "sqlite", "database.ts")) {
            offenders.push(`${path.relative(src, file)}: ${uses.length}`);
          }
        }
      }
    };
    walk(src);
    expect(offenders).toEqual([]);
  });
});
