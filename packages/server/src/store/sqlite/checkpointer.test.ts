import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { SAFETY_AUTOCHECKPOINT_PAGES } from "./checkpointer.js";
import { openSqliteStore } from "./sqlite-store.js";

describe("background WAL checkpoints", () => {
  it("leave request commits in the WAL and copy them into the database from a worker thread", async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "wattfare-ckpt-")), "w.db");
    const store = await openSqliteStore(file, { backgroundCheckpoints: true });
    expect(store.db.pragma("wal_autocheckpoint", { simple: true })).toBe(BigInt(SAFETY_AUTOCHECKPOINT_PAGES));
    await store.checkpointer?.checkpointNow();
    const before = fs.statSync(file).size;
    // ~2,000 pages of writes: past SQLite's default threshold (1,000), below the safety net.
    const insert = store.db.prepare(
      "INSERT INTO usage (account, period, settled_nano) VALUES (?, '2026-11', 1)",
    );
    store.db.transaction(() => {
      for (let i = 0; i < 40_000; i++) insert.run(`c:${"x".repeat(150)}${i}`);
    })();
    expect(fs.statSync(file).size).toBe(before); // nothing copied on the request path
    await store.checkpointer?.checkpointNow();
    expect(fs.statSync(file).size).toBeGreaterThan(before + 1_000_000);
    await store.close();
  });

  it("are off for the CLI and for in-memory stores", async () => {
    const store = await openSqliteStore(":memory:", { backgroundCheckpoints: true });
    expect(store.checkpointer).toBeUndefined();
    await store.close();
  });
});
