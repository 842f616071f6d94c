/**
 * The whole flow in Debian's Chromium, against the demo exactly as `npm run demo` starts it (the
 * simulator, a real Wattfare with its real consent popup, and the example app): a new user connects a
 * budget, chats with streaming text, runs out, fixes it with "Fix it", and revokes; a visitor without
 * an account chats on one-time grants. Screenshots of every step go to test-results/chat-app-e2e/.
 */
import { mkdir, rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { MailMessage } from "@wattfare/server";
import { launchBrowser } from "@wattfare/server/testing";
import type { Browser, Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningDemo, startDemo } from "./demo.js";

const SHOTS = fileURLToPath(new URL("../../../test-results/chat-app-e2e/", import.meta.url));

let browser: Browser;
let demo: RunningDemo;
const mails: MailMessage[] = [];

beforeAll(async () => {
  await rm(SHOTS, { recursive: true, force: true });
  await mkdir(SHOTS, { recursive: true });
  [browser, demo] = await Promise.all([
    launchBrowser(), // Debian's Chromium with the flags DESIGN.md lists
    // Tokens 30 ms apart: slow enough to see the text grow, fast enough for CI.
    startDemo({
      appPort: 0,
      wattfarePort: 0,
      sim: { ttftMs: 50, interTokenMs: 30, responseTokens: 16 },
      onMail: (message) => mails.push(message),
    }),
  ]);
});
afterAll(async () => {
  await browser?.close();
  await demo?.close();
});

/** Waits (up to 15 s) until the locator's text satisfies the matcher. */
const textOf = (locator: Locator) =>
  expect.poll(async () => (await locator.textContent()) ?? "", { timeout: 15_000 });
const visible = (locator: Locator) => locator.waitFor({ state: "visible", timeout: 15_000 });

const shots = new Map<string, number>();
/** Saves `<flow>-<step number>-<name>.png`; the flow is the name's first word. */
async function screenshot(page: Page, name: string): Promise<void> {
  const flow = name.split("-")[0] ?? "";
  const step = (shots.get(flow) ?? 0) + 1;
  shots.set(flow, step);
  await page.screenshot({
    path: `${SHOTS}${flow}-${String(step).padStart(2, "0")}-${name.slice(flow.length + 1)}.png`,
    fullPage: true,
  });
}

/** Clicks a button in the page that opens Wattfare's popup; returns the popup. */
async function openPopup(page: Page, button: string): Promise<Page> {
  const [popup] = await Promise.all([
    page.waitForEvent("popup"),
    page.getByRole("button", { name: button }).click(),
  ]);
  return popup;
}

/** Clicks the popup's last button and waits for the popup to close itself after posting its result. */
async function approveAndClose(popup: Page): Promise<void> {
  const closed = popup.waitForEvent("close");
  await popup
    .getByRole("button", { name: "Approve" })
    .click()
    .catch((error: unknown) => {
      if (!popup.isClosed()) throw error;
    });
  await closed;
}

/** In the popup: create a Wattfare account, then fund it through the simulator's OpenRouter OAuth page. */
async function signUpAndFund(popup: Page, email: string, prefix: string): Promise<void> {
  await popup.getByRole("link", { name: "Create an account" }).click();
  await popup.getByLabel("Email").fill(email);
  await popup.getByLabel("Password").fill("correct horse battery staple");
  await screenshot(popup, `${prefix}-popup-sign-up`);
  await popup.getByRole("button", { name: "Create account" }).click();
  await screenshot(popup, `${prefix}-popup-funding`);
  await popup.getByRole("button", { name: "Connect with OpenRouter" }).click();
  await visible(popup.getByRole("button", { name: "Authorize" }));
  await screenshot(popup, `${prefix}-popup-openrouter-oauth`);
  await popup.getByRole("button", { name: "Authorize" }).click();
}

/** The assistant's answer streams in: returns the lengths its text had while it grew, and the final text. */
async function sendAndWatch(page: Page, message: string): Promise<{ lengths: number[]; text: string }> {
  await page.evaluate(() => {
    const log = document.querySelector('[role="log"]');
    const lengths: number[] = [];
    (window as unknown as { lengths: number[] }).lengths = lengths;
    new MutationObserver(() => {
      const answers = document.querySelectorAll('[role="log"] li.assistant');
      lengths.push(answers[answers.length - 1]?.textContent?.length ?? 0);
    }).observe(log as Node, { childList: true, subtree: true, characterData: true });
  });
  const answers = page.getByRole("log", { name: "Conversation" }).getByRole("listitem");
  const before = await answers.count();
  await page.getByLabel("Message").fill(message);
  await page.getByRole("button", { name: "Send" }).click();
  await expect
    .poll(() => page.getByRole("button", { name: "Send" }).isEnabled(), { timeout: 15_000 })
    .toBe(true);
  const text = (await answers.count()) > before + 1 ? ((await answers.last().textContent()) ?? "") : "";
  return { lengths: await page.evaluate(() => (window as unknown as { lengths: number[] }).lengths), text };
}

function budgetOf(text: string | null): { left: number; cap: number } {
  const match = /\$(\d+\.\d+) left of \$(\d+\.\d+)/.exec(text ?? "");
  if (!match) throw new Error(`no budget in ${JSON.stringify(text)}`);
  return { left: Number(match[1]), cap: Number(match[2]) };
}

describe("the chat app", () => {
  it("lets a new user connect a budget, chat with streaming text, run out, raise the cap with Fix it, and revoke", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const budget = page.getByRole("region", { name: "Your AI budget" }).getByRole("status");

    // Sign in to the app.
    await page.goto(demo.appUrl);
    await page.getByLabel("Your name").fill("Ada");
    await page.getByLabel("Password").fill("lovelace");
    await page.getByRole("button", { name: "Sign in" }).click();
    await textOf(budget).toContain("Not connected");
    await screenshot(page, "connect-app-signed-in");

    // Connect: sign up, fund through OpenRouter (the simulator), approve the $1 the app asks for.
    const popup = await openPopup(page, "Connect your AI budget");
    await visible(popup.getByRole("link", { name: "Create an account" }));
    await screenshot(popup, "connect-popup-sign-in");
    await signUpAndFund(popup, "ada@example.com", "connect");
    // The demo hands the payer's confirmation email to its caller (`npm run demo` prints it).
    const confirmation = mails.find((mail) => mail.to === "ada@example.com");
    expect(confirmation?.text).toContain(`${demo.wattfareUrl}/verify-email?token=`);
    const cap = popup.getByLabel("Monthly cap in US dollars");
    expect(await cap.inputValue()).toBe("1");
    await screenshot(popup, "connect-popup-approve");
    await approveAndClose(popup);
    await textOf(budget).toBe("$1.00 left of $1.00 this month.");
    await visible(page.getByRole("button", { name: "Revoke access" }));
    await screenshot(page, "connect-app-connected");

    // Chat: the answer appears token by token, and the budget goes down.
    const { lengths, text } = await sendAndWatch(page, "Hello! Tell me something nice.");
    expect(text.length).toBeGreaterThan(10);
    const partial = new Set(lengths.filter((length) => length > 0 && length < text.length));
    expect(partial.size).toBeGreaterThanOrEqual(3);
    await textOf(budget).not.toBe("$1.00 left of $1.00 this month.");
    expect(budgetOf(await budget.textContent()).left).toBeLessThan(1);
    await screenshot(page, "connect-app-chatted");

    // Run out with the expensive model: the app explains and offers "Fix it".
    await page.getByLabel("Model").selectOption({ label: "Expensive (runs out fast)" });
    const problem = page.getByRole("alert");
    for (let i = 0; i < 12 && !(await problem.isVisible()); i++)
      await sendAndWatch(page, `Expensive question ${i}`);
    await textOf(problem).toContain("What's left of your monthly AI budget doesn't cover this request");
    await screenshot(page, "connect-app-budget-exceeded");

    // Fix it: the popup opens to raise the cap, suggesting twice the current one.
    const raise = await openPopup(page, "Fix it");
    expect(await raise.getByLabel("Monthly cap in US dollars").inputValue()).toBe("2");
    await screenshot(raise, "connect-popup-raise");
    await approveAndClose(raise);
    await textOf(budget).toContain("left of $2.00 this month");
    await problem.waitFor({ state: "hidden" });
    await page.getByLabel("Model").selectOption({ label: "GPT-4o mini (cheap)" });
    expect((await sendAndWatch(page, "Back in business?")).text.length).toBeGreaterThan(10);
    await screenshot(page, "connect-app-fixed");

    // Revoke.
    await page.getByRole("button", { name: "Revoke access" }).click();
    await textOf(budget).toContain("Not connected");
    await visible(page.getByRole("button", { name: "Connect your AI budget" }));
    await screenshot(page, "connect-app-revoked");
    await context.close();
  }, 60_000);

  it("shows the budget as it is now when chat fails after the payer revoked access on Wattfare's dashboard", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const budget = page.getByRole("region", { name: "Your AI budget" }).getByRole("status");
    await page.goto(demo.appUrl);
    await page.getByLabel("Your name").fill("Lin");
    await page.getByLabel("Password").fill("lovelace");
    await page.getByRole("button", { name: "Sign in" }).click();
    const popup = await openPopup(page, "Connect your AI budget");
    await signUpAndFund(popup, "lin@example.com", "revoked");
    await approveAndClose(popup);
    await textOf(budget).toBe("$1.00 left of $1.00 this month.");

    // The payer revokes on Wattfare (same browser, so signed in there); the app's page still shows the budget.
    const account = await context.newPage();
    await account.goto(`${demo.wattfareUrl}/account`);
    await account.getByRole("button", { name: /^Revoke / }).click();
    // Closed only once the dashboard confirms: closing at once could cancel the form's POST.
    await visible(account.getByText("Access revoked."));
    await account.close();
    await sendAndWatch(page, "Still there?");
    await textOf(page.getByRole("alert")).toContain("Connect your AI budget to start chatting");
    await textOf(budget).toContain("Not connected");
    await visible(page.getByRole("button", { name: "Connect your AI budget" }));
    expect(await page.getByRole("button", { name: "Revoke access" }).isHidden()).toBe(true);
    await screenshot(page, "revoked-app-after-failure");
    await context.close();
  }, 45_000);

  it("lets a visitor without an account chat on a one-time grant and get a new one when it is used up", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const grant = page.getByRole("region", { name: "Your grant" }).getByRole("status");
    await page.goto(`${demo.appUrl}/grants`);
    await textOf(grant).toBe("No grant yet.");
    await screenshot(page, "grant-app-start");

    const popup = await openPopup(page, "Request a grant");
    await signUpAndFund(popup, "grace@example.com", "grant");
    await visible(popup.getByRole("heading", { name: "One-time grant" }));
    await screenshot(popup, "grant-popup-approve");
    await approveAndClose(popup);
    await textOf(grant).toContain("3 messages left");
    await screenshot(page, "grant-app-approved");

    for (const question of ["One", "Two", "Three"]) {
      expect((await sendAndWatch(page, question)).text.length).toBeGreaterThan(10);
    }
    await textOf(grant).toContain("This grant is exhausted");
    await sendAndWatch(page, "Four?");
    await textOf(page.getByRole("alert")).toContain("This grant has no uses left.");
    await screenshot(page, "grant-app-used-up");

    const renew = await openPopup(page, "Fix it");
    await approveAndClose(renew);
    await textOf(grant).toContain("3 messages left");
    expect((await sendAndWatch(page, "Four?")).text.length).toBeGreaterThan(10);
    await textOf(grant).toContain("2 messages left");
    await screenshot(page, "grant-app-renewed");
    await context.close();
  }, 45_000);
});
