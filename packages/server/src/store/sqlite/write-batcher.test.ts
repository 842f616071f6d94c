import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { openSqlite } from "./database.js";
import { WriteBatcher } from "./write-batcher.js";

function database() {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "wattfare-batcher-")), "w.db");
  const db = openSqlite(file);
  db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY)");
  db.pragma("busy_timeout = 0");
  return { db, file };
}

describe("WriteBatcher", () => {
  it("fails a whole batch at once when another connection holds the write lock, trying no write again", async () => {
    const { db, file } = database();
    const blocker = openSqlite(file);
    blocker.exec("BEGIN IMMEDIATE");
    const batcher = new WriteBatcher(db);
    let runs = 0;
    const insert = db.prepare("INSERT INTO t (id) VALUES (?)");
    const writes = [1, 2, 3].map((id) =>
      batcher.enqueue(() => {
        runs++;
        insert.run(id);
      }),
    );
    batcher.flush();
    for (const write of writes) await expect(write).rejects.toThrow(/locked|busy/i);
    // The batch's BEGIN IMMEDIATE met the lock, so no write ran; each retry alone would have waited the
    // busy timeout again, with the event loop stopped.
    expect(runs).toBe(0);
    expect(batcher.failure).toMatchObject({ code: expect.stringMatching(/^SQLITE_BUSY/) });
    blocker.exec("ROLLBACK");
    await batcher.enqueue(() => insert.run(4));
    expect(batcher.failure).toBeUndefined();
    blocker.close();
    db.close();
  });

  it("retries the writes of a failed batch one by one, so only the bad one fails", async () => {
    const { db } = database();
    const batcher = new WriteBatcher(db);
    const insert = db.prepare("INSERT INTO t (id) VALUES (?)");
    const writes = [1, 1, 2].map((id) => batcher.enqueue(() => insert.run(id)));
    batcher.flush();
    const outcomes = await Promise.allSettled(writes);
    expect(outcomes.map((o) => o.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect(db.prepare("SELECT id FROM t ORDER BY id").pluck().all()).toEqual([1n, 2n]);
    // A write's own failure (here a constraint, or its own check throwing) says nothing of the store.
    await expect(batcher.enqueue(() => insert.run(2))).rejects.toThrow(/UNIQUE/);
    expect(batcher.failure).toBeUndefined();
    await expect(
      batcher.enqueue(() => {
        throw new Error("grant no longer live");
      }),
    ).rejects.toThrow("grant no longer live");
    expect(batcher.failure).toBeUndefined();
    db.close();
  });
});
