import http from "node:http";
import { decodeJwt } from "jose";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { usdToNano } from "../../money.js";
import { type ChatHarness, createChatHarness } from "../../testing/chat-harness.js";
import { postChat } from "../../testing/harness.js";
import { approveGrant } from "./service.js";

const ORIGIN = "http://localhost:5173";
const hello = [{ role: "user" as const, content: "Hi" }];
let h: ChatHarness;
let fundingKey: string;
let payerId: string;

beforeEach(async () => {
  h = await createChatHarness({ sim: { responseTokens: 16 } });
  await h.store.addOrigin(h.appId, ORIGIN, h.clock.now());
  // A funded payer (connected elsewhere as "payer"), who will approve grants.
  fundingKey = await h.connect("payer", 50);
  payerId = (h.store.db.prepare("SELECT payer_id FROM connections").get() as { payer_id: string }).payer_id;
});
afterEach(async () => h.close());

async function grant(terms: { maxUsd: number; maxUses?: number; expiresInSeconds?: number }, jti = "jti-1") {
  return approveGrant(
    h.deps,
    {
      appId: h.appId,
      payerId,
      terms,
      sessionJti: jti,
      sessionExpiresAt: Math.floor(h.clock.now() / 1000) + 600,
    },
    h.clock.now(),
  );
}

const chat = (grantToken: string, body: Record<string, unknown> = {}, headers: Record<string, string> = {}) =>
  h.post(
    { model: "openai/gpt-4o-mini", messages: hello, max_tokens: 16, ...body },
    { "x-wattfare-grant": grantToken, ...headers },
  );

async function errorOf(res: Response) {
  return ((await res.json()) as { error: { code: string; message: string } }).error;
}

async function current(grantToken: string, secretKey = h.secretKey) {
  return fetch(`${h.url}/api/v1/grants/current`, {
    headers: { authorization: `Bearer ${secretKey}`, "x-wattfare-grant": grantToken },
  });
}

describe("grant sessions", () => {
  it("mints a grant session token with typ grant and the terms", async () => {
    const res = await h.app.inject({
      method: "POST",
      url: "/api/v1/sessions",
      headers: { authorization: `Bearer ${h.secretKey}`, "content-type": "application/json" },
      payload: { grant: { maxUsd: 2, maxUses: 3 } },
    });
    expect(res.statusCode).toBe(200);
    const claims = decodeJwt((res.json() as { token: string }).token);
    expect(claims).toMatchObject({ typ: "grant", app: h.appId, grant: { maxUsd: 2, maxUses: 3 } });
    expect(claims.sub).toBeUndefined();
  });

  it.each([
    ["both appUserId and grant", { appUserId: "u", grant: { maxUsd: 1 } }],
    ["a grant above the server maximum", { grant: { maxUsd: 1_000_001 } }],
    ["a grant expiring in more than 30 days", { grant: { maxUsd: 1, expiresInSeconds: 31 * 86400 } }],
    ["a fractional maxUses", { grant: { maxUsd: 1, maxUses: 1.5 } }],
  ])("rejects %s with 400", async (_name, payload) => {
    const res = await h.app.inject({
      method: "POST",
      url: "/api/v1/sessions",
      headers: { authorization: `Bearer ${h.secretKey}`, "content-type": "application/json" },
      payload,
    });
    expect(res.statusCode).toBe(400);
  });

  it("refuses a grant session token on /connections", async () => {
    const res = await h.app.inject({
      method: "POST",
      url: "/api/v1/sessions",
      headers: { authorization: `Bearer ${h.secretKey}`, "content-type": "application/json" },
      payload: { grant: { maxUsd: 2 } },
    });
    const token = (res.json() as { token: string }).token;
    const conn = await h.app.inject({
      method: "GET",
      url: "/api/v1/connections",
      headers: { authorization: `Bearer ${token}`, origin: ORIGIN },
    });
    expect(conn.statusCode).toBe(401);
  });
});

describe("chat with x-wattfare-grant", () => {
  it("is admitted and settled against the grant exactly like a connection", async () => {
    const { grantToken } = await grant({ maxUsd: 1 });
    expect(grantToken).toMatch(/^gt_[0-9A-Za-z]{43}$/);
    const res = await chat(grantToken, { stream: true });
    expect(res.status).toBe(200);
    await res.text();
    await h.drain();
    expect(await h.ledgerTotal()).toBe(h.sim.control.billedNano(fundingKey));
    const status = (await (await current(grantToken)).json()) as {
      status: string;
      remainingUsd: number;
      usesLeft: number | null;
      expiresAt: number;
    };
    expect(status.status).toBe("active");
    expect(status.usesLeft).toBeNull();
    expect(status.remainingUsd).toBeLessThan(1);
    expect(status.expiresAt).toBe(Math.floor(h.clock.now() / 1000) + 24 * 3600);
  });

  it("answers 400 when both x-wattfare-user and x-wattfare-grant are sent", async () => {
    const { grantToken } = await grant({ maxUsd: 1 });
    const res = await chat(grantToken, {}, { "x-wattfare-user": "payer" });
    expect(res.status).toBe(400);
  });

  it("treats another app's grant as unknown, for chat and for /grants/current", async () => {
    const { grantToken } = await grant({ maxUsd: 1 });
    const other = await h.createApp("Other");
    await h.store.setAppLimits(other.appId, { chatPerMinute: 1000 });
    const res = await postChat(
      h.url,
      other.secretKey,
      { model: "openai/gpt-4o-mini", messages: hello },
      { headers: { "x-wattfare-grant": grantToken } },
    );
    expect(res.status).toBe(402);
    expect(await errorOf(res)).toMatchObject({ code: "grant_invalid", message: "Unknown grant token." });
    expect((await current(grantToken, other.secretKey)).status).toBe(402);
    expect((await current("gt_nope")).status).toBe(402);
  });

  it("admits exactly one of 50 parallel requests on a 1-use grant", async () => {
    const { grantToken } = await grant({ maxUsd: 5, maxUses: 1 });
    const statuses = await Promise.all(
      Array.from({ length: 50 }, async () => {
        const res = await chat(grantToken);
        await res.arrayBuffer();
        return res.status;
      }),
    );
    expect(statuses.filter((s) => s === 200)).toHaveLength(1);
    expect(statuses.filter((s) => s === 402)).toHaveLength(49);
    await h.drain();
    expect(await h.ledgerTotal()).toBe(h.sim.control.billedNano(fundingKey));
    const status = (await (await current(grantToken)).json()) as { status: string; usesLeft: number };
    expect(status).toMatchObject({ status: "exhausted", usesLeft: 0 });
  });

  it("never goes over a grant's dollar cap under parallel requests", async () => {
    const { grantToken } = await grant({ maxUsd: 0.02 });
    await Promise.all(
      Array.from({ length: 40 }, async () =>
        (await chat(grantToken, { model: "wattfare/fee-model" })).arrayBuffer(),
      ),
    );
    await h.drain();
    const settled = await h.ledgerTotal();
    expect(settled).toBeLessThanOrEqual(usdToNano(0.02, "down"));
    expect(settled).toBe(h.sim.control.billedNano(fundingKey));
    const last = await chat(grantToken, { model: "wattfare/fee-model" });
    expect(last.status).toBe(402);
    expect(await errorOf(last)).toMatchObject({ code: "grant_invalid" });
  });

  it("gives the use back when the upstream provably billed nothing", async () => {
    const { grantToken } = await grant({ maxUsd: 1, maxUses: 1 });
    h.sim.control.setFaults({ status: 500 });
    expect((await chat(grantToken)).status).toBe(502);
    h.sim.control.resetFaults();
    await h.drain();
    expect((await chat(grantToken)).status).toBe(200);
  });

  it.each([
    ["expired", async (t: string) => h.clock.advance(25 * 3600_000) ?? t, "This grant has expired."],
    [
      "revoked",
      async (t: string) => {
        const g = h.store.db.prepare("SELECT id FROM grants").get() as { id: string };
        await h.store.revokeGrant(g.id, payerId, h.clock.now());
        return t;
      },
      "This grant was revoked by the payer.",
    ],
  ])("refuses a grant that is %s with 402 grant_invalid saying so", async (_name, spoil, message) => {
    const { grantToken } = await grant({ maxUsd: 1 });
    await spoil(grantToken);
    const res = await chat(grantToken);
    expect(res.status).toBe(402);
    expect(res.headers.get("x-should-retry")).toBe("false");
    expect(await errorOf(res)).toEqual({ code: "grant_invalid", message, type: "payment_required" });
  });

  it.each([
    [
      "revoked",
      (grantId: string) => h.store.revokeGrant(grantId, payerId, h.clock.now()),
      { code: "grant_invalid", message: "This grant was revoked by the payer." },
    ],
    ["paused by its payer", () => h.store.setPayerPaused(payerId, true), { code: "budget_exceeded" }],
  ] as const)(
    "checks a grant again once a slow body is in: one %s meanwhile spends nothing",
    async (_name, spoil, error) => {
      const { grantToken } = await grant({ maxUsd: 1 });
      const grantId = (h.store.db.prepare("SELECT id FROM grants").get() as { id: string }).id;
      const lookups = vi.spyOn(h.store, "grantByTokenHash");
      const body = JSON.stringify({ model: "openai/gpt-4o-mini", messages: hello, max_tokens: 16 });
      const answer = new Promise<{ status: number; text: string }>((resolve, reject) => {
        const req = http.request(`${h.url}/api/v1/chat/completions`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${h.secretKey}`,
            "x-wattfare-grant": grantToken,
            "content-type": "application/json",
            "content-length": Buffer.byteLength(body),
          },
        });
        req.on("response", (res) => {
          let text = "";
          res.on("data", (chunk: Buffer) => (text += chunk.toString()));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
        });
        req.on("error", reject);
        req.write(body.slice(0, 10));
        // Once the grant was checked at the headers, spoil it; then send the rest of the body.
        void expect
          .poll(() => lookups.mock.calls.length)
          .toBe(1)
          .then(async () => {
            await spoil(grantId);
            req.end(body.slice(10));
          });
      });
      const res = await answer;
      expect(res.status).toBe(402);
      expect((JSON.parse(res.text) as { error: unknown }).error).toMatchObject(error);
      expect(await h.ledgerTotal()).toBe(0n);
      expect(h.sim.control.requests()).toHaveLength(0);
    },
  );

  it("counts a request refused on a used-up grant toward its RL_CHAT, so a backend looping on it is slowed", async () => {
    await h.store.setAppLimits(h.appId, { chatPerMinute: 2 });
    const { grantToken } = await grant({ maxUsd: 1, maxUses: 1 });
    expect((await chat(grantToken)).status).toBe(200);
    await h.drain();
    const usedUp = await chat(grantToken);
    expect(usedUp.status).toBe(402);
    expect(await errorOf(usedUp)).toMatchObject({
      code: "grant_invalid",
      message: "This grant has no uses left.",
    });
    const limited = await chat(grantToken);
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("60");
  });

  it("applies the payer's funding state as for connections", async () => {
    const { grantToken } = await grant({ maxUsd: 1 });
    h.store.db.prepare("UPDATE funding SET state = 'invalid'").run();
    const res = await chat(grantToken);
    expect(res.status).toBe(402);
    expect((await errorOf(res)).code).toBe("funding_invalid");
  });

  it("rate-limits chat per grant, separately from users", async () => {
    await h.store.setAppLimits(h.appId, { chatPerMinute: 2 });
    const { grantToken } = await grant({ maxUsd: 1 });
    expect((await chat(grantToken)).status).toBe(200);
    expect((await chat(grantToken)).status).toBe(200);
    expect((await chat(grantToken)).status).toBe(429);
    const user = await h.post(
      { model: "openai/gpt-4o-mini", messages: hello, max_tokens: 16 },
      { "x-wattfare-user": "payer" },
    );
    expect(user.status).toBe(200);
  });
});

describe("GET /api/v1/grants/pending", () => {
  it("hands the approved token once, uncacheable, to the grant session's opener on a registered origin", async () => {
    const res = await h.app.inject({
      method: "POST",
      url: "/api/v1/sessions",
      headers: { authorization: `Bearer ${h.secretKey}`, "content-type": "application/json" },
      payload: { grant: { maxUsd: 2 } },
    });
    const session = (res.json() as { token: string }).token;
    const jti = decodeJwt(session).jti as string;
    const { grantToken } = await grant({ maxUsd: 2 }, jti);
    const pending = () =>
      h.app.inject({
        method: "GET",
        url: "/api/v1/grants/pending",
        headers: { authorization: `Bearer ${session}`, origin: ORIGIN },
      });
    expect(
      (
        await h.app.inject({
          method: "GET",
          url: "/api/v1/grants/pending",
          headers: { authorization: `Bearer ${session}`, origin: "https://evil.example" },
        })
      ).statusCode,
    ).toBe(403);
    const first = await pending();
    expect(first.statusCode).toBe(200);
    expect(first.json()).toEqual({ grantToken });
    // No browser or proxy cache may keep the token (every /api answer says so).
    expect(first.headers["cache-control"]).toBe("no-store");
    expect((await pending()).statusCode).toBe(404);
  });
});
