/**
 * The consent popup end to end in real Chromium, driven from a plain app page on a registered origin
 * that speaks the message protocol of DESIGN.md: it opens `/connect` inside the click, answers
 * `wattfare:ready` with a session token its "backend" minted with the app's secret key, and records every
 * message it receives. Then the payer dashboard, and what chat says right after each change there.
 * Screenshots of every step land in test-results/consent/.
 */
import { mkdirSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import type { Browser, BrowserContext, Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decryptFundingKey } from "../../security/index.js";
import { launchBrowser } from "../../testing/browser.js";
import { postChat } from "../../testing/harness.js";
import { createPayerHarness, type PayerHarness } from "../../testing/payer-harness.js";

/** The popup's consent page (which names its request with `c`), with these query parameters too. */
const consentPage =
  (params: Record<string, string> = {}) =>
  (url: URL): boolean =>
    url.pathname === "/connect/consent" &&
    /^[0-9a-f]{16}$/.test(url.searchParams.get("c") ?? "") &&
    Object.entries(params).every(([name, value]) => url.searchParams.get(name) === value);

const PASSWORD = "correct horse battery staple";
const SHOTS = path.resolve("test-results", "consent");

let browser: Browser;
let h: PayerHarness;
let app: { appId: string; secretKey: string };
let other: { appId: string; secretKey: string };
/** The registered app page, and the same page on an origin no app registered. */
let appPage: TestAppServer;
let strangerPage: TestAppServer;
/** The payer who signs up in the first test and comes back in the later ones. */
let payerEmail = "";
let payerContext: BrowserContext;
let shot = 0;

interface TestAppServer {
  origin: string;
  close(): Promise<void>;
}

interface Session {
  token: string;
  intent: "connect" | "raise" | "reconnect-funding" | "grant";
  monthlyUsd?: number;
}

interface ReceivedMessage {
  origin: string;
  data: { type: string; status?: string; grantToken?: string; connection?: Record<string, unknown> };
}

/**
 * The app page: nothing of Wattfare's SDK, only the protocol. It accepts messages only from Wattfare's
 * origin and its own popup (as the SDK does), but records every message it gets, from anywhere.
 */
function testAppHtml(wattfare: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Story Studio</title></head>
<body>
<h1>Story Studio</h1>
<button type="button" id="open">Pay with Wattfare</button>
<pre id="log" aria-label="Messages"></pre>
<script>
  const WATTFARE = ${JSON.stringify(wattfare)};
  window.session = null;
  window.received = [];
  let popup = null;
  document.getElementById("open").addEventListener("click", () => {
    popup = window.open(WATTFARE + "/connect", "wattfare", "popup,width=480,height=760");
  });
  window.addEventListener("message", (event) => {
    window.received.push({ origin: event.origin, data: event.data });
    document.getElementById("log").textContent = JSON.stringify(window.received, null, 2);
    if (event.origin !== WATTFARE || event.source !== popup) return;
    if (event.data && event.data.type === "wattfare:ready") {
      popup.postMessage({ type: "wattfare:session", ...window.session }, WATTFARE);
    }
  });
</script>
</body></html>`;
}

async function startTestApp(wattfare: string): Promise<TestAppServer> {
  const body = testAppHtml(wattfare);
  const server: Server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  [browser, h] = await Promise.all([launchBrowser(), createPayerHarness()]);
  [appPage, strangerPage] = await Promise.all([startTestApp(h.url), startTestApp(h.url)]);
  app = await h.createApp("Story Studio", [appPage.origin]);
  other = await h.createApp("Other app", ["https://other.example"]);
});
afterAll(async () => {
  await browser?.close();
  await Promise.all([appPage?.close(), strangerPage?.close()]);
  await h?.close();
});

/** The app backend's part: a session token from `POST /api/v1/sessions` with the secret key. */
async function mint(body: unknown, secretKey = app.secretKey): Promise<string> {
  const res = await fetch(`${h.url}/api/v1/sessions`, {
    method: "POST",
    headers: { authorization: `Bearer ${secretKey}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { token: string }).token;
}

async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({
    path: path.join(SHOTS, `${String(++shot).padStart(2, "0")}-${name}.png`),
    fullPage: true,
  });
}

/** Loads the app page in `context`, hands it `session` and clicks; returns the app page and the popup. */
async function openPopup(
  context: BrowserContext,
  session: Session,
  server: TestAppServer = appPage,
): Promise<{ page: Page; popup: Page }> {
  const page = await context.newPage();
  await page.goto(server.origin);
  await page.evaluate(`window.session = ${JSON.stringify(session)}`);
  const [popup] = await Promise.all([
    page.waitForEvent("popup"),
    page.getByRole("button", { name: "Pay with Wattfare" }).click(),
  ]);
  await popup.waitForLoadState();
  return { page, popup };
}

async function received(page: Page): Promise<ReceivedMessage[]> {
  return (await page.evaluate("window.received")) as ReceivedMessage[];
}

/** Waits for the app page to receive `wattfare:result`, and returns it with the popup closed. */
async function resultOf(page: Page, popup: Page): Promise<ReceivedMessage> {
  await page.waitForFunction("window.received.some((m) => m.data && m.data.type === 'wattfare:result')");
  if (!popup.isClosed()) await popup.waitForEvent("close", { timeout: 5000 });
  const results = (await received(page)).filter((m) => m.data.type === "wattfare:result");
  expect(results).toHaveLength(1);
  return results[0] as ReceivedMessage;
}

async function textOf(locator: Locator): Promise<string> {
  await locator.waitFor({ state: "visible" });
  return (await locator.textContent()) ?? "";
}

/** What the app page itself learns from `GET /connections` (a real cross-origin fetch with CORS). */
async function connectionsFromPage(
  page: Page,
  token: string,
): Promise<{ connected: boolean; limits: { monthlyUsd: number } }> {
  return (await page.evaluate(
    `fetch(${JSON.stringify(`${h.url}/api/v1/connections`)}, { headers: { authorization: "Bearer ${token}" } }).then((r) => r.json())`,
  )) as { connected: boolean; limits: { monthlyUsd: number } };
}

function chat(headers: Record<string, string>, body: Record<string, unknown> = {}) {
  return postChat(
    h.url,
    app.secretKey,
    {
      model: "openai/gpt-4o-mini",
      messages: [{ role: "user", content: "Write one line." }],
      max_tokens: 16,
      ...body,
    },
    { headers },
  );
}

async function chatStatus(headers: Record<string, string>, body: Record<string, unknown> = {}) {
  const res = await chat(headers, body);
  const text = await res.text();
  await h.app.chat.proxy.drain();
  return {
    status: res.status,
    code: res.status === 200 ? undefined : (JSON.parse(text) as { error: { code: string } }).error.code,
  };
}

async function dashboard(): Promise<Page> {
  const page = await payerContext.newPage();
  await page.goto(`${h.url}/account`);
  return page;
}

const appArticle = (page: Page, appUserId: string) =>
  page.getByRole("article").filter({ has: page.getByText(appUserId, { exact: true }) });

describe("the consent popup in Chromium", () => {
  it("lets a first-time payer sign up, fund through OpenRouter's page and approve $1 in one popup", async () => {
    payerContext = await browser.newContext();
    const token = await mint({ appUserId: "alice", requestLimit: { monthlyUsd: 1 } });
    const { page, popup } = await openPopup(payerContext, { token, intent: "connect" });
    await popup.waitForURL(consentPage());
    expect(await textOf(popup.getByRole("heading", { level: 1 }))).toBe("Connect Story Studio");
    expect(await textOf(popup.locator(".requester"))).toBe(`Story Studio at ${appPage.origin}`);
    await screenshot(popup, "sign-in-step");

    await popup.getByRole("link", { name: "Create an account" }).click();
    payerEmail = "first-payer@example.com";
    await popup.getByLabel("Email").fill(payerEmail);
    await popup.getByLabel("Password", { exact: true }).fill(PASSWORD);
    await screenshot(popup, "sign-up");
    await popup.getByRole("button", { name: "Create account" }).click();
    await popup.waitForURL(consentPage());
    await popup.getByRole("region", { name: "Funding" }).getByText("Not connected").waitFor();
    await screenshot(popup, "fund-step");

    await popup.getByRole("button", { name: "Connect with OpenRouter" }).click();
    await popup.waitForURL((url) => url.href.startsWith(`${h.sim.url}/auth?`));
    await screenshot(popup, "openrouter-consent");
    await popup.getByRole("button", { name: "Authorize" }).click();
    await popup.waitForURL(consentPage({ funding: "connected" }));

    const cap = popup.getByLabel("Monthly cap in US dollars");
    expect(await cap.inputValue()).toBe("1");
    expect(await textOf(popup.locator("#consent-cap-hint"))).toContain(
      "Story Studio asked for $1.00 a month.",
    );
    await screenshot(popup, "approve-step");
    await popup.getByRole("button", { name: "Approve" }).click();

    const result = await resultOf(page, popup);
    expect(result.origin).toBe(h.url);
    expect(result.data).toMatchObject({
      type: "wattfare:result",
      status: "approved",
      connection: { connected: true, limits: { monthlyUsd: 1 }, usage: { monthlyUsd: 0 }, funding: "ok" },
    });
    await screenshot(page, "app-page-after-approval");
    expect(await connectionsFromPage(page, token)).toMatchObject({
      connected: true,
      limits: { monthlyUsd: 1 },
    });
    expect((await chatStatus({ "x-wattfare-user": "alice" })).status).toBe(200);
  });

  it("lets a returning payer sign in from a fresh browser and approve", async () => {
    const context = await browser.newContext();
    const token = await mint({ appUserId: "bob", requestLimit: { monthlyUsd: 1 } });
    const { page, popup } = await openPopup(context, { token, intent: "connect" });
    await popup.waitForURL(consentPage());
    await popup.getByLabel("Email").fill(payerEmail);
    await popup.getByLabel("Password").fill(PASSWORD);
    await popup.getByRole("button", { name: "Sign in" }).click();
    await popup.waitForURL(consentPage());
    // Funded already: straight to the cap. A small one, raised on the dashboard later.
    await popup.getByLabel("Monthly cap in US dollars").fill("0.0005");
    await screenshot(popup, "returning-payer-approve");
    await popup.getByRole("button", { name: "Approve" }).click();
    expect((await resultOf(page, popup)).data).toMatchObject({
      status: "approved",
      connection: { connected: true, limits: { monthlyUsd: 0.0005 } },
    });
    await context.close();
  });

  it("posts denied when the payer says no, and connects nothing", async () => {
    const context = await browser.newContext();
    const token = await mint({ appUserId: "carol" });
    const { page, popup } = await openPopup(context, { token, intent: "connect" });
    await popup.waitForURL(consentPage());
    await popup.getByRole("button", { name: "Deny" }).click();
    expect((await resultOf(page, popup)).data).toEqual({ type: "wattfare:result", status: "denied" });
    expect((await connectionsFromPage(page, token)).connected).toBe(false);
    await context.close();
  });

  it("answers nothing to a page on an unregistered origin and shows the payer why", async () => {
    const context = await browser.newContext();
    const token = await mint({ appUserId: "dave" });
    const { page, popup } = await openPopup(context, { token, intent: "connect" }, strangerPage);
    const alert = popup.getByRole("alert");
    expect(await textOf(alert)).toContain("not registered for this app");
    await screenshot(popup, "unregistered-origin");
    // Give a stray message time to arrive: only the secret-free ready ever does.
    await popup.waitForTimeout(300);
    expect((await received(page)).map((m) => m.data.type)).toEqual(["wattfare:ready"]);
    expect(popup.url()).toBe(`${h.url}/connect`);
    await context.close();
  });

  it("refuses expired, forged and other-app tokens without a word to the opener, under a neutral heading that says once to close the window", async () => {
    const context = await browser.newContext();
    const expired = await mint({ appUserId: "erin" });
    h.clock.advance(601_000);
    const [head, payload, signature] = (await mint({ appUserId: "erin" })).split(".");
    const claims = JSON.parse(Buffer.from(payload ?? "", "base64url").toString()) as Record<string, unknown>;
    const forged = `${head}.${Buffer.from(JSON.stringify({ ...claims, sub: "alice" })).toString("base64url")}.${signature}`;
    const otherApp = await mint({ appUserId: "erin" }, other.secretKey);
    for (const [name, token, message] of [
      ["expired", expired, "could not be verified"],
      ["forged", forged, "could not be verified"],
      ["other-app", otherApp, "not registered for this app"],
    ] as const) {
      const { page, popup } = await openPopup(context, { token, intent: "connect" });
      expect(await textOf(popup.getByRole("alert"))).toContain(message);
      // Nothing says whether anything was connected, and the way on is said once.
      expect(await popup.getByRole("heading", { level: 1 }).textContent()).toBe("Something went wrong");
      expect(((await popup.locator("body").textContent()) ?? "").match(/close this window/gi)).toHaveLength(
        1,
      );
      await screenshot(popup, `refused-${name}-token`);
      await popup.waitForTimeout(200);
      expect((await received(page)).map((m) => m.data.type)).toEqual(["wattfare:ready"]);
      await popup.close();
      await page.close();
    }
    await context.close();
  });
});

describe("an out-of-credits key in Chromium", () => {
  it("lets the payer top it up, press Continue from the keyboard, and finish with Done, funding ok", async () => {
    const payer = await h.store.payerByEmail(payerEmail);
    const [row] = await h.store.fundingHistory(payer?.id ?? "", 1);
    if (!row) throw new Error("the first test's payer has no funding");
    const key = decryptFundingKey(h.deps.keyRing, row.keyBlob, row.id);
    // The key's own limit ran out a minute ago, and chat marked the funding out of credits.
    h.sim.control.setLimit(key, 0);
    await h.store.setFundingState(row.id, "insufficient", 0n, h.clock.now());
    h.clock.advance(60_000);

    const token = await mint({ appUserId: "alice" });
    const { page, popup } = await openPopup(payerContext, { token, intent: "reconnect-funding" });
    await popup.waitForURL(consentPage());
    await popup
      .getByRole("region", { name: "Funding" })
      .getByText("Out of credits", { exact: true })
      .waitFor();
    await screenshot(popup, "out-of-credits-fund-step");

    h.sim.control.setLimit(key, null); // topped up at OpenRouter
    await popup.getByRole("button", { name: "Continue" }).focus();
    await popup.keyboard.press("Enter");
    await popup.waitForURL(consentPage({ step: "approve" }));
    await screenshot(popup, "out-of-credits-topped-up");
    await popup.getByRole("button", { name: "Done" }).click();
    expect((await resultOf(page, popup)).data).toMatchObject({
      status: "approved",
      connection: { connected: true, funding: "ok" },
    });
    expect((await chatStatus({ "x-wattfare-user": "alice" })).status).toBe(200);
    await page.close();
  });
});

describe("the dashboard in Chromium, and chat right after", () => {
  it("raises a cap and the request that only fits the raised cap is admitted at once", async () => {
    const big = { max_tokens: 1000 };
    const clampOff = { "x-wattfare-user": "bob", "x-wattfare-clamp": "off" };
    expect((await chatStatus(clampOff, big)).code).toBe("budget_exceeded");
    const page = await dashboard();
    const bob = appArticle(page, "bob");
    await bob.getByLabel("Monthly cap for Story Studio in US dollars").fill("2");
    await bob.getByRole("button", { name: "Save cap" }).click();
    await page.waitForURL(`${h.url}/account?dashboard=cap_saved`);
    expect(await textOf(appArticle(page, "bob").locator("label").first())).toContain("of $2.00");
    await screenshot(page, "dashboard-cap-raised");
    expect((await chatStatus(clampOff, big)).status).toBe(200);
  });

  it("pauses all spending (402 budget_exceeded) and resumes it", async () => {
    const page = await dashboard();
    const pause = page.getByRole("switch", { name: "Pause all spending" });
    expect(await pause.getAttribute("aria-checked")).toBe("false");
    await pause.click();
    await page.waitForURL(`${h.url}/account?dashboard=paused`);
    await screenshot(page, "dashboard-paused");
    expect((await chatStatus({ "x-wattfare-user": "bob" })).code).toBe("budget_exceeded");
    expect(await pause.getAttribute("aria-checked")).toBe("true");
    await pause.click();
    await page.waitForURL(`${h.url}/account?dashboard=resumed`);
    expect((await chatStatus({ "x-wattfare-user": "bob" })).status).toBe(200);
  });

  it("revokes a connection and chat answers 402 not_connected at once", async () => {
    expect((await chatStatus({ "x-wattfare-user": "alice" })).status).toBe(200);
    const page = await dashboard();
    await page
      .getByRole("table", { name: "Recent requests" })
      .getByRole("cell", { name: "openai/gpt-4o-mini" })
      .first()
      .waitFor();
    await screenshot(page, "dashboard-usage");
    await appArticle(page, "alice").getByRole("button", { name: "Revoke Story Studio" }).click();
    await page.waitForURL(`${h.url}/account?dashboard=revoked`);
    expect(await appArticle(page, "alice").count()).toBe(0);
    expect((await chatStatus({ "x-wattfare-user": "alice" })).code).toBe("not_connected");
  });

  it("fits a phone screen and works from the keyboard", async () => {
    const context = await browser.newContext({
      viewport: { width: 360, height: 640 },
      storageState: await payerContext.storageState(),
    });
    const page = await context.newPage();
    await page.goto(`${h.url}/account`);
    const overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth");
    expect(overflow).toBeLessThanOrEqual(0);
    const cap = appArticle(page, "bob").getByLabel("Monthly cap for Story Studio in US dollars");
    await cap.focus();
    await page.keyboard.press("Control+A");
    await page.keyboard.type("3");
    await page.keyboard.press("Enter");
    await page.waitForURL(`${h.url}/account?dashboard=cap_saved`);
    await screenshot(page, "dashboard-phone");
    await context.close();
  });
});

describe("one-time grants in Chromium", () => {
  const grantSession = () => mint({ grant: { maxUsd: 0.5, maxUses: 5, expiresInSeconds: 3600 } });

  it("approves a grant: the app page gets the token, chat spends it, and a dashboard revoke stops it at once", async () => {
    const token = await grantSession();
    const { page, popup } = await openPopup(payerContext, { token, intent: "grant" });
    await popup.waitForURL(consentPage());
    expect(await textOf(popup.getByRole("heading", { level: 1 }))).toBe("Approve a grant for Story Studio");
    expect(await textOf(popup.locator("dl.terms"))).toMatch(
      /Up to\s*\$0\.50 in total\s*Uses\s*5 requests\s*Expires\s*1 hour after you approve/,
    );
    await screenshot(popup, "grant-approve-step");
    await popup.getByRole("button", { name: "Approve" }).click();
    const result = await resultOf(page, popup);
    expect(result.data.status).toBe("approved");
    const grantToken = result.data.grantToken ?? "";
    expect(grantToken).toMatch(/^gt_[0-9A-Za-z]{43}$/);
    expect((await chatStatus({ "x-wattfare-grant": grantToken })).status).toBe(200);

    const board = await dashboard();
    const grant = board.getByRole("article").filter({ hasText: "Active" }).filter({ hasText: "4 of 5" });
    await screenshot(board, "dashboard-grant");
    await grant.getByRole("button", { name: "Revoke this grant" }).click();
    await board.waitForURL(`${h.url}/account?dashboard=grant_revoked`);
    expect((await chatStatus({ "x-wattfare-grant": grantToken })).code).toBe("grant_invalid");
  });

  it("says 'you can close this window' when the opener is gone, and /grants/pending hands the token over once", async () => {
    const token = await grantSession();
    const { page, popup } = await openPopup(payerContext, { token, intent: "grant" });
    await popup.waitForURL(consentPage());
    await page.close();
    await popup.getByRole("button", { name: "Approve" }).click();
    expect(await textOf(popup.getByRole("status"))).toMatch(/Story Studio can now spend up to\s+\$0\.50/);
    expect(await textOf(popup.getByText("you can close this window"))).toContain("If it stays open");
    await screenshot(popup, "grant-opener-gone");
    const pending = () =>
      fetch(`${h.url}/api/v1/grants/pending`, {
        headers: { authorization: `Bearer ${token}`, origin: appPage.origin },
      });
    const first = await pending();
    expect(first.status).toBe(200);
    const { grantToken } = (await first.json()) as { grantToken: string };
    expect((await chatStatus({ "x-wattfare-grant": grantToken })).status).toBe(200);
    expect((await pending()).status).toBe(404);
    await popup.close();
  });
});
