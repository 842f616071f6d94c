/**
 * End to end in real Chromium: the payer pages, OpenRouter's consent page (the simulator's), and the
 * promise that a funding key never shows up in a page, a log line or an error.
 */
import type { Browser, Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decryptFundingKey } from "../../security/index.js";
import { launchBrowser } from "../../testing/browser.js";
import { createPayerHarness, type PayerHarness } from "../../testing/payer-harness.js";
import { s256Challenge } from "./pkce.js";

const PASSWORD = "correct horse battery staple";

let browser: Browser;
let h: PayerHarness;
/** Every HTML document any test received, and every secret any test saw. */
const documents: string[] = [];
const secrets = new Set<string>();
let payers = 0;

beforeAll(async () => {
  [browser, h] = await Promise.all([launchBrowser(), createPayerHarness()]);
});
afterAll(async () => {
  await browser?.close();
  await h?.close();
});

async function newPage(options: { viewport?: { width: number; height: number } } = {}): Promise<Page> {
  const context = await browser.newContext(options.viewport ? { viewport: options.viewport } : {});
  const page = await context.newPage();
  page.on("response", async (response) => {
    if (
      response.request().resourceType() !== "document" ||
      (response.status() >= 300 && response.status() < 400)
    )
      return;
    documents.push(await response.text().catch(() => ""));
  });
  page.on("request", (request) => {
    const code = new URL(request.url()).searchParams.get("code");
    if (code) secrets.add(code);
  });
  return page;
}

async function signUp(page: Page): Promise<string> {
  const email = `payer${++payers}@example.com`;
  await page.goto(`${h.url}/signup`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await page.waitForURL(`${h.url}/account`);
  return email;
}

const funding = (page: Page) => page.getByRole("region", { name: "Funding" });

/** The element's text once it is visible (playwright-core has no web-first assertions). */
async function textOf(locator: Locator): Promise<string> {
  await locator.waitFor({ state: "visible" });
  return (await locator.textContent()) ?? "";
}

/** The payer's current key, decrypted from the database (and remembered as a secret). */
async function currentKey(email: string): Promise<string | undefined> {
  const payer = await h.store.payerByEmail(email);
  const [row] = payer ? await h.store.fundingHistory(payer.id, 1) : [];
  if (!row || row.replacedAt !== null) return undefined;
  const key = decryptFundingKey(h.deps.keyRing, row.keyBlob, row.id);
  secrets.add(key);
  return key;
}

/**
 * Rewrites Wattfare's redirect to OpenRouter's authorize page (Playwright routes don't see redirected
 * requests, so the start form's response is intercepted instead).
 */
async function rewriteAuthorizeRedirect(page: Page, rewrite: (authorize: URL) => string): Promise<void> {
  await page.route(`${h.url}/funding/oauth/start`, async (route) => {
    const response = await route.fetch({ maxRedirects: 0 });
    const location = new URL(response.headers().location ?? "");
    await route.fulfill({ response, headers: { ...response.headers(), location: rewrite(location) } });
  });
}

/** Clicks "Connect with OpenRouter" and approves on OpenRouter's page; returns the callback URL used. */
async function connectThroughOpenRouter(
  page: Page,
  decision: "Authorize" | "Deny" = "Authorize",
): Promise<string> {
  let callback = "";
  const listener = (request: { url(): string }) => {
    if (request.url().startsWith(`${h.url}/funding/oauth/callback`)) callback = request.url();
  };
  page.on("request", listener);
  await funding(page)
    .getByRole("button", { name: /connect with openrouter/i })
    .click();
  await page.waitForURL((url) => url.href.startsWith(`${h.sim.url}/auth?`));
  await page.getByRole("button", { name: decision }).click();
  await page.waitForURL((url) => url.href.startsWith(`${h.url}/account?funding=`));
  page.off("request", listener);
  return callback;
}

describe("payer funding in a real browser", () => {
  it("signs a new payer up, funds them through OpenRouter's consent page and shows funding OK", async () => {
    const page = await newPage();
    const email = await signUp(page);
    await funding(page).getByText("Not connected").waitFor({ state: "visible" });

    const callback = await connectThroughOpenRouter(page);
    const params = new URL(callback).searchParams;
    expect(params.get("code")).toBeTruthy();
    expect(params.get("state")).toBeTruthy();
    expect(await textOf(funding(page).getByRole("status"))).toBe("Your OpenRouter key is connected.");
    await funding(page).getByText("OK", { exact: true }).waitFor({ state: "visible" });

    const key = await currentKey(email);
    expect(key).toMatch(/^sk-or-v1-[0-9a-f]{64}$/);
    await funding(page)
      .getByText(`sk-or-v1-…${key?.slice(-4)}`)
      .waitFor({ state: "visible" });
    // The address bar no longer holds the one-time code.
    expect(page.url()).toBe(`${h.url}/account?funding=connected`);
  });

  it("refuses a code obtained for a different PKCE challenge and saves nothing", async () => {
    const page = await newPage();
    const email = await signUp(page);
    // An attacker's challenge replaces ours on the way to OpenRouter: our verifier can't match it.
    await rewriteAuthorizeRedirect(page, (authorize) => {
      authorize.searchParams.set(
        "code_challenge",
        s256Challenge("another-verifier-another-verifier-another-v"),
      );
      return authorize.toString();
    });
    await connectThroughOpenRouter(page);
    expect(await textOf(funding(page).getByRole("alert"))).toContain("OpenRouter refused the authorization");
    expect(h.logs()).toMatch(/"status":403,[^\n]*"OpenRouter refused the OAuth code exchange"/);
    await funding(page).getByText("Not connected").waitFor({ state: "visible" });
    expect(await currentKey(email)).toBeUndefined();
  });

  it("refuses a replayed callback and a replayed code, keeping the first key", async () => {
    const page = await newPage();
    const email = await signUp(page);
    const firstCallback = await connectThroughOpenRouter(page);
    const firstKey = await currentKey(email);

    // The same callback again: its attempt is used up.
    await page.goto(firstCallback);
    await page.waitForURL(`${h.url}/account?funding=oauth_expired`);
    expect(await textOf(funding(page).getByRole("alert"))).toContain("expired or was already used");

    // A fresh attempt, completed with the old code: OpenRouter refuses it (single use).
    const oldCode = new URL(firstCallback).searchParams.get("code") ?? "";
    await rewriteAuthorizeRedirect(page, (authorize) => {
      const state = authorize.searchParams.get("state") ?? "";
      return `${h.url}/funding/oauth/callback?code=${oldCode}&state=${state}`;
    });
    await funding(page).getByRole("button", { name: "Reconnect with OpenRouter" }).click();
    await page.waitForURL(`${h.url}/account?funding=oauth_failed`);
    await funding(page).getByText("OK", { exact: true }).waitFor({ state: "visible" });
    expect(await currentKey(email)).toBe(firstKey);
  });

  it("leaves everything unchanged when the payer denies at OpenRouter", async () => {
    const page = await newPage();
    await signUp(page);
    await connectThroughOpenRouter(page, "Deny");
    expect(await textOf(funding(page).getByRole("alert"))).toBe(
      "You cancelled at OpenRouter. Nothing was changed.",
    );
    await funding(page).getByText("Not connected").waitFor({ state: "visible" });
  });

  it("refuses a pasted management key and an unknown key, then accepts an ordinary one", async () => {
    const page = await newPage();
    const email = await signUp(page);
    const paste = async (key: string, outcome: string) => {
      secrets.add(key);
      await funding(page).getByLabel("Or paste an OpenRouter API key").fill(key);
      const landed = page.waitForResponse((r) => r.url() === `${h.url}/account?funding=${outcome}`);
      await funding(page)
        .getByRole("button", { name: /save key|replace with this key/i })
        .click();
      await landed;
    };

    await paste(h.sim.control.createKey({ management: true }), "management_key");
    expect(await textOf(funding(page).getByRole("alert"))).toContain("That is a management key");
    await paste(`sk-or-v1-${"0".repeat(64)}`, "invalid_key");
    expect(await textOf(funding(page).getByRole("alert"))).toContain("OpenRouter did not accept that key");
    await funding(page).getByText("Not connected").waitFor({ state: "visible" });
    expect(await currentKey(email)).toBeUndefined();

    const good = h.sim.control.createKey({ credits: 5 });
    await paste(good, "connected");
    await funding(page).getByText("OK", { exact: true }).waitFor({ state: "visible" });
    expect(await currentKey(email)).toBe(good);
  });

  it("signs in with the keyboard alone and fits a phone screen", async () => {
    const setup = await newPage();
    const email = await signUp(setup);
    const page = await newPage({ viewport: { width: 360, height: 640 } });
    await page.goto(`${h.url}/signin`);
    await page.getByLabel("Email").focus();
    await page.keyboard.type(email);
    await page.keyboard.press("Tab");
    await page.keyboard.type(PASSWORD);
    await page.keyboard.press("Enter");
    await page.waitForURL(`${h.url}/account`);
    expect(await textOf(page.getByRole("heading", { level: 1 }))).toBe("Your account");
    const overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth");
    expect(overflow).toBeLessThanOrEqual(0);
  });

  it("never shows a funding key or an OAuth code in any page or log line", async () => {
    expect(secrets.size).toBeGreaterThan(4);
    expect(documents.length).toBeGreaterThan(10);
    const logs = h.logs();
    expect(logs).toContain("funding connected");
    for (const secret of secrets) {
      for (const document of documents) expect(document).not.toContain(secret);
      expect(logs).not.toContain(secret);
    }
  });
});
