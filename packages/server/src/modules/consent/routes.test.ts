import { createHash } from "node:crypto";
import { SignJWT } from "jose";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { usdToNano } from "../../money.js";
import { createHarness } from "../../testing/harness.js";
import { createPayerHarness, type InjectBrowser, type PayerHarness } from "../../testing/payer-harness.js";
import { PAYER_RECHECK_MS } from "../funding/service.js";

const PASSWORD = "correct horse battery staple";
const ORIGIN = "http://127.0.0.1:5173";
let h: PayerHarness;
let app: { appId: string; secretKey: string };
let other: { appId: string; secretKey: string };
let n = 0;

beforeAll(async () => {
  h = await createPayerHarness({ logLevel: "info" });
  app = await h.createApp("Story Studio", [ORIGIN]);
  other = await h.createApp("Other app", ["https://other.example"]);
});
afterAll(async () => h.close());
// A fresh hour each test: sign-up throttles never reach from one test into the next.
beforeEach(() => h.clock.advance(2 * 3_600_000));

async function mint(body: unknown, secretKey = app.secretKey): Promise<string> {
  const res = await h.app.inject({
    method: "POST",
    url: "/api/v1/sessions",
    headers: { authorization: `Bearer ${secretKey}`, "content-type": "application/json" },
    payload: JSON.stringify(body),
  });
  expect(res.statusCode).toBe(200);
  return (res.json() as { token: string }).token;
}

const user = (monthlyUsd?: number) => ({
  appUserId: `user${++n}`,
  ...(monthlyUsd === undefined ? {} : { requestLimit: { monthlyUsd } }),
});

/** The popup's exchange, as its script sends it. */
function exchange(
  browser: InjectBrowser,
  body: { token: string; origin?: string; intent?: string; monthlyUsd?: number },
  headers: Record<string, string> = {},
) {
  return browser.postJson("/connect/session", { origin: ORIGIN, intent: "connect", ...body }, headers);
}

async function funded(browser: InjectBrowser): Promise<{ email: string; key: string }> {
  const email = `payer${++n}@example.com`;
  await browser.get("/signup");
  expect((await browser.post("/signup", { email, password: PASSWORD })).statusCode).toBe(303);
  await browser.get("/account");
  const key = h.sim.control.createKey({ credits: 50 });
  const res = await browser.post("/funding/key", { key, returnTo: "/account" });
  expect(res.headers.location).toBe("/account?funding=connected");
  return { email, key };
}

/** A funded, signed-in payer whose popup holds an open consent session for `body`. */
async function openPopup(body: unknown, intent = "connect", monthlyUsd?: number) {
  const browser = h.browser();
  const { email, key } = await funded(browser);
  const token = await mint(body);
  const res = await exchange(browser, { token, intent, ...(monthlyUsd === undefined ? {} : { monthlyUsd }) });
  expect(res.statusCode).toBe(200);
  const page = await browser.get("/connect/consent");
  expect(page.statusCode).toBe(200);
  return { browser, email, key, token, page };
}

/** Presses Continue on the funding step at `next` and follows the redirect to the approve step. */
async function pressContinue(browser: InjectBrowser, next: string) {
  const fund = await browser.get(next);
  const res = await browser.post("/connect/continue", {}, { csrf: csrfOf(fund.body, "/connect/continue") });
  expect(res.statusCode).toBe(303);
  return browser.get(String(res.headers.location));
}

/** The message and target of the result page's postMessage call. */
function postedMessage(html: string): { message: Record<string, unknown>; target: string } | undefined {
  const match = /opener\.postMessage\((\{.*\}), ("[^"]*")\);/.exec(html);
  if (!match?.[1] || !match[2]) return undefined;
  return { message: JSON.parse(match[1]) as Record<string, unknown>, target: JSON.parse(match[2]) as string };
}

const consentErrorOf = (html: string) => /id="consent-error">([^<]*)</.exec(html)?.[1];
/** The CSRF token of the form posting to `action` (each popup form carries its own). */
const csrfOf = (html: string, action: string) =>
  new RegExp(`action="${action}"[^>]*>\\s*<input type="hidden" name="csrf" value="([^"]+)"`).exec(
    html,
  )?.[1] ?? "";
const liveConnections = (appUserId: string) =>
  h.store.db
    .prepare("SELECT * FROM connections WHERE app_user_id = ? AND revoked_at IS NULL")
    .all(appUserId) as { payer_id: string; cap_nano: bigint; id: string }[];

describe("GET /connect", () => {
  it("serves the handshake page: one nonce script that announces itself to the opener and carries no secret", async () => {
    const res = await h.browser().get("/connect");
    expect(res.statusCode).toBe(200);
    const csp = String(res.headers["content-security-policy"]);
    const nonce = /script-src 'nonce-([^']+)'/.exec(csp)?.[1];
    expect(nonce).toBeTruthy();
    expect(res.body).toContain(`<script nonce="${nonce}">`);
    expect(res.body).toContain(`opener.postMessage({ type: "wattfare:ready" }, "*")`);
    expect(res.body).toContain("event.source !== opener");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(res.headers["referrer-policy"]).toBe("same-origin");
    expect(res.headers["cross-origin-opener-policy"]).toBeUndefined();
  });
});

describe("POST /connect/session", () => {
  it("exchanges a verified token from a registered origin for a 30-minute httpOnly consent cookie, stored hashed", async () => {
    const browser = h.browser();
    const token = await mint(user(5));
    const res = await exchange(browser, { token });
    expect(res.statusCode).toBe(200);
    // The page names its request, so a window whose request another popup replaced can tell (below).
    expect(res.json()).toEqual({ next: expect.stringMatching(/^\/connect\/consent\?c=[0-9a-f]{16}$/) });
    const cookie = String(res.headers["set-cookie"]);
    expect(cookie).toMatch(/^wf_consent=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Lax; Max-Age=1800$/);
    expect(res.headers["cross-origin-opener-policy"]).toBeUndefined();
    const value = browser.cookies.get("wf_consent") ?? "";
    const row = h.store.db
      .prepare("SELECT * FROM consent_sessions WHERE id_hash = ?")
      .get(createHash("sha256").update(value).digest()) as Record<string, unknown>;
    expect(row).toMatchObject({ app_id: app.appId, origin: ORIGIN, intent: "connect" });
    expect(row.requested_cap_nano).toBe(usdToNano(5, "down"));
    expect(
      JSON.stringify(h.store.db.prepare("SELECT * FROM consent_sessions").all(), (_k, v) => String(v)),
    ).not.toContain(value);
    expect(h.logs()).not.toContain(token);
  });

  it.each([
    ["another site's Origin", { origin: "https://evil.example" }],
    ["no Origin and a cross-site fetch", { origin: "", "sec-fetch-site": "cross-site" }],
  ])("refuses %s with 403 before reading the token", async (_name, headers) => {
    const res = await exchange(h.browser(), { token: await mint(user()) }, headers);
    expect(res.statusCode).toBe(403);
    expect(res.headers["set-cookie"]).toBeUndefined();
  });

  it("refuses another site's request with 403 before reading its body, malformed or not", async () => {
    const res = await h.app.inject({
      method: "POST",
      url: "/connect/session",
      headers: { origin: "https://evil.example", "content-type": "application/json" },
      payload: "{not json",
    });
    expect(res.statusCode).toBe(403);
    expect((res.json() as { error: { code: string } }).error.code).toBe("forbidden");
  });

  it("refuses an origin that is not registered for the token's app, and sets no cookie", async () => {
    for (const origin of ["https://evil.example", "https://other.example", "null"]) {
      const res = await exchange(h.browser(), { token: await mint(user()), origin });
      expect(res.statusCode).toBe(403);
      expect((res.json() as { error: { message: string } }).error.message).toContain("not registered");
      expect(res.headers["set-cookie"]).toBeUndefined();
    }
  });

  it("refuses, at the next step, a consent session opened before the app's key was rotated as compromised", async () => {
    const victim = await h.createApp("Victim app", [ORIGIN]);
    const browser = h.browser();
    await funded(browser);
    const token = await mint(user(), victim.secretKey);
    expect((await exchange(browser, { token })).statusCode).toBe(200);
    expect((await browser.get("/connect/consent")).body).not.toContain("key was replaced");
    h.clock.advance(1000);
    await h.store.rotateAppKey(victim.appId, Buffer.alloc(32, 5), h.clock.now(), h.clock.now(), true);
    h.clock.advance(1000);
    expect((await browser.get("/connect/consent")).body).toContain("This app&#39;s key was replaced");
  });

  it("rate-limits token exchanges per client address (60 a minute) with 429 and Retry-After", async () => {
    const browser = h.browser();
    const token = await mint(user());
    let last = await exchange(browser, { token });
    for (let i = 0; i < 60 && last.statusCode !== 429; i++) last = await exchange(browser, { token });
    expect(last.statusCode).toBe(429);
    expect(Number(last.headers["retry-after"])).toBeGreaterThan(0);
    h.clock.advance(61_000);
    expect((await exchange(browser, { token: await mint(user()) })).statusCode).toBe(200);
  });

  it("refuses another app's token sent from this app's origin", async () => {
    const res = await exchange(h.browser(), { token: await mint(user(), other.secretKey) });
    expect(res.statusCode).toBe(403);
  });

  it("refuses expired, forged and foreign-secret tokens with 401 and a message for the payer", async () => {
    const expired = await mint(user());
    h.clock.advance(601_000);
    const [head, payload, signature] = (await mint(user())).split(".");
    const claims = JSON.parse(Buffer.from(payload ?? "", "base64url").toString()) as Record<string, unknown>;
    const forged = `${head}.${Buffer.from(JSON.stringify({ ...claims, sub: "mallory" })).toString("base64url")}.${signature}`;
    const nowSeconds = Math.floor(h.clock.now() / 1000);
    const foreign = await new SignJWT({ typ: "user", app: app.appId, jti: "abcdefghijklmnopqrstuv" })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setSubject("alice")
      .setIssuedAt(nowSeconds)
      .setExpirationTime(nowSeconds + 600)
      .setIssuer(h.config.publicUrl)
      .setAudience("wattfare-session")
      .sign(new TextEncoder().encode("another-secret-another-secret-another-secret"));
    for (const token of [expired, forged, foreign, "not-a-jwt"]) {
      const res = await exchange(h.browser(), { token });
      expect(res.statusCode).toBe(401);
      expect((res.json() as { error: { message: string } }).error.message).toContain("could not be verified");
      expect(res.headers["set-cookie"]).toBeUndefined();
    }
  });

  it("takes a grant token only for the grant intent, and a user token never for it", async () => {
    const grantToken = await mint({ grant: { maxUsd: 2 } });
    expect((await exchange(h.browser(), { token: grantToken })).statusCode).toBe(401);
    expect((await exchange(h.browser(), { token: await mint(user()), intent: "grant" })).statusCode).toBe(
      401,
    );
    expect((await exchange(h.browser(), { token: grantToken, intent: "grant" })).statusCode).toBe(200);
  });

  it.each([
    ["an unknown intent", { intent: "steal" }],
    ["a negative monthlyUsd", { monthlyUsd: -1 }],
    ["an unknown field", { extra: 1 }],
    ["a missing token", { token: undefined }],
  ])("rejects %s with 400 naming the field", async (_name, body) => {
    const res = await h.browser().postJson("/connect/session", {
      token: await mint(user()),
      origin: ORIGIN,
      intent: "connect",
      ...body,
    });
    expect(res.statusCode).toBe(400);
    expect((res.json() as { error: { code: string } }).error.code).toBe("invalid_request");
  });
});

describe("POST /connect/session's monthlyUsd", () => {
  it("lowers a page's monthlyUsd above the server maximum to the maximum instead of refusing it", async () => {
    const browser = h.browser();
    const res = await exchange(browser, { token: await mint(user(5)), monthlyUsd: 1e21 });
    expect(res.statusCode).toBe(200);
    const row = h.store.db.prepare("SELECT requested_cap_nano FROM consent_sessions").get() as {
      requested_cap_nano: bigint;
    };
    expect(row.requested_cap_nano).toBe(usdToNano(h.config.limits.maxMonthlyUsd, "down"));
  });
});

describe("the consent steps", () => {
  it("tells a window whose request another app's popup replaced so, instead of showing or answering the newer one", async () => {
    const browser = h.browser();
    await funded(browser);
    const first = ((await exchange(browser, { token: await mint(user(5)) })).json() as { next: string }).next;
    expect((await browser.get(first)).body).toContain("Connect Story Studio");
    const csrf = browser.csrf();
    // Another app's page opens its popup in the same browser (one consent session per browser).
    const token = await mint(user(900), other.secretKey);
    const replaced = await exchange(browser, { token, origin: "https://other.example" });
    const second = (replaced.json() as { next: string }).next;

    const stale = await browser.get(first);
    expect(stale.statusCode).toBe(409);
    expect(stale.body).toContain("has replaced this window&#39;s request");
    expect(stale.body).not.toContain("Other app");
    const answer = await browser.post(
      "/connect/approve",
      { monthlyUsd: "900", c: first.slice(-16) },
      { csrf },
    );
    expect(answer.statusCode).toBe(409);
    const current = await browser.get(second);
    expect(current.statusCode).toBe(200);
    expect(current.body).toContain("Connect Other app");
  });

  it("walks a first-time payer through sign-up, funding and approval of the requested cap", async () => {
    const browser = h.browser();
    const body = user(5);
    const exchanged = await exchange(browser, { token: await mint(body) });
    expect(exchanged.statusCode).toBe(200);
    const next = (exchanged.json() as { next: string }).next;

    const signIn = await browser.get(next);
    expect(signIn.body).toContain("<strong>Story Studio</strong> at <code>http://127.0.0.1:5173</code>");
    expect(signIn.body).toContain('action="/signin"');
    expect(signIn.body).toContain(`name="returnTo" value="${next}"`);
    expect(signIn.body).toContain(`href="/signup?returnTo=${encodeURIComponent(next)}"`);
    expect(signIn.body).toContain('action="/connect/deny"');
    expect(signIn.body).toContain(`name="c" value="${next.slice(-16)}"`);

    await browser.get(`/signup?returnTo=${encodeURIComponent(next)}`);
    const signedUp = await browser.post("/signup", {
      email: `payer${++n}@example.com`,
      password: PASSWORD,
      returnTo: next,
    });
    expect(signedUp.headers.location).toBe(next);

    const fund = await browser.get(next);
    expect(fund.body).toContain('aria-labelledby="funding-heading"');
    expect(fund.body).toContain("Connect with OpenRouter");
    expect(fund.body).not.toContain('action="/connect/approve"');
    const pasted = await browser.post("/funding/key", {
      key: h.sim.control.createKey({ credits: 50 }),
      returnTo: next,
    });
    expect(pasted.headers.location).toBe(`${next}&funding=connected`);

    const approve = await browser.get(`${next}&funding=connected`);
    expect(approve.body).toContain('action="/connect/approve"');
    expect(approve.body).toContain('name="monthlyUsd" type="number"');
    expect(approve.body).toContain('value="5"');
    expect(approve.body).toContain("Story Studio asked for $5.00 a month.");

    const result = await browser.post("/connect/approve", { monthlyUsd: "5" });
    expect(result.statusCode).toBe(200);
    const posted = postedMessage(result.body);
    expect(posted?.target).toBe(ORIGIN);
    expect(posted?.message).toMatchObject({
      type: "wattfare:result",
      status: "approved",
      connection: { connected: true, limits: { monthlyUsd: 5 }, funding: "ok", paused: false },
    });
    expect(result.body).toContain("you can close this window");
    expect(String(result.headers["set-cookie"])).toContain(
      "wf_consent=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0",
    );
    expect(liveConnections(body.appUserId)).toHaveLength(1);
    expect(h.logs()).toContain('"msg":"connection approved"');

    // Answered once: a replayed submit, or a reload, does nothing more.
    const again = await browser.post("/connect/approve", { monthlyUsd: "7" }, { csrf: null });
    expect(again.statusCode).toBe(400);
    expect(postedMessage(again.body)).toBeUndefined();
    expect(liveConnections(body.appUserId)[0]?.cap_nano).toBe(usdToNano(5, "down"));
  });

  it("pre-fills the configured default when the app asked for no cap", async () => {
    const { page } = await openPopup(user());
    expect(page.body).toContain(`value="${h.config.limits.defaultMonthlyUsd}"`);
    expect(page.body).toContain(`Suggested: $${h.config.limits.defaultMonthlyUsd}.00 a month.`);
  });

  it("asks for the extra confirmation above the requested cap, and refuses amounts above the maximum", async () => {
    const body = user(2);
    const { browser } = await openPopup(body);
    const csrf = browser.csrf();
    const above = await browser.post("/connect/approve", { monthlyUsd: "3" }, { csrf });
    expect(above.statusCode).toBe(400);
    expect(consentErrorOf(above.body)).toContain("more than the $2.00 suggested");
    expect(postedMessage(above.body)).toBeUndefined();
    const tooMuch = await browser.post(
      "/connect/approve",
      { monthlyUsd: String(h.config.limits.maxMonthlyUsd + 1), confirmAbove: "1" },
      { csrf },
    );
    expect(consentErrorOf(tooMuch.body)).toBe("The cap can be at most $1,000.00.");
    // The hint names the maximum the way the error does.
    expect(tooMuch.body).toContain("any amount up to $1,000.00.");
    for (const bad of ["", "0", "abc", "-1"]) {
      expect((await browser.post("/connect/approve", { monthlyUsd: bad }, { csrf })).statusCode).toBe(400);
    }
    expect(liveConnections(body.appUserId)).toHaveLength(0);
    const ok = await browser.post("/connect/approve", { monthlyUsd: "3", confirmAbove: "1" }, { csrf });
    expect(postedMessage(ok.body)?.message).toMatchObject({ connection: { limits: { monthlyUsd: 3 } } });
  });

  it("refuses an answer without the consent-bound CSRF token or from another site", async () => {
    const body = user(2);
    const { browser } = await openPopup(body);
    const noCsrf = await browser.post("/connect/approve", { monthlyUsd: "1" }, { csrf: null });
    expect(noCsrf.statusCode).toBe(403);
    // The payer's own account CSRF token is not the consent form's.
    await browser.get("/account");
    const accountCsrf = browser.csrf();
    expect(
      (await browser.post("/connect/approve", { monthlyUsd: "1" }, { csrf: accountCsrf })).statusCode,
    ).toBe(403);
    await browser.get("/connect/consent");
    const crossSite = await browser.post(
      "/connect/approve",
      { monthlyUsd: "1" },
      { headers: { origin: "https://evil.example" } },
    );
    expect(crossSite.statusCode).toBe(403);
    expect(liveConnections(body.appUserId)).toHaveLength(0);
  });

  it("denies: posts status denied to the verified origin and connects nothing", async () => {
    const body = user(2);
    const { browser, page } = await openPopup(body);
    const denied = await browser.post("/connect/deny", {}, { csrf: csrfOf(page.body, "/connect/deny") });
    expect(postedMessage(denied.body)).toEqual({
      message: { type: "wattfare:result", status: "denied" },
      target: ORIGIN,
    });
    expect(liveConnections(body.appUserId)).toHaveLength(0);
  });

  it("lets a signed-out visitor deny at the sign-in step", async () => {
    const browser = h.browser();
    await exchange(browser, { token: await mint(user()) });
    const page = await browser.get("/connect/consent");
    const denied = await browser.post("/connect/deny", {}, { csrf: csrfOf(page.body, "/connect/deny") });
    expect(postedMessage(denied.body)?.message.status).toBe("denied");
  });

  it("says no request is open when there is no consent cookie, and posts nothing", async () => {
    const res = await h.browser().get("/connect/consent");
    expect(res.statusCode).toBe(400);
    expect(res.body).not.toContain("<script");
  });

  it("reports an expired consent session to its verified origin as an error", async () => {
    const { browser } = await openPopup(user());
    h.clock.advance(31 * 60_000);
    const res = await browser.get("/connect/consent");
    expect(res.statusCode).toBe(400);
    expect(postedMessage(res.body)).toEqual({
      message: {
        type: "wattfare:result",
        status: "error",
        message: "This request expired. Start again from the app.",
      },
      target: ORIGIN,
    });
  });

  it("opens a raise at the requested higher cap and changes the payer's own connection", async () => {
    const body = user(2);
    const first = await openPopup(body);
    await first.browser.post("/connect/approve", { monthlyUsd: "2" });
    const token = await mint(body);
    expect((await exchange(first.browser, { token, intent: "raise", monthlyUsd: 8 })).statusCode).toBe(200);
    const page = await first.browser.get("/connect/consent");
    expect(page.body).toContain('value="8"');
    expect(page.body).toContain("Story Studio asked for $8.00 a month.");
    expect(page.body).toContain("of a\n$2.00 cap");
    const result = await first.browser.post("/connect/approve", { monthlyUsd: "8" });
    expect(postedMessage(result.body)?.message).toMatchObject({ connection: { limits: { monthlyUsd: 8 } } });
    const rows = liveConnections(body.appUserId);
    expect(rows).toHaveLength(1);
  });

  it("opens reconnect-funding at the funding step even when the funding works, then keeps the cap", async () => {
    const body = user(2);
    const first = await openPopup(body);
    await first.browser.post("/connect/approve", { monthlyUsd: "2" });
    const reconnect = await exchange(first.browser, { token: await mint(body), intent: "reconnect-funding" });
    const next = (reconnect.json() as { next: string }).next;
    const fund = await first.browser.get(next);
    expect(fund.body).toContain('aria-labelledby="funding-heading"');
    const continued = await first.browser.post(
      "/connect/continue",
      {},
      { csrf: csrfOf(fund.body, "/connect/continue") },
    );
    expect(continued.statusCode).toBe(303);
    expect(continued.headers.location).toBe(`${next}&step=approve`);
    const done = await first.browser.get("/connect/consent?step=approve");
    expect(done.body).toContain("keeps its cap of $2.00 a month");
    const result = await first.browser.post("/connect/approve", {});
    expect(postedMessage(result.body)?.message).toMatchObject({
      status: "approved",
      connection: { connected: true, limits: { monthlyUsd: 2 }, funding: "ok" },
    });
  });

  it("asks OpenRouter again when the payer continues after topping up, so reconnect-funding answers with funding ok at once", async () => {
    const body = user(2);
    const first = await openPopup(body);
    await first.browser.post("/connect/approve", { monthlyUsd: "2" });
    const reconnect = await exchange(first.browser, { token: await mint(body), intent: "reconnect-funding" });
    const next = (reconnect.json() as { next: string }).next;
    // A Done page still open from before the key ran out.
    const stale = await first.browser.get(`${next}&step=approve`);
    const csrf = csrfOf(stale.body, "/connect/approve");
    expect(csrf).not.toBe("");

    // The key's own limit ran out, and chat marked the funding out of credits just now.
    h.sim.control.setLimit(first.key, 0);
    const payerId = (await h.store.payerByEmail(first.email))?.id ?? "";
    const [row] = await h.store.fundingHistory(payerId, 1);
    await h.store.setFundingState(row?.id ?? "", "insufficient", 0n, h.clock.now());
    expect((await first.browser.get(next)).body).toContain("Out of credits");

    // Not topped up yet: Done and Continue both say so, with the figure, and answer nothing.
    h.clock.advance(PAYER_RECHECK_MS);
    const refused = await first.browser.post("/connect/approve", {}, { csrf });
    expect(refused.statusCode).toBe(400);
    expect(refused.body).toContain("still out of credits: $0.00 left of its own limit");
    expect(postedMessage(refused.body)).toBeUndefined();
    const still = await pressContinue(first.browser, next);
    expect(still.body).toContain("still out of credits: $0.00 left of its own limit");
    expect(still.body).not.toContain("keeps its cap");

    // Topped up a few seconds later: no wait for chat's 30-second re-check.
    h.sim.control.setLimit(first.key, 10);
    h.clock.advance(PAYER_RECHECK_MS);
    const done = await pressContinue(first.browser, next);
    expect(done.body).toContain("keeps its cap of $2.00 a month");
    const result = await first.browser.post("/connect/approve", {});
    expect(postedMessage(result.body)?.message).toMatchObject({
      status: "approved",
      connection: { connected: true, funding: "ok" },
    });
  });

  it("lets a payer who paused all spending resume it as they approve a raise, and leaves it paused unless they tick it", async () => {
    const body = user(2);
    const first = await openPopup(body);
    await first.browser.post("/connect/approve", { monthlyUsd: "2" });
    const payerId = (await h.store.payerByEmail(first.email))?.id ?? "";
    await h.store.setPayerPaused(payerId, true);

    const raise = async () => {
      expect((await exchange(first.browser, { token: await mint(body), intent: "raise" })).statusCode).toBe(
        200,
      );
      return first.browser.get("/connect/consent");
    };
    const page = await raise();
    expect(page.body).toContain("Spending is paused on your account");
    expect(page.body).toMatch(/<input type="checkbox" id="consent-resume" name="resumeSpending" value="1"/);
    const kept = await first.browser.post("/connect/approve", { monthlyUsd: "2" });
    expect(postedMessage(kept.body)?.message).toMatchObject({
      status: "approved",
      connection: { paused: true },
    });
    expect(kept.body).toContain("Spending is still paused on your account");
    expect((await h.store.payerByEmail(first.email))?.paused).toBe(true);

    await raise();
    const resumed = await first.browser.post("/connect/approve", { monthlyUsd: "2", resumeSpending: "1" });
    expect(postedMessage(resumed.body)?.message).toMatchObject({
      status: "approved",
      connection: { connected: true, paused: false },
    });
    expect(resumed.body).toContain("Spending is resumed on your account.");
    expect((await h.store.payerByEmail(first.email))?.paused).toBe(false);
  });

  it("makes a new payer confirm switching payer, then revokes the old connection and starts at zero", async () => {
    const body = user(2);
    const first = await openPopup(body);
    await first.browser.post("/connect/approve", { monthlyUsd: "2" });
    const [old] = liveConnections(body.appUserId);
    const second = await openPopup(body);
    expect(second.page.body).toContain("Another Wattfare account pays for this account");
    expect(second.page.body).toContain('name="switchPayer"');
    const refused = await second.browser.post("/connect/approve", { monthlyUsd: "2" });
    expect(refused.statusCode).toBe(400);
    expect(consentErrorOf(refused.body)).toContain("Switch payer");
    expect(liveConnections(body.appUserId)[0]?.id).toBe(old?.id);
    const switched = await second.browser.post("/connect/approve", { monthlyUsd: "2", switchPayer: "1" });
    expect(postedMessage(switched.body)?.message).toMatchObject({
      status: "approved",
      connection: { usage: { monthlyUsd: 0 } },
    });
    const [now] = liveConnections(body.appUserId);
    expect(now?.id).not.toBe(old?.id);
    expect(now?.payer_id).not.toBe(old?.payer_id);
  });

  it("says another account signed in meanwhile when an Approve form rendered for one payer is posted after another signs in", async () => {
    const body = user(2);
    const { browser, email, page } = await openPopup(body);
    const payerTag = /name="payer" value="([^"]+)"/.exec(page.body)?.[1] ?? "";
    const approveCsrf = csrfOf(page.body, "/connect/approve");
    const approveOldForm = () =>
      browser.post("/connect/approve", { monthlyUsd: "2", payer: payerTag }, { csrf: approveCsrf });
    // In another tab: sign out, then back in as the same payer: the form is just old.
    await browser.get("/account");
    await browser.post("/signout", {});
    await browser.get("/signin");
    await browser.post("/signin", { email, password: PASSWORD });
    const stale = await approveOldForm();
    expect(stale.statusCode).toBe(403);
    expect(consentErrorOf(stale.body)).toBe("This form had expired, so nothing was sent. Please try again.");
    // A tag that is not this server's proves nothing about who the form was for.
    const garbled = await browser.post(
      "/connect/approve",
      { monthlyUsd: "2", payer: "not-a-tag" },
      { csrf: approveCsrf },
    );
    expect(consentErrorOf(garbled.body)).toBe(
      "This form had expired, so nothing was sent. Please try again.",
    );
    // Then out again, and a new account signs up: the form was someone else's.
    await browser.get("/account");
    await browser.post("/signout", {});
    await funded(browser);
    const switched = await approveOldForm();
    expect(switched.statusCode).toBe(403);
    expect(consentErrorOf(switched.body)).toBe(
      "Another Wattfare account signed in in this browser meanwhile, so nothing was sent. Check who pays below, then try again.",
    );
    expect(liveConnections(body.appUserId)).toHaveLength(0);
  });

  it("says another account signed in meanwhile when the funding step's Continue is pressed after another signs in", async () => {
    const body = user(2);
    const first = await openPopup(body);
    await first.browser.post("/connect/approve", { monthlyUsd: "2" });
    const reconnect = await exchange(first.browser, { token: await mint(body), intent: "reconnect-funding" });
    const fund = await first.browser.get((reconnect.json() as { next: string }).next);
    const payerTag = /name="payer" value="([^"]+)"/.exec(fund.body)?.[1] ?? "";
    expect(payerTag).not.toBe("");
    const csrf = csrfOf(fund.body, "/connect/continue");
    await first.browser.get("/account");
    await first.browser.post("/signout", {});
    await funded(first.browser);
    const switched = await first.browser.post("/connect/continue", { payer: payerTag }, { csrf });
    expect(switched.statusCode).toBe(403);
    // The funding step shows it as the page's alert (it has no form of its own to describe).
    expect(/role="alert">([^<]*)</.exec(switched.body)?.[1]).toBe(
      "Another Wattfare account signed in in this browser meanwhile, so nothing was sent. Check who pays below, then try again.",
    );
  });

  it("shows a grant's terms and returns the grant token to the verified origin, once through /grants/pending too", async () => {
    const token = await mint({ grant: { maxUsd: 2, maxUses: 3, expiresInSeconds: 3600 } });
    const browser = h.browser();
    await funded(browser);
    expect((await exchange(browser, { token, intent: "grant" })).statusCode).toBe(200);
    const page = await browser.get("/connect/consent");
    expect(page.body).toContain("<dt>Up to</dt><dd>$2.00 in total</dd>");
    expect(page.body).toContain("<dt>Uses</dt><dd>3 requests</dd>");
    expect(page.body).toContain("<dt>Expires</dt><dd>1 hour after you approve</dd>");
    const result = await browser.post("/connect/approve", {});
    const posted = postedMessage(result.body);
    expect(posted?.target).toBe(ORIGIN);
    expect(posted?.message.status).toBe("approved");
    const grantToken = String(posted?.message.grantToken);
    expect(grantToken).toMatch(/^gt_[0-9A-Za-z]{43}$/);
    expect(h.logs()).not.toContain(grantToken);
    const pending = () =>
      h.app.inject({
        method: "GET",
        url: "/api/v1/grants/pending",
        headers: { authorization: `Bearer ${token}`, origin: ORIGIN },
      });
    expect((await pending()).json()).toEqual({ grantToken });
    expect((await pending()).statusCode).toBe(404);
    // The same grant session can't be approved a second time.
    const replay = await exchange(h.browser(), { token, intent: "grant" });
    expect(replay.statusCode).toBe(403);
  });

  it("sends every page of the flow with frame-ancestors 'none', Referrer-Policy same-origin and no COOP", async () => {
    const { browser } = await openPopup(user());
    const responses = [
      await browser.get("/connect"),
      await browser.get("/connect/consent"),
      await browser.post("/connect/approve", { monthlyUsd: "1" }),
      await h.browser().get("/connect/consent"),
    ];
    for (const res of responses) {
      expect(res.headers["content-security-policy"]).toContain("frame-ancestors 'none'");
      expect(res.headers["referrer-policy"]).toBe("same-origin");
      expect(res.headers["cross-origin-opener-policy"]).toBeUndefined();
    }
  });
});

describe("the consent cookie under https", () => {
  it("is Secure and __Host- prefixed when the public URL is https", async () => {
    const secure = await createHarness({ env: { WATTFARE_PUBLIC_URL: "https://pay.example" } });
    try {
      const created = await secure.createApp("A", ["https://app.example"]);
      const minted = await secure.app.inject({
        method: "POST",
        url: "/api/v1/sessions",
        headers: { authorization: `Bearer ${created.secretKey}`, "content-type": "application/json" },
        payload: { appUserId: "u" },
      });
      const res = await secure.app.inject({
        method: "POST",
        url: "/connect/session",
        headers: { origin: "https://pay.example", "content-type": "application/json" },
        payload: {
          token: (minted.json() as { token: string }).token,
          origin: "https://app.example",
          intent: "connect",
        },
      });
      expect(res.statusCode).toBe(200);
      expect(String(res.headers["set-cookie"])).toMatch(
        /^__Host-wf_consent=[^;]+; Path=\/; HttpOnly; SameSite=Lax; Secure; Max-Age=1800$/,
      );
    } finally {
      await secure.close();
    }
  });
});

describe("a raise for a payer who paused spending", () => {
  it("pre-fills the payer's current cap, not the token's lower lim, so resuming never lowers the cap", async () => {
    const body = user(1); // the app mints every session token with requestLimit $1, as the example app does
    const first = await openPopup(body);
    const approved = await first.browser.post("/connect/approve", { monthlyUsd: "2", confirmAbove: "1" });
    expect(postedMessage(approved.body)?.message).toMatchObject({ status: "approved" });
    const payerId = (await h.store.payerByEmail(first.email))?.id ?? "";
    await h.store.setPayerPaused(payerId, true);

    // What recover() sends for budget_exceeded when paused with room under the cap: raise, no monthlyUsd.
    expect((await exchange(first.browser, { token: await mint(body), intent: "raise" })).statusCode).toBe(
      200,
    );
    const page = await first.browser.get("/connect/consent");
    const shown = /id="consent-cap"[^>]*value="([^"]*)"/.exec(page.body)?.[1];
    // The payer ticks Resume spending and presses Approve with the value shown.
    await first.browser.post("/connect/approve", { monthlyUsd: shown ?? "", resumeSpending: "1" });
    expect(liveConnections(body.appUserId)[0]?.cap_nano).toBe(usdToNano(2, "down"));
    expect(shown).toBe("2");
  });
});

describe("the popup's /key re-check", () => {
  /** A payer whose reconnect-funding popup is open and whose key chat has just marked out of credits. */
  async function outOfCredits() {
    const body = user(2);
    const first = await openPopup(body);
    await first.browser.post("/connect/approve", { monthlyUsd: "2" });
    const reconnect = await exchange(first.browser, { token: await mint(body), intent: "reconnect-funding" });
    const next = (reconnect.json() as { next: string }).next;
    h.sim.control.setLimit(first.key, 0);
    const payerId = (await h.store.payerByEmail(first.email))?.id ?? "";
    const [row] = await h.store.fundingHistory(payerId, 1);
    await h.store.setFundingState(row?.id ?? "", "insufficient", 0n, h.clock.now());
    h.clock.advance(60_000);
    return { ...first, next };
  }

  function countKeyReads() {
    const upstream = (h.app as unknown as { chat: { upstream: { get: (path: string) => unknown } } }).chat
      .upstream;
    const spy = vi.spyOn(upstream, "get");
    return {
      count: () => spy.mock.calls.filter(([path]) => path === "/key").length,
      restore: () => spy.mockRestore(),
    };
  }

  it("does not ask OpenRouter on a GET of the approve step, which any site can cause with a navigation", async () => {
    const { browser, next } = await outOfCredits();
    const reads = countKeyReads();
    try {
      const page = await browser.get(`${next}&step=approve`);
      expect(page.body).toContain("still out of credits: $0.00 left of its own limit");
      expect(reads.count()).toBe(0);
    } finally {
      reads.restore();
    }
  });

  it("asks OpenRouter once for twenty Continue and Done presses at once, and again only a few seconds later", async () => {
    const { browser, next } = await outOfCredits();
    const fund = await browser.get(next);
    const continueCsrf = csrfOf(fund.body, "/connect/continue");
    const approve = await browser.get(`${next}&step=approve`);
    const approveCsrf = csrfOf(approve.body, "/connect/approve");
    const reads = countKeyReads();
    try {
      const press = (i: number) =>
        i % 2 === 0
          ? browser.post("/connect/continue", {}, { csrf: continueCsrf })
          : browser.post("/connect/approve", {}, { csrf: approveCsrf });
      await Promise.all(Array.from({ length: 20 }, (_, i) => press(i)));
      expect(reads.count()).toBe(1);
      // The clock stands still: a payer (or a script with their cookies) pressing again is not asked for.
      await Promise.all(Array.from({ length: 5 }, (_, i) => press(i)));
      expect(reads.count()).toBe(1);
      h.clock.advance(PAYER_RECHECK_MS);
      await press(0);
      expect(reads.count()).toBe(2);
    } finally {
      reads.restore();
    }
  });
});
