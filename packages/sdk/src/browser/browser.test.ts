/**
 * The browser entry in Debian's Chromium, loaded from `dist/` by a plain `<script type="module">`,
 * against a stand-in Wattfare whose popup speaks DESIGN.md's message protocol. The real popup is
 * covered by the example app's end-to-end test.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { launchChromium, STAND_IN_USER, type StandIn, startStandIn } from "../testing/stand-in.js";

let browser: Browser;
let standIn: StandIn;
let page: Page;

beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(async () => browser?.close());
beforeEach(async () => {
  standIn = await startStandIn();
  page = await (await browser.newContext()).newPage();
  await page.goto(standIn.appUrl);
  await page.waitForFunction(() => (window as unknown as { sdkReady?: boolean }).sdkReady === true);
});
afterEach(async () => {
  await page.context().close();
  await standIn.close();
});

interface Outcome {
  state: "pending" | "resolved" | "rejected";
  value?: unknown;
  name?: string;
  code?: string;
  message?: string;
}

/** What the test app page exposes to the tests. */
interface AppPage {
  wattfare: { connect(options: object): Promise<unknown> };
  /** Records a call's outcome in `outcomes`, as the page's buttons do. */
  track(promise: Promise<unknown>): void;
}

/** Clicks an app button that opens the popup; returns the popup once the SDK has sent it the session. */
async function openPopup(button: string): Promise<Page> {
  const [popup] = await Promise.all([
    page.waitForEvent("popup"),
    page.getByRole("button", { name: button, exact: true }).click(),
  ]);
  await popup.locator("#received").filter({ hasText: "wattfare:session" }).waitFor();
  return popup;
}

/** Clicks a button in the popup that may close it at once (the click's aftermath then has no page). */
async function answer(popup: Page, name: string): Promise<void> {
  await popup
    .getByRole("button", { name, exact: true })
    .click()
    .catch((error: unknown) => {
      if (!popup.isClosed()) throw error;
    });
}

async function sessionSentTo(popup: Page): Promise<Record<string, unknown>> {
  return JSON.parse((await popup.locator("#received").textContent()) ?? "{}") as Record<string, unknown>;
}

/** The outcome of the n-th (default: last) tracked SDK call, once it settled. */
async function settled(index = -1): Promise<Outcome> {
  const handle = await page.waitForFunction((i) => {
    const outcomes = (window as unknown as { outcomes: Outcome[] }).outcomes;
    const outcome = outcomes.at(i);
    return outcome && outcome.state !== "pending" ? outcome : undefined;
  }, index);
  return (await handle.jsonValue()) as Outcome;
}

async function outcomeNow(index = -1): Promise<Outcome | undefined> {
  return page.evaluate((i) => (window as unknown as { outcomes: Outcome[] }).outcomes.at(i), index);
}

async function recoverFrom(relayed: unknown): Promise<Page> {
  await page.getByLabel("Relayed error").fill(JSON.stringify(relayed));
  return openPopup("Fix it");
}

describe("connect()", () => {
  it("sends the popup its session without waiting for a slow status read", async () => {
    let release = () => {};
    standIn.state.statusGate = new Promise<void>((resolve) => {
      release = resolve;
    });
    // openPopup waits for the session to arrive, while GET /connections still hangs.
    const popup = await openPopup("Connect");
    expect(await sessionSentTo(popup)).toMatchObject({ intent: "connect", monthlyUsd: 5 });
    release();
    standIn.state.statusGate = undefined;
    await answer(popup, "Approve");
    expect(await settled()).toMatchObject({ state: "resolved", value: { connected: true } });
  });

  it("opens the popup synchronously inside the click, before fetching a session token", async () => {
    const popup = await openPopup("Connect");
    const events = await page.evaluate(() => (window as unknown as { events: string[] }).events);
    expect(events[0]).toBe("open");
    expect(events).toContain("fetch /session");
    expect(popup.url()).toBe(`${standIn.wattfareUrl}/connect`);
  });

  it.each([0, -5, Number.NaN, "5", null])(
    "rejects a monthlyUsd of %j with a TypeError, without opening a popup",
    async (usd) => {
      const failure = await page.evaluate(
        (monthlyUsd) =>
          (window as unknown as { wattfare: { connect(o: object): Promise<unknown> } }).wattfare
            .connect({ monthlyUsd })
            .then(
              () => "resolved",
              (error: Error) => error.name,
            ),
        usd,
      );
      expect(failure).toBe("TypeError");
      expect(await page.evaluate(() => (window as unknown as { events: string[] }).events)).not.toContain(
        "open",
      );
    },
  );

  it("answers the popup's ready with the session token, intent and cap, targeted at Wattfare's origin", async () => {
    const popup = await openPopup("Connect");
    expect(await sessionSentTo(popup)).toEqual({
      type: "wattfare:session",
      token: standIn.state.minted[0],
      intent: "connect",
      monthlyUsd: 5,
      origin: standIn.appUrl,
    });
  });

  it("resolves with the status Wattfare confirms after the payer approves, and emits a status event", async () => {
    const popup = await openPopup("Connect");
    const callsBefore = standIn.state.apiCalls.filter((call) => call === "GET /api/v1/connections").length;
    await answer(popup, "Approve");
    const outcome = await settled();
    expect(outcome).toMatchObject({
      state: "resolved",
      value: { connected: true, limits: { monthlyUsd: 5 } },
    });
    // Confirmed with GET /connections after the popup's answer, not taken from the message.
    expect(standIn.state.apiCalls.filter((call) => call === "GET /api/v1/connections").length).toBe(
      callsBefore + 1,
    );
    const events = await page.evaluate(
      () => (window as unknown as { statusEvents: { connected: boolean }[] }).statusEvents,
    );
    expect(events.map((status) => status.connected)).toEqual([false, true]);
  });

  it("rejects with ConsentDeniedError when the payer denies", async () => {
    const popup = await openPopup("Connect");
    await answer(popup, "Deny");
    expect(await settled()).toMatchObject({
      state: "rejected",
      name: "ConsentDeniedError",
      code: "consent_denied",
    });
  });

  it("rejects with ConsentFailedError carrying the popup's message when the popup reports an error", async () => {
    const popup = await openPopup("Connect");
    await answer(popup, "Fail");
    expect(await settled()).toMatchObject({
      state: "rejected",
      name: "ConsentFailedError",
      code: "consent_failed",
      message: "This request expired. Start again from the app.",
    });
  });

  it("rejects with ConsentFailedError when the popup says approved but Wattfare shows no connection", async () => {
    const popup = await openPopup("Connect");
    await answer(popup, "Approve without saving");
    expect(await settled()).toMatchObject({ state: "rejected", code: "consent_failed" });
  });

  it("rejects with PopupClosedError when the payer closes the popup", async () => {
    const popup = await openPopup("Connect");
    await popup.close();
    expect(await settled()).toMatchObject({
      state: "rejected",
      name: "PopupClosedError",
      code: "popup_closed",
    });
  });

  it("rejects with PopupClosedError when an already connected user closes the popup and the status before it could not be read", async () => {
    standIn.state.users.set(STAND_IN_USER, { connected: true, capUsd: 5, funding: "ok" });
    standIn.state.failStatusReads = 1;
    const popup = await openPopup("Connect");
    await expect.poll(() => standIn.state.failStatusReads).toBe(0);
    await popup.close();
    // Connected, but not by this popup: nothing tells that the payer approved anything in it.
    expect(await settled()).toMatchObject({
      state: "rejected",
      name: "PopupClosedError",
      code: "popup_closed",
    });
    const events = await page.evaluate(
      () => (window as unknown as { statusEvents: { connected: boolean }[] }).statusEvents,
    );
    expect(events.map((status) => status.connected)).toEqual([true]);
  });

  it("rejects with PopupBlockedError when the browser blocks the popup", async () => {
    await page.evaluate(() => {
      (window as unknown as { blockPopups: boolean }).blockPopups = true;
    });
    await page.getByRole("button", { name: "Connect", exact: true }).click();
    expect(await settled()).toMatchObject({
      state: "rejected",
      name: "PopupBlockedError",
      code: "popup_blocked",
    });
  });

  it.each([
    ["the same client", "Connect again"],
    ["another client on the page", "Connect with another client"],
  ] as const)(
    "leaves the open popup and its request alone when the browser blocks a newer one from %s",
    async (_who, button) => {
      const popup = await openPopup("Connect");
      await page.evaluate(() => {
        (window as unknown as { blockPopups: boolean }).blockPopups = true;
      });
      await page.getByRole("button", { name: button, exact: true }).click();
      // The newer call fails as documented...
      expect(await settled(1)).toMatchObject({
        state: "rejected",
        name: "PopupBlockedError",
        code: "popup_blocked",
      });
      // ...and the payer keeps the window they had, whose request still decides.
      expect(await outcomeNow(0)).toEqual({ state: "pending" });
      expect(popup.isClosed()).toBe(false);
      await answer(popup, "Approve");
      expect(await settled(0)).toMatchObject({ state: "resolved", value: { limits: { monthlyUsd: 5 } } });
    },
  );

  it("closes the popup and rejects with APIUserAbortError when the signal fires", async () => {
    const popup = await openPopup("Connect");
    await page.evaluate(() => {
      const w = window as unknown as AppPage & { controller: AbortController };
      w.controller = new AbortController();
      w.track(w.wattfare.connect({ monthlyUsd: 7, signal: w.controller.signal }));
    });
    await popup.locator("#received").filter({ hasText: '"monthlyUsd":7' }).waitFor();
    await page.evaluate(() => (window as unknown as { controller: AbortController }).controller.abort());
    expect(await settled(1)).toMatchObject({ state: "rejected", name: "APIUserAbortError", code: "aborted" });
    await expect.poll(() => popup.isClosed()).toBe(true);
  });

  it("opens no popup for a signal already aborted, and leaves the one open alone", async () => {
    const popup = await openPopup("Connect");
    const minted = standIn.state.minted.length;
    await page.evaluate(() => {
      const w = window as unknown as AppPage;
      w.track(w.wattfare.connect({ monthlyUsd: 7, signal: AbortSignal.abort() }));
    });
    expect(await settled(1)).toMatchObject({ state: "rejected", name: "APIUserAbortError", code: "aborted" });
    const events = await page.evaluate(() => (window as unknown as { events: string[] }).events);
    expect(events.filter((event) => event === "open")).toHaveLength(1);
    expect(standIn.state.minted).toHaveLength(minted);
    expect(await outcomeNow(0)).toEqual({ state: "pending" });
    await answer(popup, "Approve");
    expect(await settled(0)).toMatchObject({ state: "resolved", value: { limits: { monthlyUsd: 5 } } });
  });

  it("ignores a forged wattfare:result posted from an iframe on the app page, even one served by Wattfare", async () => {
    const popup = await openPopup("Connect");
    const calls = standIn.state.apiCalls.length;
    for (const source of [standIn.wattfareUrl, standIn.appUrl]) {
      await page.evaluate(async (src) => {
        const frame = document.createElement("iframe");
        frame.src = `${src}/forge`;
        const loaded = new Promise((resolve) => frame.addEventListener("load", resolve));
        document.body.append(frame);
        await loaded;
      }, source);
    }
    const frames = page.frames().filter((frame) => frame !== page.mainFrame());
    expect(await Promise.all(frames.map((frame) => frame.title()))).toEqual(["forged", "forged"]);
    // A round trip through the page's event loop: any message handler has run by now.
    await page.evaluate(() => new Promise((resolve) => setTimeout(resolve, 0)));
    expect(await outcomeNow()).toEqual({ state: "pending" });
    expect(standIn.state.apiCalls.length).toBe(calls);
    // The real popup still decides.
    await answer(popup, "Approve");
    expect(await settled()).toMatchObject({ state: "resolved", value: { connected: true } });
  });

  it.each([
    ["the same client", "Connect again", 7],
    ["another client on the page", "Connect with another client", 9],
  ] as const)(
    "replaces a request still open with a newer one from %s, in the same window",
    async (_who, button, monthlyUsd) => {
      const popup = await openPopup("Connect");
      await page.getByRole("button", { name: button, exact: true }).click();
      expect(await settled(0)).toMatchObject({ state: "rejected", code: "popup_closed" });
      // The payer's window shows the newer request: navigated to /connect again, not closed and reopened.
      await popup
        .locator("#received")
        .filter({ hasText: `"monthlyUsd":${monthlyUsd}` })
        .waitFor();
      expect(page.context().pages()).toHaveLength(2);
      await answer(popup, "Approve");
      expect(await settled(1)).toMatchObject({ state: "resolved", value: { limits: { monthlyUsd } } });
      expect(await settled(0)).toMatchObject({ state: "rejected", code: "popup_closed" });
    },
  );

  it("shares with other clients on the page only ways to cancel the open request, not its outcome", async () => {
    await openPopup("Connect");
    const shared = await page.evaluate(() =>
      Object.keys((globalThis as Record<symbol, object>)[Symbol.for("wattfare.browser.activeConsent")] ?? {}),
    );
    expect(shared.sort()).toEqual(["cancel", "owner", "replace"]);
  });

  it("cancels a request open in an older copy of the SDK before opening, as that copy closes its window", async () => {
    await page.evaluate(() => {
      const w = window as unknown as { events: string[] };
      (globalThis as Record<symbol, object>)[Symbol.for("wattfare.browser.activeConsent")] = {
        owner: {},
        cancel: (reason: string) => w.events.push(`cancel: ${reason}`),
      };
    });
    const popup = await openPopup("Connect");
    const events = await page.evaluate(() => (window as unknown as { events: string[] }).events);
    expect(events.slice(0, 2)).toEqual(["cancel: Replaced by a newer Wattfare request.", "open"]);
    await answer(popup, "Approve");
    expect(await settled()).toMatchObject({ state: "resolved", value: { connected: true } });
  });

  it("ignores a result that the replaced request's page posted to the window a newer request reuses", async () => {
    const popup = await openPopup("Connect");
    // The replaced request's page answers just as the app asks again: its answer is dispatched here
    // once the newer request has taken the window over (the same window object, Wattfare's origin).
    await page.evaluate(() =>
      window.addEventListener("message", (event) => {
        if (event.data?.type === "test:ask-again") document.getElementById("connect-again")?.click();
      }),
    );
    await popup.evaluate(() => {
      window.opener.postMessage({ type: "test:ask-again" }, "*");
      window.opener.postMessage({ type: "wattfare:result", status: "denied" }, "*");
    });
    expect(await settled(0)).toMatchObject({ state: "rejected", code: "popup_closed" });
    await popup.locator("#received").filter({ hasText: '"monthlyUsd":7' }).waitFor();
    expect(await outcomeNow(1)).toEqual({ state: "pending" });
    await answer(popup, "Approve");
    expect(await settled(1)).toMatchObject({ state: "resolved", value: { limits: { monthlyUsd: 7 } } });
  });
});

describe("a popup whose link to the page is lost", () => {
  /** The payer is still in the popup: this page does not have focus. */
  async function leavePageWithoutFocus() {
    await page.evaluate(() => {
      document.hasFocus = () => false;
    });
  }

  it("is polled through GET /connections until Wattfare shows the approval", async () => {
    await leavePageWithoutFocus();
    const popup = await openPopup("Connect");
    await answer(popup, "Lose the link");
    await popup.waitForURL(/standin\/severed/);
    await page.waitForFunction(() => (window as unknown as { events: string[] }).events.length > 0);
    expect(await outcomeNow()).toEqual({ state: "pending" });
    await answer(popup, "Approve");
    expect(await settled()).toMatchObject({
      state: "resolved",
      value: { connected: true, limits: { monthlyUsd: 5 } },
    });
  });

  it("still recognises an approval when the status before the popup could not be read", async () => {
    standIn.state.failStatusReads = 1;
    await leavePageWithoutFocus();
    const popup = await openPopup("Connect");
    await answer(popup, "Lose the link");
    await popup.waitForURL(/standin\/severed/);
    // The failed read before, then a look at Wattfare once the link is lost.
    await expect
      .poll(() => standIn.state.apiCalls.filter((c) => c === "GET /api/v1/connections").length)
      .toBeGreaterThanOrEqual(2);
    expect(await outcomeNow()).toEqual({ state: "pending" });
    await answer(popup, "Approve");
    expect(await settled()).toMatchObject({
      state: "resolved",
      value: { connected: true, limits: { monthlyUsd: 5 } },
    });
  });

  it("counts as closed once the page has focus again and nothing was approved", async () => {
    await leavePageWithoutFocus();
    const popup = await openPopup("Connect");
    await answer(popup, "Lose the link");
    await popup.waitForURL(/standin\/severed/);
    // Still polling: the severed popup reads as closed, but the payer may be in it.
    await expect
      .poll(() => standIn.state.apiCalls.filter((c) => c === "GET /api/v1/connections").length, {
        timeout: 10_000,
      })
      .toBeGreaterThan(2);
    expect(await outcomeNow()).toEqual({ state: "pending" });
    await page.evaluate(() => window.dispatchEvent(new FocusEvent("focus")));
    expect(await settled()).toMatchObject({ state: "rejected", code: "popup_closed" });
  });
});

describe("status() and disconnect()", () => {
  it("reuses one session token for concurrent and later calls", async () => {
    await page.evaluate(async () => {
      const { wattfare } = window as unknown as { wattfare: { status(): Promise<unknown> } };
      await Promise.all([wattfare.status(), wattfare.status(), wattfare.status()]);
      await wattfare.status();
    });
    expect(standIn.state.minted).toHaveLength(1);
    expect(standIn.state.apiCalls.filter((call) => call === "GET /api/v1/connections")).toHaveLength(4);
  });

  it("asks for a new session token after clearSession(), and cancels a popup still open", async () => {
    await page.evaluate(() =>
      (window as unknown as { wattfare: { status(): Promise<unknown> } }).wattfare.status(),
    );
    const popup = await openPopup("Connect");
    await page.evaluate(async () => {
      const { wattfare } = window as unknown as {
        wattfare: { clearSession(): void; status(): Promise<unknown> };
      };
      wattfare.clearSession();
      await wattfare.status();
    });
    expect(await settled(0)).toMatchObject({ state: "rejected", code: "popup_closed" });
    await expect.poll(() => popup.isClosed()).toBe(true);
    // One token for the first status() and the popup, one after the session was cleared.
    expect(standIn.state.minted).toHaveLength(2);
  });

  it("rejects a call still under way when clearSession() runs, instead of reporting the previous user's status", async () => {
    let release = () => {};
    standIn.state.statusGate = new Promise<void>((resolve) => {
      release = resolve;
    });
    await page.evaluate(() => {
      const w = window as unknown as { wattfare: { status(): Promise<unknown> }; pending: Promise<unknown> };
      w.pending = w.wattfare.status().then(
        () => "resolved",
        (error: { code: string }) => error.code,
      );
    });
    await expect.poll(() => standIn.state.apiCalls.includes("GET /api/v1/connections")).toBe(true);
    await page.evaluate(() =>
      (window as unknown as { wattfare: { clearSession(): void } }).wattfare.clearSession(),
    );
    release();
    standIn.state.statusGate = undefined;
    expect(await page.evaluate(() => (window as unknown as { pending: Promise<unknown> }).pending)).toBe(
      "aborted",
    );
    expect(
      await page.evaluate(() => (window as unknown as { statusEvents: unknown[] }).statusEvents),
    ).toEqual([]);
  });

  it("fetches a new session token once after a 401 and retries with it", async () => {
    await page.evaluate(() =>
      (window as unknown as { wattfare: { status(): Promise<unknown> } }).wattfare.status(),
    );
    standIn.state.refused.add(standIn.state.minted[0] ?? "");
    const status = await page.evaluate(() =>
      (window as unknown as { wattfare: { status(): Promise<{ connected: boolean }> } }).wattfare.status(),
    );
    expect(status.connected).toBe(false);
    expect(standIn.state.minted).toHaveLength(2);
  });

  it("reports a second 401 in a row as AuthError without asking for more tokens", async () => {
    standIn.state.refuseAll = true;
    const failure = await page.evaluate(() =>
      (window as unknown as { wattfare: { status(): Promise<unknown> } }).wattfare.status().then(
        () => undefined,
        (error: { name: string; code: string }) => ({ name: error.name, code: error.code }),
      ),
    );
    expect(failure).toEqual({ name: "AuthError", code: "auth" });
    expect(standIn.state.minted).toHaveLength(2);
  });

  it("disconnect() revokes the connection and resolves with the disconnected status", async () => {
    standIn.state.users.set(STAND_IN_USER, { connected: true, capUsd: 3, funding: "ok" });
    const status = await page.evaluate(() =>
      (
        window as unknown as { wattfare: { disconnect(): Promise<{ connected: boolean; funding: string }> } }
      ).wattfare.disconnect(),
    );
    expect(status).toMatchObject({ connected: false, funding: "missing" });
    expect(standIn.state.apiCalls).toContain("DELETE /api/v1/connections");
  });
});

describe("lowerCap()", () => {
  type LowerCap = { wattfare: { lowerCap(usd: number): Promise<{ limits: { monthlyUsd: number } }> } };

  it("lowers the cap and resolves with the new status", async () => {
    standIn.state.users.set(STAND_IN_USER, { connected: true, capUsd: 5, funding: "ok" });
    const status = await page.evaluate(() => (window as unknown as LowerCap).wattfare.lowerCap(2));
    expect(status.limits.monthlyUsd).toBe(2);
    expect(standIn.state.users.get(STAND_IN_USER)?.capUsd).toBe(2);
    expect(standIn.state.apiCalls).toContain("POST /api/v1/connections");
  });

  it("rejects a raise with ForbiddenError, leaving the cap as it was", async () => {
    standIn.state.users.set(STAND_IN_USER, { connected: true, capUsd: 5, funding: "ok" });
    const failure = await page.evaluate(() =>
      (window as unknown as LowerCap).wattfare.lowerCap(9).then(
        () => undefined,
        (error: { name: string; code: string }) => ({ name: error.name, code: error.code }),
      ),
    );
    expect(failure).toEqual({ name: "ForbiddenError", code: "forbidden" });
    expect(standIn.state.users.get(STAND_IN_USER)?.capUsd).toBe(5);
  });

  it("refuses a negative or non-numeric cap without calling Wattfare", async () => {
    const failure = await page.evaluate(() =>
      (window as unknown as LowerCap).wattfare.lowerCap(-1).then(
        () => undefined,
        (error: Error) => error.name,
      ),
    );
    expect(failure).toBe("TypeError");
    expect(standIn.state.apiCalls).not.toContain("POST /api/v1/connections");
  });
});

describe("recover()", () => {
  it("raises the cap for budget_exceeded, suggesting twice the current cap", async () => {
    standIn.state.users.set(STAND_IN_USER, { connected: true, capUsd: 1, funding: "ok" });
    const popup = await recoverFrom({ error: { code: "budget_exceeded", message: "Spending cap reached." } });
    expect(await sessionSentTo(popup)).toMatchObject({ intent: "raise", monthlyUsd: 2 });
    await answer(popup, "Approve");
    expect(await settled()).toMatchObject({
      state: "resolved",
      value: { code: "budget_exceeded", status: { connected: true, limits: { monthlyUsd: 2 } } },
    });
  });

  it("connects for not_connected and reconnects funding for funding_invalid", async () => {
    let popup = await recoverFrom({ code: "not_connected" });
    expect(await sessionSentTo(popup)).toMatchObject({ intent: "connect" });
    await answer(popup, "Approve");
    expect(await settled()).toMatchObject({ state: "resolved", value: { code: "not_connected" } });

    popup = await recoverFrom({ error: { code: "funding_invalid", message: "insufficient credits" } });
    expect(await sessionSentTo(popup)).toMatchObject({ intent: "reconnect-funding" });
    await answer(popup, "Approve");
    expect(await settled()).toMatchObject({ state: "resolved", value: { code: "funding_invalid" } });
  });

  it("keeps the cap for a payer who paused spending, and resolves only once they resume it in the popup", async () => {
    standIn.state.users.set(STAND_IN_USER, { connected: true, capUsd: 4, funding: "ok", paused: true });
    const paused = { error: { code: "budget_exceeded", message: "Spending paused by the payer." } };
    let popup = await recoverFrom(paused);
    const session = await sessionSentTo(popup);
    // The cap is not the problem: the current one is suggested (the token's own `lim` may be lower).
    expect(session).toMatchObject({ intent: "raise", monthlyUsd: 4 });
    await answer(popup, "Approve");
    expect(await settled()).toMatchObject({
      state: "rejected",
      code: "consent_failed",
      message: "Spending is still paused on your Wattfare account. Resume it to continue.",
    });

    popup = await recoverFrom(paused);
    await answer(popup, "Approve and resume spending");
    expect(await settled()).toMatchObject({
      state: "resolved",
      value: { code: "budget_exceeded", status: { paused: false, limits: { monthlyUsd: 4 } } },
    });
  });

  it("resolves funding_invalid only once Wattfare shows the funding ok, not merely connected", async () => {
    standIn.state.users.set(STAND_IN_USER, { connected: true, capUsd: 1, funding: "insufficient" });
    const outOfCredits = { error: { code: "funding_invalid", message: "insufficient credits" } };
    standIn.state.fundingAfterApproval = "insufficient";
    let popup = await recoverFrom(outOfCredits);
    await answer(popup, "Approve");
    expect(await settled()).toMatchObject({
      state: "rejected",
      code: "consent_failed",
      message: "Your OpenRouter funding is still out of credits. Top it up to continue.",
    });

    standIn.state.fundingAfterApproval = "ok";
    popup = await recoverFrom(outOfCredits);
    await answer(popup, "Approve");
    expect(await settled()).toMatchObject({
      state: "resolved",
      value: { code: "funding_invalid", status: { funding: "ok" } },
    });
  });

  it("asks for a new grant for grant_invalid, resolving with its token", async () => {
    const popup = await recoverFrom({ error: { code: "grant_invalid", message: "This grant has expired." } });
    expect(await sessionSentTo(popup)).toMatchObject({ intent: "grant" });
    await answer(popup, "Approve");
    const outcome = await settled();
    expect(outcome).toMatchObject({ state: "resolved", value: { code: "grant_invalid" } });
    expect((outcome.value as { grantToken: string }).grantToken).toMatch(/^gt_/);
  });

  it("rejects an error it cannot fix with a TypeError, without opening a popup", async () => {
    await page.getByLabel("Relayed error").fill(JSON.stringify({ error: { code: "rate_limited" } }));
    await page.getByRole("button", { name: "Fix it" }).click();
    expect(await settled()).toMatchObject({ state: "rejected", name: "TypeError" });
    expect(await page.evaluate(() => (window as unknown as { events: string[] }).events)).not.toContain(
      "open",
    );
  });
});

describe("requestGrant()", () => {
  it("sends a fresh grant session with intent grant and resolves with the token Wattfare hands over once", async () => {
    const popup = await openPopup("Request a grant");
    const session = await sessionSentTo(popup);
    expect(session).toMatchObject({ intent: "grant", token: standIn.state.minted[0] });
    expect(session).not.toHaveProperty("monthlyUsd");
    await answer(popup, "Approve");
    const outcome = await settled();
    expect(outcome.state).toBe("resolved");
    expect(outcome.value).toMatch(/^gt_/);
    // Confirmed through GET /grants/pending, which handed the token over (and will not again).
    expect(standIn.state.apiCalls).toContain("GET /api/v1/grants/pending");
    expect(standIn.state.pendingGrants.size).toBe(0);
  });

  it("resolves with the token the popup sent when the grant session expired before the payer approved", async () => {
    const popup = await openPopup("Request a grant");
    const { token } = (await sessionSentTo(popup)) as { token: string };
    // The payer took longer than the grant session token lives (10 min; the popup may stay 30).
    standIn.state.refused.add(token);
    await answer(popup, "Approve");
    const outcome = await settled();
    expect(outcome.state).toBe("resolved");
    expect(outcome.value).toMatch(/^gt_/);
    expect(standIn.state.apiCalls).toContain("GET /api/v1/grants/pending");
  });

  it("rejects, and closes the popup it opened, when the grant session source throws at once", async () => {
    const [popup] = await Promise.all([
      page.waitForEvent("popup"),
      page.getByRole("button", { name: "Request a grant, signed out", exact: true }).click(),
    ]);
    expect(await settled()).toMatchObject({ state: "rejected", message: "signed out" });
    if (!popup.isClosed()) await popup.waitForEvent("close");
    expect(popup.isClosed()).toBe(true);
  });

  it("takes the grant from GET /grants/pending when the popup's link is lost", async () => {
    await page.evaluate(() => {
      document.hasFocus = () => false;
    });
    const popup = await openPopup("Request a grant");
    await answer(popup, "Lose the link");
    await popup.waitForURL(/standin\/severed/);
    await answer(popup, "Approve");
    const outcome = await settled();
    expect(outcome.state).toBe("resolved");
    expect(outcome.value).toMatch(/^gt_/);
  });
});
