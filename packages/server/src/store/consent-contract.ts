/**
 * The Store contract for the consent popup and the payer dashboard (issue 6): every adapter runs these
 * beside the core contract. Register from an adapter's test file:
 * `consentStoreContract("sqlite", () => openSqliteStore(":memory:"))`.
 */
import { describe, expect, it } from "vitest";
import type { ConsentSessionRecord, Store } from "./port.js";

const T0 = Date.UTC(2026, 10, 15, 12);
const APP = "app00001";

export function consentStoreContract(name: string, makeStore: () => Promise<Store>): void {
  describe(`Store contract (consent and dashboard): ${name}`, () => {
    const withStore = (fn: (store: Store) => Promise<void>) => async () => {
      const store = await makeStore();
      try {
        await store.createApp({
          id: APP,
          name: "Story Studio",
          keyHash: Buffer.alloc(32, 1),
          origins: [],
          createdAt: T0,
        });
        for (const payer of ["pay_a", "pay_b"]) {
          await store.createPayer({
            id: payer,
            email: `${payer}@example.com`,
            passwordHash: "x",
            createdAt: T0,
          });
        }
        await fn(store);
      } finally {
        await store.close();
      }
    };

    const consent = (id: number, overrides: Partial<ConsentSessionRecord> = {}): ConsentSessionRecord => ({
      idHash: Buffer.alloc(32, id),
      appId: APP,
      intent: "connect",
      appUserId: "alice",
      grantTerms: null,
      origin: "https://app.example",
      requestedCapNano: 5_000_000_000n,
      sessionJti: `jti-${id}`,
      sessionExpiresAt: T0 / 1000 + 600,
      createdAt: T0,
      expiresAt: T0 + 1_800_000,
      answeredAt: null,
      outcome: null,
      ...overrides,
    });

    const approve = (
      store: Store,
      payerId: string,
      capNano: bigint | null,
      switchPayer = false,
      id = "con_1",
    ) =>
      store.approveConnection({
        appId: APP,
        appUserId: "alice",
        payerId,
        capNano,
        switchPayer,
        newConnectionId: id,
        now: T0,
      });

    it(
      "keeps a consent session with its grant terms and requested cap, and answers it once",
      withStore(async (store) => {
        const grant = consent(1, {
          intent: "grant",
          appUserId: null,
          grantTerms: { maxUsd: 2.5, maxUses: 3 },
          requestedCapNano: null,
        });
        await store.createConsentSession(grant);
        expect(await store.consentSession(grant.idHash)).toEqual(grant);
        expect(await store.consentAnswered("jti-1")).toBe(false);
        expect(await store.answerConsentSession(grant.idHash, "approved", T0 + 1)).toBe(true);
        expect(await store.answerConsentSession(grant.idHash, "denied", T0 + 2)).toBe(false);
        expect(await store.consentSession(grant.idHash)).toMatchObject({
          answeredAt: T0 + 1,
          outcome: "approved",
        });
        expect(await store.consentAnswered("jti-1")).toBe(true);
      }),
    );

    it(
      "replaces an unanswered consent session made from the same token and refuses to answer an expired one",
      withStore(async (store) => {
        await store.createConsentSession(consent(1));
        await store.createConsentSession(consent(2, { sessionJti: "jti-1" }));
        expect(await store.consentSession(Buffer.alloc(32, 1))).toBeUndefined();
        const expired = consent(3);
        await store.createConsentSession(expired);
        expect(await store.answerConsentSession(expired.idHash, "approved", expired.expiresAt)).toBe(false);
        // Expired sessions are swept when a later one is made.
        await store.createConsentSession(consent(4, { createdAt: expired.expiresAt }));
        expect(await store.consentSession(expired.idHash)).toBeUndefined();
      }),
    );

    it(
      "approves a first connection, then sets the same payer's cap up or down, or keeps it",
      withStore(async (store) => {
        const first = await approve(store, "pay_a", 5n);
        expect(first).toMatchObject({ ok: true, created: true, connection: { id: "con_1", capNano: 5n } });
        expect(await approve(store, "pay_a", 9n, false, "con_2")).toMatchObject({
          ok: true,
          created: false,
          connection: { id: "con_1", capNano: 9n },
        });
        expect(await approve(store, "pay_a", null, false, "con_3")).toMatchObject({
          connection: { capNano: 9n },
        });
        expect((await store.chatAccount(APP, "alice"))?.connection.capNano).toBe(9n);
        expect(await approve(store, "pay_b", null)).toEqual({ ok: false, reason: "other_payer" });
      }),
    );

    it(
      "replaces another payer's connection only on an explicit switch, with a new row",
      withStore(async (store) => {
        await approve(store, "pay_a", 5n);
        expect(await approve(store, "pay_b", 5n, false, "con_2")).toEqual({
          ok: false,
          reason: "other_payer",
        });
        expect((await store.chatAccount(APP, "alice"))?.connection.payerId).toBe("pay_a");
        const switched = await approve(store, "pay_b", 3n, true, "con_2");
        expect(switched).toMatchObject({
          ok: true,
          created: true,
          connection: { id: "con_2", payerId: "pay_b" },
        });
        expect((await store.chatAccount(APP, "alice"))?.connection.id).toBe("con_2");
        expect(await store.payerConnections("pay_a")).toEqual([]);
        expect(await approve(store, "pay_a", null, true, "con_3")).toEqual({
          ok: false,
          reason: "not_connected",
        });
      }),
    );

    it(
      "leaves exactly one live connection when two payers approve the same user at once",
      withStore(async (store) => {
        const results = await Promise.all([
          approve(store, "pay_a", 5n, false, "con_a"),
          approve(store, "pay_b", 5n, false, "con_b"),
        ]);
        expect(results.filter((r) => r.ok)).toHaveLength(1);
        expect(results.filter((r) => !r.ok)).toEqual([{ ok: false, reason: "other_payer" }]);
        const live = [...(await store.payerConnections("pay_a")), ...(await store.payerConnections("pay_b"))];
        expect(live).toHaveLength(1);
      }),
    );

    it(
      "lets a payer change the cap of, and revoke, only their own live connections, and pause all spending",
      withStore(async (store) => {
        await approve(store, "pay_a", 5n);
        expect(await store.payerConnections("pay_a")).toMatchObject([
          { id: "con_1", appName: "Story Studio", capNano: 5n, appUserId: "alice" },
        ]);
        expect(await store.setConnectionCap("con_1", "pay_b", 1n, T0)).toBe(false);
        expect(await store.setConnectionCap("con_1", "pay_a", 50n, T0)).toBe(true);
        expect((await store.chatAccount(APP, "alice"))?.connection.capNano).toBe(50n);
        await store.setPayerPaused("pay_a", true);
        expect((await store.chatAccount(APP, "alice"))?.payerPaused).toBe(true);
        await store.setPayerPaused("pay_a", false);
        expect((await store.chatAccount(APP, "alice"))?.payerPaused).toBe(false);
        expect(await store.revokePayerConnection("con_1", "pay_b", T0)).toBe(false);
        expect(await store.revokePayerConnection("con_1", "pay_a", T0)).toBe(true);
        expect(await store.revokePayerConnection("con_1", "pay_a", T0)).toBe(false);
        expect(await store.chatAccount(APP, "alice")).toBeUndefined();
        expect(await store.setConnectionCap("con_1", "pay_a", 1n, T0)).toBe(false);
      }),
    );

    it(
      "sums a payer's spending by month and lists their latest requests with adjustments folded in",
      withStore(async (store) => {
        await approve(store, "pay_a", 1_000_000n);
        await store.createGrant({
          id: "gr_1",
          appId: APP,
          tokenHash: Buffer.alloc(32, 9),
          payerId: "pay_a",
          maxNano: 1_000_000n,
          maxUses: null,
          expiresAt: T0 + 86_400_000,
          createdAt: T0,
        });
        const spend = async (id: string, account: string, period: string, at: number, cost: bigint) => {
          const result = await store.admit(
            {
              id,
              account,
              period,
              appId: APP,
              fundingId: "fnd_none",
              model: "m",
              stream: false,
              createdAt: at,
              deadlineAt: at + 60_000,
            },
            1_000_000n,
            () => 100n,
            "inst_a",
            at + 15_000,
          );
          if (!result.admitted) throw new Error("not admitted");
          await store.settle(result.reservation, {
            costNano: cost,
            generationId: `gen-${id}`,
            promptTokens: 10,
            completionTokens: 5,
            unreconciled: false,
            at,
          });
        };
        const december = Date.UTC(2026, 11, 2);
        await spend("r1", "c:con_1", "2026-11", T0, 40n);
        await spend("r2", "c:con_1", "2026-12", december, 30n);
        await spend("r3", "g:gr_1", "-", december + 1000, 20n);
        const [r2] = await store
          .ledger({ account: "c:con_1" })
          .then((l) => l.filter((e) => e.requestId === "r2"));
        if (r2) await store.adjust(r2, 35n, december + 5000);
        expect(await store.payerMonthlySpend("pay_a", "2026-10")).toEqual([
          { period: "2026-11", settledNano: 40n, requests: 1 },
          { period: "2026-12", settledNano: 55n, requests: 2 },
        ]);
        expect(await store.payerMonthlySpend("pay_a", "2026-12")).toHaveLength(1);
        expect(await store.payerMonthlySpend("pay_b", "2026-01")).toEqual([]);
        const recent = await store.payerRecentRequests("pay_a", 2);
        expect(recent).toEqual([
          expect.objectContaining({
            requestId: "r3",
            viaGrant: true,
            amountNano: 20n,
            appName: "Story Studio",
          }),
          expect.objectContaining({ requestId: "r2", viaGrant: false, amountNano: 35n, promptTokens: 10 }),
        ]);
        expect(await store.payerRecentRequests("pay_b", 10)).toEqual([]);
      }),
    );
  });
}
