/**
 * The reconciler's start on SQLite: a starting server takes over every reservation a previous process
 * left open at once (DESIGN.md "Invariant 2"), however many that process had in flight.
 */
import pino from "pino";
import { afterEach, expect, it } from "vitest";
import type { KeyRing } from "../../security/index.js";
import { openSqliteStore, type SqliteStore } from "../../store/sqlite/sqlite-store.js";
import { Metrics } from "../metrics/index.js";
import { Reconciler } from "./reconciler.js";
import type { Upstream } from "./upstream.js";

let store: SqliteStore | undefined;
let reconciler: Reconciler | undefined;
afterEach(async () => {
  reconciler?.stop();
  await store?.close();
});

it("takes over every reservation a crashed process left open at once, not only the first batch of them", async () => {
  store = await openSqliteStore(":memory:");
  const now = 1_000_000;
  const left = 250; // more than one claim batch (100)
  for (let i = 0; i < left; i++) {
    const admitted = await store.admit(
      {
        id: `req_${String(i).padStart(4, "0")}`,
        account: "c:con_1",
        period: "2026-11",
        appId: "app00001",
        fundingId: "fnd_1",
        model: "m",
        stream: true,
        createdAt: now - 1_000 + i,
        deadlineAt: now + 900_000,
      },
      1_000_000n,
      () => 10n,
      "inst_crashed",
      now + 60_000, // its lease has long to run: only the take-over at start can claim it now
    );
    expect(admitted.admitted).toBe(true);
  }
  reconciler = new Reconciler({
    store,
    upstream: {} as Upstream, // never reached: nothing is attempted before the first tick
    keyRing: {} as KeyRing,
    clock: { now: () => now },
    logger: pino({ level: "silent" }),
    instanceId: "inst_new",
    leaseMs: 15_000,
    heartbeatMs: 5_000,
    tickMs: 3_600_000,
    backoffMs: 250,
    deadlineMs: 900_000,
    recheckMs: 3_600_000,
    isInFlight: () => false,
    metrics: new Metrics(false),
  });
  await reconciler.start();
  expect(reconciler.pending).toBe(left);
  expect((await store.openReservations()).filter((r) => r.owner !== "inst_new")).toEqual([]);
});
