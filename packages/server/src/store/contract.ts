/**
 * The Store contract: every adapter (SQLite now, PostgreSQL with the scale-out work) must pass exactly
 * these tests. Register it from an adapter's test file: `storeContract("sqlite", () => openSqliteStore(":memory:"))`.
 */
import { describe, expect, it } from "vitest";
import { OUTBOX_KEEP_MS, type ReservationDraft, type ReservationRecord, type Store } from "./port.js";

const T0 = Date.UTC(2026, 10, 15, 12);

/** The app every contract test uses (`app00001`), with the key hash's byte and origins it needs. */
const testApp = (keyByte = 1, origins: string[] = []) => ({
  id: "app00001",
  name: "A",
  keyHash: Buffer.alloc(32, keyByte),
  origins,
  createdAt: T0,
});

export function storeContract(name: string, makeStore: () => Promise<Store>): void {
  describe(`Store contract: ${name}`, () => {
    const withStore = (fn: (store: Store) => Promise<void>) => async () => {
      const store = await makeStore();
      try {
        await fn(store);
      } finally {
        await store.close();
      }
    };

    let fundingSeq = 0;
    async function connected(store: Store, user = "alice", capNano = 1_000_000_000n) {
      // The app may exist already (a second connection in the same test).
      await store.createApp(testApp(1, ["https://a.example"])).catch(() => undefined);
      return store.devConnect({
        appId: "app00001",
        appUserId: user,
        capNano,
        payerEmail: `${user}@example.com`,
        funding: {
          id: `fnd_${user}${String(++fundingSeq).padStart(4, "0")}`,
          keyBlob: "blob",
          fingerprint: "fp",
          source: "dev",
        },
        now: T0,
      });
    }

    const draft = (id: string, account: string, period = "2026-11"): ReservationDraft => ({
      id,
      account,
      period,
      appId: "app00001",
      fundingId: "fnd_alice0001",
      model: "m",
      stream: true,
      createdAt: T0,
      deadlineAt: T0 + 60_000,
    });

    async function admit(
      store: Store,
      id: string,
      account: string,
      cap: bigint,
      amount: bigint,
    ): Promise<ReservationRecord> {
      const result = await store.admit(draft(id, account), cap, () => amount, "inst_a", T0 + 15_000);
      if (!result.admitted) throw new Error(`${id} not admitted`);
      return result.reservation;
    }

    it(
      "creates an app with its origins and finds its current key",
      withStore(async (store) => {
        await store.createApp(testApp(7, ["https://a.example", "https://a.example"]));
        const app = await store.getApp("app00001");
        expect(app).toMatchObject({
          id: "app00001",
          name: "A",
          origins: ["https://a.example"],
          sessionsPerMinute: null,
          chatPerMinute: null,
          compromisedAt: null,
        });
        const keys = await store.activeAppKeys("app00001", T0);
        expect(keys.map((k) => k.keyHash.equals(Buffer.alloc(32, 7)))).toEqual([true]);
        expect(await store.getApp("nope")).toBeUndefined();
        expect((await store.listApps()).map((a) => a.id)).toEqual(["app00001"]);
      }),
    );

    it(
      "keeps an old key through its rotation grace period and drops it after",
      withStore(async (store) => {
        await store.createApp(testApp());
        await store.rotateAppKey("app00001", Buffer.alloc(32, 2), T0, T0 + 1000, false);
        expect(await store.activeAppKeys("app00001", T0 + 999)).toHaveLength(2);
        expect(await store.activeAppKeys("app00001", T0 + 1000)).toHaveLength(1);
        expect((await store.getApp("app00001"))?.compromisedAt).toBeNull();
        await store.rotateAppKey("app00001", Buffer.alloc(32, 3), T0 + 2000, T0 + 2000, true);
        const live = await store.activeAppKeys("app00001", T0 + 2000);
        expect(live.map((k) => k.keyHash[0])).toEqual([3]);
        expect((await store.getApp("app00001"))?.compromisedAt).toBe(Math.floor((T0 + 2000) / 1000));
      }),
    );

    it(
      "adds and removes origins and per-app limits",
      withStore(async (store) => {
        await store.createApp(testApp());
        expect(await store.addOrigin("app00001", "https://b.example", T0)).toBe(true);
        expect(await store.addOrigin("app00001", "https://b.example", T0)).toBe(false);
        expect(await store.removeOrigin("app00001", "https://b.example")).toBe(true);
        expect(await store.removeOrigin("app00001", "https://b.example")).toBe(false);
        await store.setAppLimits("app00001", { chatPerMinute: 5 });
        expect((await store.getApp("app00001"))?.chatPerMinute).toBe(5);
        await store.setAppLimits("app00001", { chatPerMinute: null });
        expect((await store.getApp("app00001"))?.chatPerMinute).toBeNull();
      }),
    );

    it(
      "finds a connected user with their payer's current funding, and a new connection replaces the old",
      withStore(async (store) => {
        const first = await connected(store);
        const account = await store.chatAccount("app00001", "alice");
        expect(account?.connection.id).toBe(first.id);
        expect(account?.funding?.state).toBe("ok");
        expect(account?.payerPaused).toBe(false);
        expect(await store.chatAccount("app00001", "bob")).toBeUndefined();
        const second = await connected(store);
        expect((await store.chatAccount("app00001", "alice"))?.connection.id).toBe(second.id);
      }),
    );

    it(
      "admits up to the cap and refuses what would overshoot it",
      withStore(async (store) => {
        const c = await connected(store);
        const account = `c:${c.id}`;
        await admit(store, "r1", account, 100n, 60n);
        const refused = await store.admit(draft("r2", account), 100n, () => 41n, "inst_a", T0);
        expect(refused).toEqual({ admitted: false, headroomNano: 40n });
        await admit(store, "r3", account, 100n, 40n);
        expect(await store.budget({ account, period: "2026-11" }, 100n)).toEqual({
          capNano: 100n,
          settledNano: 0n,
          reservedNano: 100n,
        });
      }),
    );

    it(
      "tells admission what the funding key took since its limit was read: open reservations, then what they settled at",
      withStore(async (store) => {
        const c = await connected(store);
        const account = `c:${c.id}`;
        const fundingId = "fnd_alice0001";
        const seen: bigint[] = [];
        const admitSeeing = async (id: string, amount: bigint | null) => {
          const result = await store.admit(
            draft(id, account),
            1000n,
            (_room, spent) => {
              seen.push(spent);
              return amount;
            },
            "inst_a",
            T0,
          );
          return result.admitted ? result.reservation : undefined;
        };
        const settlement = (costNano: bigint) => ({
          costNano,
          generationId: null,
          promptTokens: null,
          completionTokens: null,
          unreconciled: false,
          at: T0,
        });
        const r1 = await admitSeeing("r1", 30n);
        const r2 = await admitSeeing("r2", 20n);
        await store.settle(r1 as ReservationRecord, settlement(5n));
        await admitSeeing("r3", null); // refused: takes nothing
        await store.release(r2 as ReservationRecord);
        const r4 = await admitSeeing("r4", 7n);
        // A fresh read of the limit already counts what settled; the open r4 still takes from it.
        await store.setFundingState(fundingId, "ok", 100n, T0);
        await admitSeeing("r5", null);
        await store.settle(r4 as ReservationRecord, settlement(2n));
        await store.setFundingState(fundingId, "insufficient", undefined, T0); // not read: counts stay
        await admitSeeing("r6", null);
        expect(seen).toEqual([0n, 30n, 25n, 5n, 7n, 2n]);
      }),
    );

    it(
      "admits exactly one of two simultaneous requests when only one fits",
      withStore(async (store) => {
        const c = await connected(store);
        const account = `c:${c.id}`;
        const results = await Promise.all([
          store.admit(draft("r1", account), 100n, (room) => (room >= 70n ? 70n : null), "inst_a", T0),
          store.admit(draft("r2", account), 100n, (room) => (room >= 70n ? 70n : null), "inst_a", T0),
        ]);
        expect(results.filter((r) => r.admitted)).toHaveLength(1);
      }),
    );

    it(
      "settles once into the reservation's own period, whatever happens after",
      withStore(async (store) => {
        const c = await connected(store);
        const account = `c:${c.id}`;
        const r = await admit(store, "r1", account, 1000n, 500n);
        await store.recordGenerationId("r1", "gen-1");
        const settlement = {
          costNano: 123n,
          generationId: "gen-1",
          promptTokens: 5,
          completionTokens: 7,
          unreconciled: false,
          at: T0 + 5,
        };
        expect(await store.settle(r, settlement)).toBe(true);
        expect(await store.settle(r, { ...settlement, costNano: 999n })).toBe(false); // a replay changes nothing
        await store.release(r);
        expect(await store.budget({ account, period: "2026-11" }, 1000n)).toEqual({
          capNano: 1000n,
          settledNano: 123n,
          reservedNano: 0n,
        });
        expect(await store.budget({ account, period: "2026-12" }, 1000n)).toEqual({
          capNano: 1000n,
          settledNano: 0n,
          reservedNano: 0n,
        });
        const ledger = await store.ledger({ account });
        expect(ledger).toHaveLength(1);
        expect(ledger[0]).toMatchObject({
          requestId: "r1",
          amountNano: 123n,
          generationId: "gen-1",
          period: "2026-11",
          unreconciled: false,
        });
        expect(await store.openReservations()).toHaveLength(0);
      }),
    );

    it(
      "releases a reservation without charging it",
      withStore(async (store) => {
        const c = await connected(store);
        const account = `c:${c.id}`;
        const r = await admit(store, "r1", account, 1000n, 500n);
        await store.release(r);
        expect(await store.budget({ account, period: "2026-11" }, 1000n)).toMatchObject({
          settledNano: 0n,
          reservedNano: 0n,
        });
        expect(await store.ledger()).toHaveLength(0);
      }),
    );

    it(
      "lets another owner claim reservations only after their lease expired",
      withStore(async (store) => {
        const c = await connected(store);
        await admit(store, "r1", `c:${c.id}`, 1000n, 10n);
        expect(await store.claimExpired("inst_b", T0 + 14_999, T0 + 30_000, false, 10)).toHaveLength(0);
        await store.heartbeat("inst_a", T0 + 20_000);
        expect(await store.claimExpired("inst_b", T0 + 15_000, T0 + 30_000, false, 10)).toHaveLength(0);
        const claimed = await store.claimExpired("inst_b", T0 + 20_000, T0 + 40_000, false, 10);
        expect(claimed.map((r) => [r.id, r.owner, r.leaseUntil])).toEqual([["r1", "inst_b", T0 + 40_000]]);
        expect(await store.claimExpired("inst_c", T0 + 20_000, T0 + 50_000, true, 10)).toHaveLength(1);
      }),
    );

    it(
      "keeps the mail outbox to its last week: adding a message drops older ones",
      withStore(async (store) => {
        const message = (to: string, createdAt: number) => ({ to, subject: "s", text: "t", createdAt });
        await store.addOutboxMessage(message("old@example.com", T0));
        await store.addOutboxMessage(message("edge@example.com", T0 + 1));
        await store.addOutboxMessage(message("new@example.com", T0 + OUTBOX_KEEP_MS + 1));
        expect((await store.outboxMessages()).map((m) => m.to)).toEqual([
          "edge@example.com",
          "new@example.com",
        ]);
      }),
    );
  });
}
