import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { usdToNano } from "../../money.js";
import { periodOf } from "../../period.js";
import { createHarness, type Harness } from "../../testing/harness.js";
import { connectionAccount } from "./service.js";

let h: Harness;
let app: { appId: string; secretKey: string };

beforeEach(async () => {
  h = await createHarness();
  app = await h.createApp();
});
afterEach(async () => h.close());

const status = (appUserId: string, key = app.secretKey) =>
  h.app.inject({
    method: "GET",
    url: `/api/v1/status?appUserId=${encodeURIComponent(appUserId)}`,
    headers: { authorization: `Bearer ${key}` },
  });

async function connect(appId: string, appUserId: string, capUsd: number) {
  return h.store.devConnect({
    appId,
    appUserId,
    capNano: usdToNano(capUsd, "down"),
    payerEmail: `${appUserId}@example.com`,
    funding: { id: `fnd_${appUserId}`, keyBlob: "v1.x.y.z", fingerprint: "sk-or-v1-…abcd", source: "dev" },
    now: h.clock.now(),
  });
}

describe("GET /api/v1/status", () => {
  it("reports a never-connected user as not connected with zero amounts and missing funding", async () => {
    const res = await status("nobody");
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      connected: false,
      limits: { monthlyUsd: 0 },
      usage: { monthlyUsd: 0 },
      remainingUsd: 0,
      period: { start: Date.UTC(2026, 10, 1) / 1000, end: Date.UTC(2026, 11, 1) / 1000 },
      funding: "missing",
      paused: false,
    });
  });

  it("reports usage rounded up and remaining rounded down to 6 decimals, reservations included", async () => {
    const connection = await connect(app.appId, "u1", 10);
    const ref = { account: connectionAccount(connection.id), period: periodOf(h.clock.now()) };
    const draft = {
      ...ref,
      id: "req_a",
      appId: app.appId,
      fundingId: "fnd_u1",
      model: "m",
      stream: false,
      createdAt: h.clock.now(),
      deadlineAt: h.clock.now() + 1000,
    };
    const admitted = await h.store.admit(
      draft,
      connection.capNano,
      () => 1_000_000_000n,
      "inst",
      h.clock.now() + 1000,
    );
    if (!admitted.admitted) throw new Error("not admitted");
    // Settle at $3.2000000001 (one nano over), leaving nothing reserved.
    await h.store.settle(admitted.reservation, {
      costNano: 3_200_000_001n,
      generationId: "gen-1",
      promptTokens: 1,
      completionTokens: 1,
      unreconciled: false,
      at: h.clock.now(),
    });
    const res = await status("u1");
    expect(res.json()).toMatchObject({
      connected: true,
      limits: { monthlyUsd: 10 },
      usage: { monthlyUsd: 3.200001 },
      remainingUsd: 6.799999,
      funding: "ok",
      paused: false,
    });
  });

  it("a request with another app's key cannot read this app's user status", async () => {
    await connect(app.appId, "u1", 10);
    const other = await h.createApp("Other");
    const res = await status("u1", other.secretKey);
    expect(res.statusCode).toBe(200);
    expect((res.json() as { connected: boolean }).connected).toBe(false);
  });

  it("rejects a missing, repeated or malformed appUserId with 400 saying which", async () => {
    const ask = (query: string) =>
      h.app.inject({
        method: "GET",
        url: `/api/v1/status${query}`,
        headers: { authorization: `Bearer ${app.secretKey}` },
      });
    const message = async (query: string) => {
      const res = await ask(query);
      expect(res.statusCode).toBe(400);
      return (res.json() as { error: { message: string } }).error.message;
    };
    expect(await message("")).toBe("appUserId: is required");
    expect(await message("?appUserId=a&appUserId=b")).toBe("appUserId: must be given once");
    expect((await status("has space")).statusCode).toBe(400);
  });

  it("requires the secret key", async () => {
    const res = await h.app.inject({ method: "GET", url: "/api/v1/status?appUserId=u" });
    expect(res.statusCode).toBe(401);
  });
});

describe("unknown routes", () => {
  it("answer 404 not_found in the error shape with a request id", async () => {
    const res = await h.app.inject({ method: "GET", url: "/api/v1/nope" });
    expect(res.statusCode).toBe(404);
    expect((res.json() as { error: { code: string } }).error.code).toBe("not_found");
    expect(res.headers["x-request-id"]).toBeDefined();
  });

  it("never trust a client's x-request-id", async () => {
    const res = await h.app.inject({
      method: "GET",
      url: "/healthz",
      headers: { "x-request-id": "req_attacker" },
    });
    expect(res.headers["x-request-id"]).not.toBe("req_attacker");
  });
});

describe("health", () => {
  it("is live and ready while the store answers, and not ready (503) once it does not", async () => {
    expect((await h.app.inject({ method: "GET", url: "/healthz" })).json()).toEqual({ status: "ok" });
    expect((await h.app.inject({ method: "GET", url: "/readyz" })).statusCode).toBe(200);
    await h.store.close();
    const res = await h.app.inject({ method: "GET", url: "/readyz" });
    expect(res.statusCode).toBe(503);
    expect((res.json() as { error: { code: string } }).error.code).toBe("unavailable");
    expect((await h.app.inject({ method: "GET", url: "/healthz" })).statusCode).toBe(200);
  });
});
