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

/** Leaves `left` reservations open under a crashed process whose lease has long to run. */
async function leftOpen(open: SqliteStore, now: number, left: number): Promise<void> {
  for (let i = 0; i < left; i++) {
    const admitted = await open.admit(
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
}

function reconcilerOn(open: SqliteStore, now: () => number): Reconciler {
  return new Reconciler({
    store: open,
    upstream: {} as Upstream, // never reached: nothing is attempted before the first tick
    keyRing: {} as KeyRing,
    clock: { now },
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
}

it("takes over every reservation a crashed process left open at once, not only the first batch of them", async () => {
  store = await openSqliteStore(":memory:");
  const now = 1_000_000;
  const left = 250; // more than one claim batch (100)
  await leftOpen(store, now, left);
  reconciler = reconcilerOn(store, () => now);
  await reconciler.start();
  expect(reconciler.pending).toBe(left);
  expect((await store.openReservations()).filter((r) => r.owner !== "inst_new")).toEqual([]);
});

it("ends its take-over however long it takes, without claiming again the batches it already took", async () => {
  store = await openSqliteStore(":memory:");
  const left = 250;
  await leftOpen(store, 1_000_000, left);
  // A slow start: every read of the clock finds the leases it gave a moment ago run out. Bounded, so
  // that a take-over that never ends fails here instead of hanging the run (its loop never yields).
  let now = 1_000_000;
  let reads = 0;
  reconciler = reconcilerOn(store, () => {
    if (++reads > 100) throw new Error("the take-over at start keeps claiming the same reservations");
    now += 16_000; // more than the lease (15 s)
    return now;
  });
  await reconciler.start();
  expect(reconciler.pending).toBe(left);
  expect((await store.openReservations()).filter((r) => r.owner !== "inst_new")).toEqual([]);
});
