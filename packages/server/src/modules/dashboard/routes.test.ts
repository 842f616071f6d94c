import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { usdToNano } from "../../money.js";
import { postChat } from "../../testing/harness.js";
import { createPayerHarness, type InjectBrowser, type PayerHarness } from "../../testing/payer-harness.js";
import { approveGrant } from "../grants/index.js";
import { LISTED_GRANTS } from "./service.js";

const PASSWORD = "correct horse battery staple";
let h: PayerHarness;
let app: { appId: string; secretKey: string };
let n = 0;

beforeAll(async () => {
  h = await createPayerHarness();
  app = await h.createApp("Story Studio", ["http://127.0.0.1:5173"]);
  await h.store.setAppLimits(app.appId, { chatPerMinute: 10_000 });
});
afterAll(async () => h.close());
beforeEach(() => h.clock.advance(2 * 3_600_000));

interface Payer {
  browser: InjectBrowser;
  payerId: string;
}

/** A signed-up payer with a working key, on /account. */
async function payer(): Promise<Payer> {
  const browser = h.browser();
  const email = `payer${++n}@example.com`;
  await browser.get("/signup");
  await browser.post("/signup", { email, password: PASSWORD });
  await browser.get("/account");
  await browser.post("/funding/key", { key: h.sim.control.createKey({ credits: 50 }), returnTo: "/account" });
  await browser.get("/account");
  const found = await h.store.payerByEmail(email);
  if (!found) throw new Error("no payer");
  return { browser, payerId: found.id };
}

async function connect(p: Payer, capUsd: number): Promise<{ appUserId: string; connectionId: string }> {
  const appUserId = `user${++n}`;
  const result = await h.store.approveConnection({
    appId: app.appId,
    appUserId,
    payerId: p.payerId,
    capNano: usdToNano(capUsd, "down"),
    switchPayer: false,
    newConnectionId: `con_dash${n}`,
    now: h.clock.now(),
  });
  if (!result.ok) throw new Error("not connected");
  return { appUserId, connectionId: result.connection.id };
}

function chat(headers: Record<string, string>, body: Record<string, unknown> = {}) {
  return postChat(
    h.url,
    app.secretKey,
    {
      model: "openai/gpt-4o-mini",
      messages: [{ role: "user", content: "Hello there" }],
      max_tokens: 20,
      ...body,
    },
    { headers },
  );
}

async function errorOf(res: Response) {
  expect(res.status).toBe(402);
  return ((await res.json()) as { error: { code: string; message: string } }).error;
}

async function ok(res: Response) {
  expect(res.status).toBe(200);
  await res.arrayBuffer();
  await h.app.chat.proxy.drain();
}

/** The dashboard after a form: follows the redirect and returns the page. */
async function submit(p: Payer, path: string, fields: Record<string, string>) {
  const res = await p.browser.post(path, fields);
  expect(res.statusCode).toBe(303);
  const location = String(res.headers.location);
  return { location, page: (await p.browser.get(location)).body };
}

const articleOf = (page: string, name: string) =>
  new RegExp(`<article aria-labelledby="[^"]+">\\s*<h3 id="[^"]+">${name}</h3>[\\s\\S]*?</article>`).exec(
    page,
  )?.[0] ?? "";

describe("the payer dashboard", () => {
  it("shows each connected app's spend this month against its cap as a labelled progress bar", async () => {
    const p = await payer();
    const { appUserId, connectionId } = await connect(p, 5);
    await ok(await chat({ "x-wattfare-user": appUserId }));
    const page = (await p.browser.get("/account")).body;
    const article = articleOf(page, "Story Studio");
    expect(article).toContain(
      `<label for="spend-${connectionId}" id="spend-label-${connectionId}">This month: $0.0`,
    );
    expect(article).toMatch(/of \$5\.00 \(0%\)<\/label>/);
    expect(article).toMatch(
      new RegExp(`<progress id="spend-${connectionId}" max="5" value="0\\.0000\\d+">0%</progress>`),
    );
    expect(article).toContain(
      `<label for="cap-${connectionId}">Monthly cap for Story Studio in US dollars</label>`,
    );
    expect(article).toContain('value="5" required');
    expect(article).toContain("Revoke Story Studio");
  });

  it("shows six months of spending as a chart with a text alternative and a table, and recent requests", async () => {
    const p = await payer();
    const { appUserId } = await connect(p, 5);
    await ok(await chat({ "x-wattfare-user": appUserId }));
    // Into the next month (the clock starts mid-November), within the 30-day web session.
    h.clock.advance(20 * 86_400_000);
    await ok(await chat({ "x-wattfare-user": appUserId }));
    await ok(await chat({ "x-wattfare-user": appUserId }));
    const page = (await p.browser.get("/account")).body;
    expect(page).toContain(
      '<svg class="chart" viewBox="0 0 360 160" role="img" aria-label="Spending by month.',
    );
    expect([...page.matchAll(/<rect class="bar"/g)]).toHaveLength(6);
    const rows = [
      ...page.matchAll(
        /<tr><th scope="row">([A-Z][a-z]{2} \d{4})<\/th><td>([^<]+)<\/td><td>(\d+)<\/td><\/tr>/g,
      ),
    ];
    expect(rows).toHaveLength(6);
    expect(rows.map((r) => Number(r[3]))).toEqual([0, 0, 0, 0, 1, 2]);
    const recent = [
      ...page.matchAll(
        /<tr><td>(\d{4}-\d\d-\d\d \d\d:\d\d UTC)<\/td><td>Story Studio<\/td><td><code>openai\/gpt-4o-mini<\/code><\/td><td>(\d+) in, (\d+) out<\/td><td>\$0\.\d+<\/td><\/tr>/g,
      ),
    ];
    expect(recent).toHaveLength(3);
    const ledger = await h.store.payerRecentRequests(p.payerId, 10);
    expect(ledger.map((r) => r.completionTokens)).toEqual(recent.map((r) => Number(r[3])));
  });

  it("raises a cap at once: a request that only fits the raised cap is admitted right after", async () => {
    const p = await payer();
    const { appUserId, connectionId } = await connect(p, 0.0005);
    const big = { max_tokens: 1000 };
    const clampOff = { "x-wattfare-user": appUserId, "x-wattfare-clamp": "off" };
    expect((await errorOf(await chat(clampOff, big))).code).toBe("budget_exceeded");
    const { location, page } = await submit(p, "/account/connections/cap", {
      connection: connectionId,
      monthlyUsd: "1",
    });
    expect(location).toBe("/account?dashboard=cap_saved");
    expect(page).toContain("The cap is saved.");
    await ok(await chat(clampOff, big));
  });

  it("revokes a connection at once: chat answers 402 not_connected", async () => {
    const p = await payer();
    const { appUserId, connectionId } = await connect(p, 5);
    await ok(await chat({ "x-wattfare-user": appUserId }));
    const { page } = await submit(p, "/account/connections/revoke", { connection: connectionId });
    expect(page).toContain("Access revoked.");
    expect(articleOf(page, "Story Studio")).toBe("");
    expect((await errorOf(await chat({ "x-wattfare-user": appUserId }))).code).toBe("not_connected");
  });

  it("pauses all spending at once (402 budget_exceeded) and resumes it", async () => {
    const p = await payer();
    const { appUserId } = await connect(p, 5);
    const { page } = await submit(p, "/account/spending", { paused: "1" });
    expect(page).toContain('role="switch" aria-checked="true" aria-label="Pause all spending"');
    expect(page).toContain("No app can use AI paid by you.");
    expect(await errorOf(await chat({ "x-wattfare-user": appUserId }))).toMatchObject({
      code: "budget_exceeded",
      message: "Spending paused by the payer.",
    });
    const resumed = await submit(p, "/account/spending", { paused: "0" });
    expect(resumed.page).toContain('role="switch" aria-checked="false" aria-label="Pause all spending"');
    await ok(await chat({ "x-wattfare-user": appUserId }));
  });

  it("lists grants with their terms and revokes one at once (402 grant_invalid)", async () => {
    const p = await payer();
    const { grantToken, grantId } = await approveGrant(
      h.deps,
      {
        appId: app.appId,
        payerId: p.payerId,
        terms: { maxUsd: 2, maxUses: 3 },
        sessionJti: `jti-dashboard-${++n}`,
        sessionExpiresAt: Math.floor(h.clock.now() / 1000) + 600,
      },
      h.clock.now(),
    );
    await ok(await chat({ "x-wattfare-grant": grantToken }));
    const page = (await p.browser.get("/account")).body;
    const grant =
      new RegExp(`<article aria-labelledby="grant-${grantId}">[\\s\\S]*?</article>`).exec(page)?.[0] ?? "";
    expect(grant).toContain("Story Studio grant of");
    expect(grant).toContain('<strong class="state state-ok">Active</strong>');
    expect(grant).toContain("<dt>Up to</dt><dd>$2.00 in total</dd>");
    expect(grant).toContain("<dt>Uses left</dt><dd>2 of 3</dd>");
    expect(grant).toMatch(/<dt>Left<\/dt><dd>\$1\.99\d*<\/dd>/);
    expect(grant).toMatch(/<dt>Expires<\/dt><dd>\d{4}-\d\d-\d\d \d\d:\d\d UTC<\/dd>/);
    const revoked = await submit(p, "/account/grants/revoke", { grant: grantId });
    expect(revoked.page).toContain("Grant revoked.");
    expect(revoked.page).toContain('<strong class="state state-invalid">Revoked</strong>');
    expect(await errorOf(await chat({ "x-wattfare-grant": grantToken }))).toMatchObject({
      code: "grant_invalid",
      message: "This grant was revoked by the payer.",
    });
    expect(page).toContain("(grant)");
  });

  it("lists a live grant however many newer grants ended after it, so it can still be revoked", async () => {
    const p = await payer();
    const approve = () =>
      approveGrant(
        h.deps,
        {
          appId: app.appId,
          payerId: p.payerId,
          terms: { maxUsd: 1 },
          sessionJti: `jti-dashboard-${++n}`,
          sessionExpiresAt: Math.floor(h.clock.now() / 1000) + 600,
        },
        h.clock.now(),
      );
    const old = await approve();
    for (let i = 0; i < LISTED_GRANTS + 1; i++) {
      h.clock.advance(1000);
      const { grantId } = await approve();
      await h.store.revokeGrant(grantId, p.payerId, h.clock.now());
    }
    const page = (await p.browser.get("/account")).body;
    expect(page).toContain(`name="grant" value="${old.grantId}"`);
    expect(page.match(/<article aria-labelledby="grant-/g)).toHaveLength(LISTED_GRANTS + 1);
  });

  it("never touches another payer's connection or grant", async () => {
    const owner = await payer();
    const { connectionId } = await connect(owner, 5);
    const intruder = await payer();
    const { location } = await submit(intruder, "/account/connections/cap", {
      connection: connectionId,
      monthlyUsd: "999",
    });
    expect(location).toBe("/account?dashboard=not_found");
    await submit(intruder, "/account/connections/revoke", { connection: connectionId });
    const [row] = await h.store.payerConnections(owner.payerId);
    expect(row?.capNano).toBe(usdToNano(5, "down"));
    expect(row?.revokedAt).toBeNull();
  });

  it("refuses a cap that is not an amount within the limit and keeps the old one", async () => {
    const p = await payer();
    const { connectionId } = await connect(p, 5);
    for (const monthlyUsd of ["", "ten", "-1", String(h.config.limits.maxMonthlyUsd + 1)]) {
      const { location, page } = await submit(p, "/account/connections/cap", {
        connection: connectionId,
        monthlyUsd,
      });
      expect(location).toBe("/account?dashboard=cap_invalid");
      expect(page).toContain("That cap was not saved");
    }
    expect((await h.store.payerConnections(p.payerId))[0]?.capNano).toBe(usdToNano(5, "down"));
  });

  it("requires the payer's CSRF token and session on every dashboard form", async () => {
    const p = await payer();
    const { connectionId } = await connect(p, 5);
    const forms: [string, Record<string, string>][] = [
      ["/account/connections/cap", { connection: connectionId, monthlyUsd: "9" }],
      ["/account/connections/revoke", { connection: connectionId }],
      ["/account/spending", { paused: "1" }],
      ["/account/grants/revoke", { grant: "gr_x" }],
    ];
    for (const [path, fields] of forms) {
      expect((await p.browser.post(path, fields, { csrf: null })).statusCode).toBe(403);
      await p.browser.get("/account");
      expect(
        (await p.browser.post(path, fields, { headers: { origin: "https://evil.example" } })).statusCode,
      ).toBe(403);
      const signedOut = await h.browser().post(path, fields, { csrf: null });
      expect(signedOut.headers.location).toBe("/signin");
    }
    const [row] = await h.store.payerConnections(p.payerId);
    expect(row?.capNano).toBe(usdToNano(5, "down"));
    expect((await h.store.getPayer(p.payerId))?.paused).toBe(false);
  });

  it("labels every control and says when there is nothing yet", async () => {
    const p = await payer();
    const empty = (await p.browser.get("/account")).body;
    expect(empty).toContain("No app can spend from your account yet.");
    expect(empty).toContain("No requests yet.");
    expect(empty).toContain("You have not approved any one-time grant.");
    await connect(p, 5);
    const html = (await p.browser.get("/account")).body;
    const inputs = [...html.matchAll(/<input ([^>]*)>/g)].map((m) => m[1] ?? "");
    for (const input of inputs.filter((i) => !i.includes('type="hidden"'))) {
      const id = /id="([^"]+)"/.exec(input)?.[1];
      expect(html).toContain(`<label for="${id}">`);
    }
    for (const section of ["Spending", "Connected apps", "Usage", "One-time grants", "Funding"]) {
      expect(html).toMatch(new RegExp(`<h2 id="[a-z-]+">${section}</h2>`));
    }
  });
});
