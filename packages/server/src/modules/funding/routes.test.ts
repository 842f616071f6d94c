import { createHash } from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { decryptFundingKey } from "../../security/index.js";
import { createHarness } from "../../testing/harness.js";
import {
  answerConsentPage,
  createPayerHarness,
  InjectBrowser,
  type PayerHarness,
} from "../../testing/payer-harness.js";
import { s256Challenge } from "./pkce.js";

const PASSWORD = "correct horse battery staple";
let h: PayerHarness;
let n = 0;

beforeAll(async () => {
  h = await createPayerHarness({ logLevel: "trace" });
});
afterAll(async () => h.close());
beforeEach(() => h.clock.advance(2 * 3_600_000));

async function signUp(): Promise<{ browser: InjectBrowser; email: string; payerId: string }> {
  const browser = h.browser();
  const email = `funder${++n}@example.com`;
  await browser.get("/signup");
  await browser.post("/signup", { email, password: PASSWORD });
  await browser.get("/account");
  return { browser, email, payerId: (await h.store.payerByEmail(email))!.id };
}

const current = async (payerId: string) => {
  const [row] = await h.store.fundingHistory(payerId, 1);
  return row?.replacedAt === null ? row : undefined;
};

async function paste(browser: InjectBrowser, key: string): Promise<string> {
  await browser.get("/account");
  const res = await browser.post("/funding/key", { key, returnTo: "/account" });
  expect(res.statusCode).toBe(303);
  return String(res.headers.location);
}

/** Starts OAuth from /account; returns OpenRouter's authorize URL. */
async function startOAuth(browser: InjectBrowser, returnTo = "/account"): Promise<URL> {
  await browser.get("/account");
  const res = await browser.post("/funding/oauth/start", { returnTo });
  expect(res.statusCode).toBe(303);
  return new URL(String(res.headers.location));
}

const callbackPath = (callback: string) => {
  const url = new URL(callback);
  return `${url.pathname}${url.search}`;
};

describe("pasted keys", () => {
  it("saves a key only after upstream /key accepts it, encrypted under its row id, showing only a fingerprint", async () => {
    const { browser, payerId } = await signUp();
    const key = h.sim.control.createKey({ credits: 3 });
    expect(await paste(browser, ` ${key} `)).toBe("/account?funding=connected");
    const row = (await current(payerId))!;
    expect(row).toMatchObject({ source: "pasted", state: "ok", fingerprint: `sk-or-v1-…${key.slice(-4)}` });
    expect(row.openRouterKeyHash).toBe(createHash("sha256").update(key).digest("hex"));
    expect(row.keyBlob).not.toContain(key.slice(9, 30));
    expect(decryptFundingKey(h.deps.keyRing, row.keyBlob, row.id)).toBe(key);
    expect(() => decryptFundingKey(h.deps.keyRing, row.keyBlob, "fnd_other")).toThrow();
    const page = await browser.get("/account?funding=connected");
    expect(page.body).toContain("Your OpenRouter key is connected.");
    expect(page.body).toContain(`sk-or-v1-…${key.slice(-4)}`);
    expect(page.body).not.toContain(key);
    expect(page.body).toContain("Reconnect with OpenRouter");
    // A new tab: inside the consent popup, following it must not take the popup away from the request.
    expect(page.body).toContain(
      `<a href="https://openrouter.ai/keys/${row.openRouterKeyHash}" target="_blank" rel="noopener noreferrer">Manage this key at OpenRouter</a>`,
    );
  });

  it("works for a payer who has not confirmed their email yet", async () => {
    const { browser, email } = await signUp();
    expect((await h.store.payerByEmail(email))?.emailVerifiedAt).toBeNull();
    expect(await paste(browser, h.sim.control.createKey())).toBe("/account?funding=connected");
  });

  it.each([
    ["a key upstream doesn't know (401)", () => `sk-or-v1-${"1".repeat(64)}`, "invalid_key"],
    ["a management key", () => h.sim.control.createKey({ management: true }), "management_key"],
    ["text that is not a key", () => "my key", "malformed_key"],
    ["an empty field", () => "", "malformed_key"],
  ])("refuses %s and saves nothing", async (_name, makeKey, outcome) => {
    const { browser, payerId } = await signUp();
    const key = makeKey();
    expect(await paste(browser, key)).toBe(`/account?funding=${outcome}`);
    expect(await current(payerId)).toBeUndefined();
    const page = await browser.get(`/account?funding=${outcome}`);
    expect(page.body).toMatch(/role="alert"[^>]*>[^<]*Nothing was saved\./);
    if (key.length > 8) expect(page.body).not.toContain(key);
  });

  it("records a key whose own limit is used up as insufficient", async () => {
    const { browser, payerId } = await signUp();
    expect(await paste(browser, h.sim.control.createKey({ limit: 0 }))).toBe("/account?funding=connected");
    expect(await current(payerId)).toMatchObject({ state: "insufficient", limitRemainingNano: 0n });
    expect((await browser.get("/account")).body).toContain("Out of credits");
  });

  it("says OpenRouter could not be reached, saving nothing, when the upstream is down", async () => {
    const down = await createHarness({ env: { WATTFARE_UPSTREAM_URL: "http://127.0.0.1:9/api/v1" } });
    try {
      const browser = new InjectBrowser(down, down.config.publicUrl);
      await browser.get("/signup");
      await browser.post("/signup", { email: "down@example.com", password: PASSWORD });
      await browser.get("/account");
      const res = await browser.post("/funding/key", { key: h.sim.control.createKey() });
      expect(res.headers.location).toBe("/account?funding=unverifiable");
      const payer = await down.store.payerByEmail("down@example.com");
      expect(await down.store.fundingHistory(payer!.id, 1)).toEqual([]);
    } finally {
      await down.close();
    }
  });

  it("needs a signed-in payer and a CSRF token", async () => {
    const anonymous = h.browser();
    await anonymous.get("/signin");
    const res = await anonymous.post("/funding/key", { key: "x", returnTo: "/connect?x=1" });
    expect(res.headers.location).toBe("/signin?returnTo=%2Fconnect%3Fx%3D1");
    const { browser, payerId } = await signUp();
    const forged = await browser.post("/funding/key", { key: h.sim.control.createKey() }, { csrf: null });
    expect(forged.statusCode).toBe(403);
    expect(await current(payerId)).toBeUndefined();
  });
});

describe("reconnecting and removing", () => {
  it("clears an invalid state for every connection of the payer by making a new current row", async () => {
    const { browser, payerId } = await signUp();
    await paste(browser, h.sim.control.createKey());
    const first = (await current(payerId))!;
    const apps = [await h.createApp("App one"), await h.createApp("App two")];
    for (const [i, app] of apps.entries()) {
      h.store.db
        .prepare(
          "INSERT INTO connections (id, app_id, app_user_id, payer_id, cap_nano, created_at, updated_at) VALUES (?, ?, 'u', ?, 1000000000, 0, 0)",
        )
        .run(`con_re_${n}_${i}`, app.appId, payerId);
    }
    await h.store.setFundingState(first.id, "invalid", null, h.clock.now());
    for (const app of apps)
      expect((await h.store.chatAccount(app.appId, "u"))?.funding?.state).toBe("invalid");
    expect((await browser.get("/account")).body).toContain("Rejected");

    await paste(browser, h.sim.control.createKey());
    const second = (await current(payerId))!;
    expect(second.id).not.toBe(first.id);
    for (const app of apps) {
      expect((await h.store.chatAccount(app.appId, "u"))?.funding).toMatchObject({
        id: second.id,
        state: "ok",
      });
    }
    const retired = (await h.store.fundingHistory(payerId, 5)).find((f) => f.id === first.id);
    expect(retired?.replacedAt).toBe(h.clock.now());
    expect(retired?.keyBlob).toBe("erased");
  });

  it("keeps a retired key readable while an open reservation still needs it", async () => {
    const { browser, payerId } = await signUp();
    await paste(browser, h.sim.control.createKey());
    const first = (await current(payerId))!;
    h.store.db
      .prepare(
        `INSERT INTO reservations (id, account, period, app_id, funding_id, model, stream, amount_nano, owner,
          lease_until, created_at, deadline_at) VALUES ('req_open', 'c:x', '2026-11', 'app', ?, 'm', 0, 1, 'o', 0, 0, 0)`,
      )
      .run(first.id);
    await paste(browser, h.sim.control.createKey());
    expect((await h.store.getFunding(first.id))?.keyBlob).toBe(first.keyBlob);
    h.store.db.prepare("DELETE FROM reservations WHERE id = 'req_open'").run(); // closed
    await paste(browser, h.sim.control.createKey());
    expect((await h.store.getFunding(first.id))?.keyBlob).toBe("erased");
  });

  it("removes funding so connections report it missing, and links to the key at OpenRouter", async () => {
    const { browser, payerId } = await signUp();
    const key = h.sim.control.createKey();
    await paste(browser, key);
    const app = await h.createApp("Removal app");
    h.store.db
      .prepare(
        "INSERT INTO connections (id, app_id, app_user_id, payer_id, cap_nano, created_at, updated_at) VALUES (?, ?, 'u', ?, 1, 0, 0)",
      )
      .run(`con_rm_${n}`, app.appId, payerId);
    await browser.get("/account");
    const res = await browser.post("/funding/remove", { returnTo: "/account" });
    expect(res.headers.location).toBe("/account?funding=removed");
    expect(await current(payerId)).toBeUndefined();
    expect((await h.store.chatAccount(app.appId, "u"))?.funding).toBeNull();
    const page = await browser.get("/account?funding=removed");
    expect(page.body).toContain(
      `https://openrouter.ai/keys/${createHash("sha256").update(key).digest("hex")}`,
    );
    expect(page.body).toContain("Not connected");
    expect(page.body).not.toContain("Remove funding");
  });
});

describe("OAuth PKCE", () => {
  it("sends the payer to OpenRouter with S256, a state and the callback, keeping the verifier server-side", async () => {
    const { browser, payerId } = await signUp();
    const authorize = await startOAuth(browser, "/connect?step=fund");
    expect(`${authorize.origin}${authorize.pathname}`).toBe(`${h.sim.url}/auth`);
    expect(authorize.searchParams.get("callback_url")).toBe(`${h.url}/funding/oauth/callback`);
    expect(authorize.searchParams.get("code_challenge_method")).toBe("S256");
    const state = authorize.searchParams.get("state") ?? "";
    expect(state).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const rows = h.store.db.prepare("SELECT * FROM oauth_states WHERE payer_id = ?").all(payerId) as {
      code_verifier: string;
      state_hash: Buffer;
      session_hash: Buffer;
      return_to: string;
    }[];
    expect(rows).toHaveLength(1);
    const [row] = rows;
    expect(s256Challenge(row!.code_verifier)).toBe(authorize.searchParams.get("code_challenge"));
    expect(authorize.toString()).not.toContain(row!.code_verifier);
    expect(row!.state_hash.equals(createHash("sha256").update(state).digest())).toBe(true);
    const session = createHash("sha256")
      .update(browser.cookies.get("wf_session") ?? "")
      .digest();
    expect(row!.session_hash.equals(session)).toBe(true);
    expect(row!.return_to).toBe("/connect?step=fund");

    const callback = await answerConsentPage(authorize.toString());
    const done = await browser.get(callbackPath(callback));
    expect(done.statusCode).toBe(303);
    expect(done.headers.location).toBe("/connect?step=fund&funding=connected");
    expect(await current(payerId)).toMatchObject({ source: "oauth", state: "ok" });
  });

  it("completes an attempt only in the session that started it", async () => {
    const alice = await signUp();
    const mallory = await signUp();
    const callback = await answerConsentPage((await startOAuth(alice.browser)).toString());
    const stolen = await mallory.browser.get(callbackPath(callback));
    expect(stolen.headers.location).toBe("/account?funding=oauth_expired");
    expect(await current(mallory.payerId)).toBeUndefined();
    // A second session of Alice herself doesn't hold the verifier either.
    const aliceElsewhere = h.browser();
    await aliceElsewhere.get("/signin");
    await aliceElsewhere.post("/signin", { email: alice.email, password: PASSWORD });
    expect((await aliceElsewhere.get(callbackPath(callback))).headers.location).toBe(
      "/account?funding=oauth_expired",
    );
    // The session that started it still can: nobody exchanged the code meanwhile.
    expect((await alice.browser.get(callbackPath(callback))).headers.location).toBe(
      "/account?funding=connected",
    );
  });

  it("refuses a code without state, which may be someone else's, a bare visit and a state it never issued", async () => {
    const { browser, payerId } = await signUp();
    const mine = await startOAuth(browser);
    // A code someone got for their own key without a challenge or a state, sent to this payer as a
    // link: nothing ties it to the attempt this session started.
    const foreign = new URL(mine);
    for (const name of ["code_challenge", "code_challenge_method", "state"])
      foreign.searchParams.delete(name);
    const other = new URL(await answerConsentPage(foreign.toString()));
    expect(other.searchParams.get("state")).toBeNull();
    const callback = new URL(await answerConsentPage(mine.toString()));
    expect((await browser.get(callbackPath(other.toString()))).headers.location).toBe(
      "/account?funding=oauth_failed",
    );
    // Nor does a bare visit to the callback URL (any site can send the browser there).
    expect((await browser.get("/funding/oauth/callback")).headers.location).toBe(
      "/account?funding=oauth_failed",
    );
    const forged = new URL(callback);
    forged.searchParams.set("state", "A".repeat(43));
    expect((await browser.get(callbackPath(forged.toString()))).headers.location).toBe(
      "/account?funding=oauth_expired",
    );
    expect(await current(payerId)).toBeUndefined();
    // Neither touched the payer's own attempt.
    expect((await browser.get(callbackPath(callback.toString()))).headers.location).toBe(
      "/account?funding=connected",
    );
    expect(await current(payerId)).toMatchObject({ source: "oauth" });
  });

  it("forgets an attempt after 30 minutes", async () => {
    const { browser } = await signUp();
    const callback = await answerConsentPage((await startOAuth(browser)).toString());
    h.clock.advance(30 * 60_000);
    expect((await browser.get(callbackPath(callback))).headers.location).toBe(
      "/account?funding=oauth_expired",
    );
  });

  it("treats a denial as cancelled", async () => {
    const { browser } = await signUp();
    const callback = await answerConsentPage((await startOAuth(browser)).toString(), "deny");
    expect(new URL(callback).searchParams.get("error")).toBe("access_denied");
    expect(new URL(callback).searchParams.has("state")).toBe(false); // as OpenRouter sends it
    expect((await browser.get(callbackPath(callback))).headers.location).toBe(
      "/account?funding=oauth_denied",
    );
  });

  it("reports an OpenRouter error other than a denial as a failure, not as the payer's cancelling", async () => {
    const { browser } = await signUp();
    const state = (await startOAuth(browser)).searchParams.get("state") ?? "";
    expect(state).not.toBe("");
    const res = await browser.get(`/funding/oauth/callback?state=${state}&error=server_error`);
    expect(res.headers.location).toBe("/account?funding=oauth_failed");
  });

  it("lets no other site cancel the payer's attempt with a forged denial: OpenRouter's callback still completes it", async () => {
    const { browser, payerId } = await signUp();
    const callback = await answerConsentPage((await startOAuth(browser)).toString());
    // Any page can send the browser here (a top-level GET carries the SameSite=Lax cookie).
    const forged = await browser.get("/funding/oauth/callback?error=access_denied");
    expect(forged.headers.location).toBe("/account?funding=oauth_denied");
    expect((await browser.get(callbackPath(callback))).headers.location).toBe("/account?funding=connected");
    expect(await current(payerId)).toMatchObject({ source: "oauth" });
    // Used up by the callback that named it: a replay finds nothing.
    expect((await browser.get(callbackPath(callback))).headers.location).toBe(
      "/account?funding=oauth_expired",
    );
  });

  it("asks a signed-out visitor of the callback to sign in again", async () => {
    const res = await h.browser().get("/funding/oauth/callback?code=abc&state=def");
    expect(res.statusCode).toBe(401);
    expect(res.body).toContain("Your session ended before OpenRouter sent you back");
  });

  it("drops pending attempts at sign-out", async () => {
    const { browser, payerId } = await signUp();
    await startOAuth(browser);
    await browser.get("/account");
    const pending = () =>
      h.store.db.prepare("SELECT count(*) AS n FROM oauth_states WHERE payer_id = ?").get(payerId);
    expect(await pending()).toEqual({ n: 1n });
    await browser.post("/signout", {});
    expect(await pending()).toEqual({ n: 0n });
  });

  it("never logs the code, the verifier or the key", async () => {
    const { browser, payerId } = await signUp();
    const authorize = await startOAuth(browser);
    const verifier = (
      h.store.db.prepare("SELECT code_verifier FROM oauth_states").get() as { code_verifier: string }
    ).code_verifier;
    const callback = await answerConsentPage(authorize.toString());
    await browser.get(callbackPath(callback));
    const row = (await current(payerId))!;
    const key = decryptFundingKey(h.deps.keyRing, row.keyBlob, row.id);
    const logs = h.logs();
    expect(logs).toContain("funding connected");
    for (const secret of [new URL(callback).searchParams.get("code") ?? "-", verifier, key]) {
      expect(logs).not.toContain(secret);
    }
  });

  it("is offered only when the public URL is https or local; elsewhere the payer pastes a key", async () => {
    const plain = await createHarness({ env: { WATTFARE_PUBLIC_URL: "http://wattfare.internal:8080" } });
    try {
      const browser = new InjectBrowser(plain, "http://wattfare.internal:8080");
      await browser.get("/signup");
      await browser.post("/signup", { email: "plain@example.com", password: PASSWORD });
      const page = await browser.get("/account");
      expect(page.body).not.toContain("Connect with OpenRouter");
      expect(page.body).toContain('<label for="funding-key">OpenRouter API key</label>');
      const res = await browser.post("/funding/oauth/start", {});
      expect(res.headers.location).toBe("/account?funding=oauth_unavailable");
      expect(plain.store.db.prepare("SELECT count(*) AS n FROM oauth_states").get()).toEqual({ n: 0n });
    } finally {
      await plain.close();
    }
  });
});
