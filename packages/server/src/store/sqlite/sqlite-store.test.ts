import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { storeContract } from "../contract.js";
import { openSqliteStore } from "./sqlite-store.js";

storeContract("sqlite (memory)", () => openSqliteStore(":memory:"));

describe("SQLite adapter", () => {
  it("rebuilds its budget counters from the file after a restart: settled usage and open reservations", async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "wattfare-store-")), "w.db");
    const first = await openSqliteStore(file);
    await first.createApp({
      id: "app00001",
      name: "A",
      keyHash: Buffer.alloc(32, 1),
      origins: [],
      createdAt: 0,
    });
    const c = await first.devConnect({
      appId: "app00001",
      appUserId: "alice",
      capNano: 1000n,
      payerEmail: "a@example.com",
      funding: { id: "fnd_a0000000", keyBlob: "b", fingerprint: "f", source: "dev" },
      now: 0,
    });
    const account = `c:${c.id}`;
    const draft = {
      account,
      period: "2026-11",
      appId: "app00001",
      fundingId: "fnd_a0000000",
      model: "m",
      stream: false,
      createdAt: 0,
      deadlineAt: 1,
    };
    const a = await first.admit({ ...draft, id: "r1" }, 1000n, () => 300n, "inst_a", 10);
    await first.admit({ ...draft, id: "r2" }, 1000n, () => 200n, "inst_a", 10);
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

  it("opens the database in WAL mode with synchronous=NORMAL", async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "wattfare-store-")), "w.db");
    const store = await openSqliteStore(file);
    expect(store.db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(store.db.pragma("synchronous", { simple: true })).toBe(1n);
    await store.close();
  });
});
