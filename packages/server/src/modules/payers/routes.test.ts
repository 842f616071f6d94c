import { createHash } from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createHarness } from "../../testing/harness.js";
import { createPayerHarness, InjectBrowser, linkIn, type PayerHarness } from "../../testing/payer-harness.js";
import { PAYER_RATE_RULES, payerRateKeys, RESET_LINK_TTL_MS, VERIFY_LINK_TTL_MS } from "./service.js";

const PASSWORD = "correct horse battery staple";
let h: PayerHarness;
let n = 0;

beforeAll(async () => {
  h = await createPayerHarness({ logLevel: "info" });
});
afterAll(async () => h.close());
// Every test starts in a fresh hour, so the throttles of one test never reach into the next.
beforeEach(() => h.clock.advance(2 * 3_600_000));

const freshEmail = () => `payer${++n}@example.com`;

async function signUp(email = freshEmail()): Promise<{ browser: InjectBrowser; email: string }> {
  const browser = h.browser();
  await browser.get("/signup");
  const res = await browser.post("/signup", { email, password: PASSWORD });
  expect(res.statusCode).toBe(303);
  return { browser, email };
}

const alertOf = (html: string) => /role="alert"[^>]*>([^<]*)</.exec(html)?.[1]?.replaceAll("&#39;", "'");

describe("payer pages", () => {
  it("send frame-ancestors 'none', Referrer-Policy same-origin and never Cross-Origin-Opener-Policy", async () => {
    const { browser } = await signUp();
    const anonymous = h.browser();
    const responses = [
      await anonymous.get("/signin"),
      await anonymous.get("/signup"),
      await anonymous.get("/forgot-password"),
      await anonymous.get("/reset-password?token=x"),
      await anonymous.get("/verify-email?token=x"),
      await anonymous.post("/signin", { email: "a@example.com", password: "x" }, { csrf: null }),
      await browser.get("/account"),
      await browser.post("/funding/key", { key: "nonsense" }, { csrf: null }),
    ];
    for (const res of responses) {
      expect(res.headers["content-type"]).toBe("text/html; charset=utf-8");
      expect(res.headers["content-security-policy"]).toContain("frame-ancestors 'none'");
      expect(res.headers["content-security-policy"]).toContain("script-src 'none'");
      expect(res.headers["referrer-policy"]).toBe("same-origin");
      expect(res.headers["cross-origin-opener-policy"]).toBeUndefined();
      expect(res.headers["cache-control"]).toBe("no-store");
    }
  });

  it("label every visible form control", async () => {
    const { browser } = await signUp();
    const pages = [
      (await h.browser().get("/signin")).body,
      (await h.browser().get("/signup")).body,
      (await h.browser().get("/forgot-password")).body,
      (await h.browser().get("/reset-password?token=x")).body,
      (await browser.get("/account")).body,
    ];
    for (const html of pages) {
      const inputs = [...html.matchAll(/<input ([^>]*)>/g)].map((m) => m[1] ?? "");
      for (const input of inputs.filter((i) => !i.includes('type="hidden"'))) {
        const id = /id="([^"]+)"/.exec(input)?.[1];
        expect(id, input).toBeDefined();
        expect(html).toContain(`<label for="${id}">`);
      }
      expect(html).toMatch(/<h1>/);
      expect(html).toContain('<meta name="viewport"');
    }
  });

  it("serve one small shared stylesheet and tab icon, which every page links to", async () => {
    const res = await h.app.inject({ url: "/assets/wattfare.css" });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe("text/css; charset=utf-8");
    expect(res.body.length).toBeLessThan(4096);
    const icon = await h.app.inject({ url: "/assets/wattfare.svg" });
    expect(icon.statusCode).toBe(200);
    expect(icon.headers["content-type"]).toBe("image/svg+xml");
    expect(icon.body).toMatch(/^<svg /);
    expect((await h.browser().get("/signin")).body).toContain(
      '<link rel="icon" href="/assets/wattfare.svg" type="image/svg+xml">',
    );
  });

  it("send a signed-out visitor of /account to sign in", async () => {
    const res = await h.browser().get("/account");
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe("/signin");
  });
});

describe("sign-up, sign-in and sign-out", () => {
  it("signs a new payer up with an argon2id hash and an httpOnly SameSite=Lax session cookie stored hashed", async () => {
    const browser = h.browser();
    await browser.get("/signup");
    const email = freshEmail();
    const res = await browser.post("/signup", { email: ` ${email.toUpperCase()} `, password: PASSWORD });
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe("/account");
    const cookie = res.cookies.find((c) => c.name === "wf_session");
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: "Lax", path: "/" });
    expect(cookie?.secure).toBeUndefined();
    const payer = await h.store.payerByEmail(email);
    expect(payer?.email).toBe(email);
    expect(payer?.passwordHash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    const idHash = createHash("sha256")
      .update(cookie?.value ?? "")
      .digest();
    expect((await h.store.payerSession(idHash, h.clock.now()))?.payer.id).toBe(payer?.id);
    // Only the hash is stored: the token itself opens nothing.
    expect(await h.store.payerSession(Buffer.from(cookie?.value ?? ""), h.clock.now())).toBeUndefined();
    expect((await browser.get("/account")).body).toContain(`Signed in as <strong>${email}</strong>`);
  });

  it("names the cookie __Host-wf_session and marks it Secure when the public URL is https", async () => {
    const https = await createHarness({ env: { WATTFARE_PUBLIC_URL: "https://wattfare.example" } });
    try {
      const browser = new InjectBrowser(https, "https://wattfare.example");
      const form = await browser.get("/signup");
      expect(form.cookies[0]).toMatchObject({ name: "__Host-wf_browser", secure: true, httpOnly: true });
      const res = await browser.post("/signup", { email: "secure@example.com", password: PASSWORD });
      expect(res.cookies.find((c) => c.name === "__Host-wf_session")).toMatchObject({
        secure: true,
        httpOnly: true,
        sameSite: "Lax",
        path: "/",
      });
    } finally {
      await https.close();
    }
  });

  it("answers a wrong password and an unknown email with the same message", async () => {
    const { email } = await signUp();
    const browser = h.browser();
    await browser.get("/signin");
    const wrong = await browser.post("/signin", { email, password: "not the password" });
    const unknown = await browser.post("/signin", { email: "nobody@example.com", password: PASSWORD });
    expect(wrong.statusCode).toBe(401);
    expect(unknown.statusCode).toBe(401);
    expect(alertOf(wrong.body)).toBe("That email and password don't match an account.");
    expect(alertOf(unknown.body)).toBe(alertOf(wrong.body));
    expect(wrong.cookies.some((c) => c.name === "wf_session")).toBe(false);
  });

  it("answers a wrong sign-in with an HTML 401 and no WWW-Authenticate: the page's form is the way in, not a Bearer token", async () => {
    const { email } = await signUp();
    const browser = h.browser();
    await browser.get("/signin");
    const wrong = await browser.post("/signin", { email, password: "not the password" });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.headers["content-type"]).toMatch(/^text\/html/);
    expect(wrong.headers["www-authenticate"]).toBeUndefined();
    const signedOut = await h.browser().post("/account/spending", { paused: "1" }, { csrf: null });
    expect(signedOut.statusCode).toBe(303);
    expect(signedOut.headers["www-authenticate"]).toBeUndefined();
  });

  it("refuses a second sign-up with the same email, in any case, without signing anyone in", async () => {
    const { email } = await signUp();
    const browser = h.browser();
    await browser.get("/signup");
    const res = await browser.post("/signup", { email: email.toUpperCase(), password: "another password" });
    expect(res.statusCode).toBe(400);
    expect(alertOf(res.body)).toContain("If you already have one, sign in or reset your password.");
    expect(res.cookies.some((c) => c.name === "wf_session")).toBe(false);
  });

  it.each([
    ["an invalid email", { email: "not-an-email", password: PASSWORD }, "Enter a valid email address."],
    [
      "a 7-character password",
      { email: "short@example.com", password: "1234567" },
      "Use at least 8 characters.",
    ],
  ])("refuses sign-up with %s and keeps the email typed", async (_name, fields, message) => {
    const browser = h.browser();
    await browser.get("/signup");
    const res = await browser.post("/signup", fields);
    expect(res.statusCode).toBe(400);
    expect(alertOf(res.body)).toBe(message);
    expect(res.body).toContain(`value="${fields.email}"`);
    expect(res.body).not.toContain(fields.password);
  });

  it("refuses a form without a CSRF token, or with another browser's, and shows a fresh form", async () => {
    const browser = h.browser();
    await browser.get("/signup");
    const other = h.browser();
    await other.get("/signup");
    for (const csrf of [null, other.csrf(), "0123456789abcdef.AAAA"]) {
      const res = await browser.post("/signup", { email: freshEmail(), password: PASSWORD }, { csrf });
      expect(res.statusCode).toBe(403);
      expect(alertOf(res.body)).toContain("This form had expired");
    }
    expect((await browser.post("/signup", { email: freshEmail(), password: PASSWORD })).statusCode).toBe(303);
  });

  it("refuses a form posted from another origin, and accepts Sec-Fetch-Site: same-origin instead of Origin", async () => {
    const browser = h.browser();
    await browser.get("/signup");
    const csrf = browser.csrf();
    const evil = await browser.post(
      "/signup",
      { email: freshEmail(), password: PASSWORD },
      { csrf, headers: { origin: "https://evil.example" } },
    );
    expect(evil.statusCode).toBe(403);
    expect(evil.body).toContain("This form can only be sent from Wattfare&#39;s own pages.");
    const crossSite = await browser.post(
      "/signup",
      { email: freshEmail(), password: PASSWORD },
      { csrf, headers: { origin: "", "sec-fetch-site": "cross-site" } },
    );
    expect(crossSite.statusCode).toBe(403);
    const sameOrigin = await browser.post(
      "/signup",
      { email: freshEmail(), password: PASSWORD },
      { csrf, headers: { origin: "null", "sec-fetch-site": "same-origin" } },
    );
    expect(sameOrigin.statusCode).toBe(303);
  });

  it("lets the owner sign in from another network while one is throttled on their email, and from a known browser past 100 tries from anywhere", async () => {
    const proxied = await createPayerHarness({ env: { WATTFARE_TRUST_PROXY: "loopback" } });
    try {
      const browser = proxied.browser();
      await browser.get("/signup");
      const email = freshEmail();
      expect((await browser.post("/signup", { email, password: PASSWORD })).statusCode).toBe(303);
      const signIn = async (from: string, password: string) => {
        const b = proxied.browser();
        await b.get("/signin");
        return (await b.post("/signin", { email, password }, { headers: { "x-forwarded-for": from } }))
          .statusCode;
      };
      const limit = PAYER_RATE_RULES.signInPerEmailFromIp.limit;
      for (let i = 0; i < limit; i++) expect(await signIn("203.0.113.66", `wrong ${i}`)).toBe(401);
      expect(await signIn("203.0.113.66", PASSWORD)).toBe(429);
      expect(await signIn("198.51.100.7", PASSWORD)).toBe(303);
      // One IPv6 host holds a whole /64: its addresses share one allowance.
      for (let i = 0; i < limit; i++) expect(await signIn(`2001:db8:0:7::${i + 1}`, `wrong ${i}`)).toBe(401);
      expect(await signIn("2001:db8:0:7:ffff::1", PASSWORD)).toBe(429);
      // Spread over many addresses, guesses at one email still stop at the per-email limit…
      const spread = PAYER_RATE_RULES.signInPerEmail.limit - 2 * limit - 1;
      for (let i = 0; i < spread; i++) expect(await signIn(`192.0.2.${i % 200}`, `wrong ${i}`)).toBe(401);
      expect(await signIn("198.51.100.8", PASSWORD)).toBe(429);
      // A browser known for another email is no exception…
      const other = proxied.browser();
      await other.get("/signup");
      expect((await other.post("/signup", { email: freshEmail(), password: PASSWORD })).statusCode).toBe(303);
      const asOther = await other.post(
        "/signin",
        { email, password: PASSWORD },
        { headers: { "x-forwarded-for": "198.51.100.10" } },
      );
      expect(asOther.statusCode).toBe(429);
      // …but one that has signed in as this email before (here, the one that signed up) is.
      const known = await browser.post(
        "/signin",
        { email, password: PASSWORD },
        { headers: { "x-forwarded-for": "198.51.100.9" } },
      );
      expect(known.statusCode).toBe(303);
      // …and, signed in, it can still delete the account: its password is not counted per email there.
      await browser.get("/account");
      const deleted = await browser.post(
        "/account/delete",
        { password: PASSWORD },
        { headers: { "x-forwarded-for": "198.51.100.9" } },
      );
      expect(deleted.statusCode).toBe(200);
    } finally {
      await proxied.close();
    }
  });

  it("counts sign-in attempts per client address behind a listed reverse proxy, per proxy address otherwise", async () => {
    /** A failed sign-in, for an unknown email, by the client the proxy names `forwardedFor`. */
    const signInFrom = (browser: InjectBrowser, forwardedFor: string, email = "nobody@example.com") =>
      browser.post(
        "/signin",
        { email, password: "wrong password" },
        { headers: { "x-forwarded-for": forwardedFor } },
      );
    const attempts = async (harness: PayerHarness, forwardedFor: string) => {
      const browser = harness.browser();
      await browser.get("/signin");
      // Distinct emails: only the per-address limit (100 per 15 minutes) can trip.
      for (let i = 0; i < PAYER_RATE_RULES.signInPerIp.limit; i++) {
        expect((await signInFrom(browser, forwardedFor, `nobody${i}@example.com`)).statusCode).toBe(401);
      }
      return browser;
    };
    const proxied = await createPayerHarness({ env: { WATTFARE_TRUST_PROXY: "loopback" } });
    try {
      const first = await attempts(proxied, "203.0.113.1");
      expect((await signInFrom(first, "203.0.113.1")).statusCode).toBe(429);
      // Another client behind the same proxy keeps its own allowance.
      const neighbour = proxied.browser();
      await neighbour.get("/signin");
      expect((await signInFrom(neighbour, "203.0.113.2")).statusCode).toBe(401);
    } finally {
      await proxied.close();
    }
    // Without WATTFARE_TRUST_PROXY the header is ignored: a client cannot pick its own address.
    const first = await attempts(h, "203.0.113.1");
    expect((await signInFrom(first, "203.0.113.99")).statusCode).toBe(429);
  });

  it("throttles sign-in per email from one address after 10 attempts with 429 and Retry-After, even for the right password", async () => {
    const { email } = await signUp();
    const browser = h.browser();
    await browser.get("/signin");
    for (let i = 0; i < PAYER_RATE_RULES.signInPerEmailFromIp.limit; i++) {
      expect((await browser.post("/signin", { email, password: `wrong ${i}` })).statusCode).toBe(401);
    }
    const throttled = await browser.post("/signin", { email: email.toUpperCase(), password: PASSWORD });
    expect(throttled.statusCode).toBe(429);
    expect(Number(throttled.headers["retry-after"])).toBe(15 * 60);
    expect(alertOf(throttled.body)).toBe("Too many attempts. Try again in 15 minutes.");
    // An unknown email is throttled just the same: the answer reveals nothing.
    for (let i = 0; i <= PAYER_RATE_RULES.signInPerEmailFromIp.limit; i++) {
      await browser.post("/signin", { email: "ghost@example.com", password: `wrong ${i}` });
    }
    expect((await browser.post("/signin", { email: "ghost@example.com", password: "x" })).statusCode).toBe(
      429,
    );
    h.clock.advance(15 * 60_000);
    expect((await browser.post("/signin", { email, password: PASSWORD })).statusCode).toBe(303);
  });

  it("throttles sign-in per client IP across emails", async () => {
    const rule = PAYER_RATE_RULES.signInPerIp;
    for (let i = 0; i < rule.limit; i++)
      await h.deps.rateLimits.hit(payerRateKeys.signInIp("127.0.0.1"), rule, h.clock.now());
    const { email } = await signUp();
    const browser = h.browser();
    await browser.get("/signin");
    expect((await browser.post("/signin", { email, password: PASSWORD })).statusCode).toBe(429);
  });

  it("signs in to a fresh session and goes back to a same-origin returnTo, never to another site", async () => {
    const { email, browser } = await signUp();
    const before = browser.cookies.get("wf_session");
    await browser.get("/signin?returnTo=%2Fconnect%3Fstep%3Dfund");
    // Already signed in: straight on.
    const signedIn = await browser.get("/signin?returnTo=%2Fconnect%3Fstep%3Dfund");
    expect(signedIn.headers.location).toBe("/connect?step=fund");
    const anonymous = h.browser();
    const form = await anonymous.get("/signin?returnTo=%2Fconnect%3Fstep%3Dfund");
    expect(form.body).toContain('name="returnTo" value="/connect?step=fund"');
    const ok = await anonymous.post("/signin", { email, password: PASSWORD, returnTo: "/connect?step=fund" });
    expect(ok.headers.location).toBe("/connect?step=fund");
    expect(anonymous.cookies.get("wf_session")).not.toBe(before);
    for (const returnTo of [
      "https://evil.example/",
      "//evil.example/x",
      "/\\evil.example",
      "javascript:alert(1)",
    ]) {
      await anonymous.get("/signin");
      const res = await anonymous.post("/signin", { email, password: PASSWORD, returnTo });
      expect(res.headers.location).toBe("/account");
    }
  });

  it("keeps the consent popup's request within reach on the sign-in, sign-up and forgot-password pages, wrong password included", async () => {
    const request = "/connect/consent?c=0123456789abcdef";
    const back = `<a href="${request}">Back to the request</a>`;
    const escaped = encodeURIComponent(request);
    const browser = h.browser();
    const signIn = await browser.get(`/signin?returnTo=${escaped}`);
    expect(signIn.body).toContain(back);
    expect(signIn.body).toContain(`href="/forgot-password?returnTo=${escaped}"`);
    const wrong = await browser.post("/signin", {
      email: "nobody@example.com",
      password: "wrong password",
      returnTo: request,
    });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.body).toContain(back);
    expect((await browser.get(`/signup?returnTo=${escaped}`)).body).toContain(back);
    const invalid = await browser.post("/signup", { email: "x", password: PASSWORD, returnTo: request });
    expect(invalid.statusCode).toBe(400);
    expect(invalid.body).toContain(back);
    // Forgot-password keeps returnTo to the end, and its way back to sign-in too.
    const forgot = await browser.get(`/forgot-password?returnTo=${escaped}`);
    expect(forgot.body).toContain(`name="returnTo" value="${request}"`);
    expect(forgot.body).toContain(back);
    const sent = await browser.post("/forgot-password", { email: "nobody@example.com", returnTo: request });
    expect(sent.body).toContain(`href="/signin?returnTo=${escaped}"`);
    expect(sent.body).toContain(back);
    // Elsewhere there is no request to go back to.
    expect((await h.browser().get("/signin?returnTo=%2Fconnect%3Fstep%3Dfund")).body).not.toContain(
      "Back to the request",
    );
    expect((await h.browser().get("/signin")).body).not.toContain("Back to the request");
  });

  it("shows only its own notices: a query naming an Object property shows none", async () => {
    const browser = h.browser();
    for (const notice of ["constructor", "__proto__", "toString"]) {
      const page = (await browser.get(`/signin?notice=${notice}`)).body;
      expect(page).not.toContain('class="notice"');
      expect(page).not.toContain("native code");
    }
    expect((await browser.get("/signin?notice=signed_out")).body).toContain("You are signed out.");
  });

  it("signs out by ending the session on the server, not only the cookie", async () => {
    const { browser } = await signUp();
    const cookie = browser.cookies.get("wf_session") ?? "";
    await browser.get("/account");
    const out = await browser.post("/signout", {});
    expect(out.statusCode).toBe(303);
    expect(out.headers.location).toBe("/signin?notice=signed_out");
    expect(browser.cookies.has("wf_session")).toBe(false);
    const replay = await h.app.inject({ url: "/account", headers: { cookie: `wf_session=${cookie}` } });
    expect(replay.statusCode).toBe(303);
    expect(replay.headers.location).toBe("/signin");
  });
});

describe("email verification and password reset", () => {
  it("mails a verification link at sign-up that confirms the address exactly once", async () => {
    const { browser, email } = await signUp();
    expect((await browser.get("/account")).body).toContain("Confirm your email address");
    const [mail] = await h.mailsTo(email);
    expect(mail?.subject).toBe("Confirm your email address for Wattfare");
    const link = new URL(linkIn(mail!));
    expect(link.origin).toBe(h.url);
    expect(link.pathname).toBe("/verify-email");
    const first = await h.browser().get(`${link.pathname}${link.search}`);
    expect(first.statusCode).toBe(200);
    expect(first.body).toContain("Email address confirmed");
    expect((await h.store.payerByEmail(email))?.emailVerifiedAt).toBe(h.clock.now());
    expect((await h.browser().get(`${link.pathname}${link.search}`)).statusCode).toBe(400);
    expect((await browser.get("/account")).body).not.toContain("Confirm your email address");
  });

  it("sends the link again from /account, at most 5 mails an hour", async () => {
    const { browser, email } = await signUp();
    const locations: string[] = [];
    for (let i = 0; i < 5; i++) {
      await browser.get("/account");
      locations.push(String((await browser.post("/account/verification", {})).headers.location));
    }
    expect(locations.slice(0, 4)).toEqual(Array(4).fill("/account?account=verification_sent"));
    expect(locations[4]).toBe("/account?account=verification_throttled");
    expect(await h.mailsTo(email)).toHaveLength(5);
    expect((await browser.get("/account?account=verification_throttled")).body).toContain(
      "We&#39;ve sent several links recently.",
    );
  });

  it("answers reset requests identically for unknown, unconfirmed and confirmed addresses, mailing a reset link only to the confirmed one", async () => {
    const unconfirmed = await signUp();
    const confirmed = await signUp();
    await h.store.markPayerEmailVerified((await h.store.payerByEmail(confirmed.email))!.id, h.clock.now());
    const bodies: string[] = [];
    for (const email of ["unknown@example.com", unconfirmed.email, confirmed.email]) {
      const browser = h.browser();
      await browser.get("/forgot-password");
      const res = await browser.post("/forgot-password", { email });
      expect(res.statusCode).toBe(200);
      bodies.push(res.body.replace(email, "EMAIL"));
    }
    expect(new Set(bodies).size).toBe(1);
    expect((await h.mailsTo(unconfirmed.email)).map((m) => m.subject)).toEqual([
      "Confirm your email address for Wattfare",
      "Claim your email address on Wattfare",
    ]);
    expect((await h.mailsTo(confirmed.email)).map((m) => m.subject)).toContain(
      "Reset your Wattfare password",
    );
  });

  it("resets the password through the link once, ending every session of the account and knowing the browser", async () => {
    const { browser, email } = await signUp();
    await h.store.markPayerEmailVerified((await h.store.payerByEmail(email))!.id, h.clock.now());
    const requester = h.browser();
    await requester.get("/forgot-password");
    await requester.post("/forgot-password", { email });
    const reset = (await h.mailsTo(email)).find((m) => m.subject === "Reset your Wattfare password")!;
    const link = new URL(linkIn(reset));
    const visitor = h.browser();
    const form = await visitor.get(`${link.pathname}${link.search}`);
    expect(form.statusCode).toBe(200);
    const short = await visitor.post("/reset-password", {
      token: link.searchParams.get("token")!,
      password: "short",
    });
    expect(short.statusCode).toBe(400);
    const done = await visitor.post("/reset-password", {
      token: link.searchParams.get("token")!,
      password: "a brand new passphrase",
    });
    expect(done.headers.location).toBe("/signin?notice=password_changed");
    expect((await browser.get("/account")).statusCode).toBe(303);
    const again = await visitor.post("/reset-password", {
      token: link.searchParams.get("token")!,
      password: "yet another passphrase",
    });
    expect(again.statusCode).toBe(400);
    expect(again.body).toContain("This reset link has expired or was already used.");
    const signIn = h.browser();
    await signIn.get("/signin");
    expect((await signIn.post("/signin", { email, password: PASSWORD })).statusCode).toBe(401);
    expect((await signIn.post("/signin", { email, password: "a brand new passphrase" })).statusCode).toBe(
      303,
    );
    // The browser that reset it proved it reads the account's mail: the email's throttle no longer
    // holds it back. The one that signed up was known for the old password only: it is held back now.
    await browser.get("/signin");
    for (let i = 2; i < PAYER_RATE_RULES.signInPerEmailFromIp.limit; i++) {
      expect((await browser.post("/signin", { email, password: `wrong ${i}` })).statusCode).toBe(401);
    }
    expect((await browser.post("/signin", { email, password: "a brand new passphrase" })).statusCode).toBe(
      429,
    );
    await visitor.get("/signin");
    expect((await visitor.post("/signin", { email, password: "a brand new passphrase" })).statusCode).toBe(
      303,
    );
  });
});

describe("claiming an address from an unconfirmed account", () => {
  it("lets the address's owner take it back after a squatter's confirmation link lapsed: a new confirmed account, signed in, without the squatter's funding", async () => {
    const victim = freshEmail();
    const { browser: squatter } = await signUp(victim);
    await squatter.get("/account");
    const key = h.sim.control.createKey({ credits: 50 });
    expect((await squatter.post("/funding/key", { key, returnTo: "/account" })).headers.location).toBe(
      "/account?funding=connected",
    );
    const squatterId = (await h.store.payerByEmail(victim))!.id;
    const [squatterFunding] = await h.store.fundingHistory(squatterId, 1);
    expect((await squatter.get("/account")).body).toContain(squatterFunding!.fingerprint);
    h.clock.advance(VERIFY_LINK_TTL_MS + 60_000);

    const owner = h.browser();
    await owner.get("/signup");
    expect(
      alertOf((await owner.post("/signup", { email: victim, password: "owner passphrase 1" })).body),
    ).toContain("resetting lets you claim the address");
    await owner.get("/forgot-password");
    await owner.post("/forgot-password", { email: victim });
    const claim = (await h.mailsTo(victim)).find(
      (m) => m.subject === "Claim your email address on Wattfare",
    )!;
    expect(claim.text).toContain("its funding is not\npassed on to you");
    const link = new URL(linkIn(claim));
    expect(link.pathname).toBe("/claim-email");
    const page = await owner.get(`${link.pathname}${link.search}`);
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain(
      `A Wattfare account uses <strong>${victim}</strong>, but never confirmed it.`,
    );
    expect(page.body).toContain("<strong>not</strong> passed on to you");
    const token = link.searchParams.get("token")!;
    const done = await owner.post("/claim-email", { token, password: "owner passphrase 1" });
    expect(done.statusCode).toBe(303);
    expect(done.headers.location).toBe("/account?account=email_claimed");

    const account = await owner.get("/account?account=email_claimed");
    expect(account.body).toContain(`Signed in as <strong>${victim}</strong>`);
    expect(account.body).toContain("The address is yours now");
    expect(account.body).not.toContain("Confirm your email address");
    expect(account.body).not.toContain(squatterFunding!.fingerprint);
    expect(await h.store.fundingHistory((await h.store.payerByEmail(victim))!.id, 1)).toEqual([]);
    // The squatter is signed out for good, and the link is spent.
    expect((await squatter.get("/account")).statusCode).toBe(303);
    await squatter.get("/signin");
    expect((await squatter.post("/signin", { email: victim, password: PASSWORD })).statusCode).toBe(401);
    const reused = await h.browser().get(`${link.pathname}${link.search}`);
    expect(reused.statusCode).toBe(400);
    expect(reused.body).toContain("<h1>Link expired</h1>");
    expect(reused.body).not.toContain('type="password"');
  });

  it("refuses a claim link used after the address was confirmed, leaving the account as it was", async () => {
    const { browser, email } = await signUp();
    const requester = h.browser();
    await requester.get("/forgot-password");
    await requester.post("/forgot-password", { email });
    const mails = await h.mailsTo(email);
    const claim = new URL(linkIn(mails.find((m) => m.subject === "Claim your email address on Wattfare")!));
    const form = await requester.get(`${claim.pathname}${claim.search}`);
    expect(form.statusCode).toBe(200);
    const confirm = new URL(linkIn(mails[0]!));
    expect((await h.browser().get(`${confirm.pathname}${confirm.search}`)).statusCode).toBe(200);
    const late = await requester.post("/claim-email", {
      token: claim.searchParams.get("token")!,
      password: "owner passphrase 1",
    });
    expect(late.statusCode).toBe(400);
    expect(late.body).toContain("the address was confirmed");
    expect((await browser.get("/account")).body).toContain(`Signed in as <strong>${email}</strong>`);
  });
});

describe("dead reset links", () => {
  it("says a garbage, used or expired reset link is dead before asking for a new password, and opening a live one does not use it up", async () => {
    const { email } = await signUp();
    await h.store.markPayerEmailVerified((await h.store.payerByEmail(email))!.id, h.clock.now());
    const requestLink = async () => {
      const requester = h.browser();
      await requester.get("/forgot-password");
      await requester.post("/forgot-password", { email });
      const mails = (await h.mailsTo(email)).filter((m) => m.subject === "Reset your Wattfare password");
      const link = new URL(linkIn(mails.at(-1)!));
      return { path: `${link.pathname}${link.search}`, token: link.searchParams.get("token")! };
    };
    const expectDead = (res: { statusCode: number; body: string }) => {
      expect(res.statusCode).toBe(400);
      expect(res.body).toContain("<h1>Link expired</h1>");
      expect(res.body).not.toContain('type="password"');
      expect(res.body).toContain('href="/forgot-password"');
    };
    expectDead(await h.browser().get("/reset-password?token=not-a-real-token"));
    expectDead(await h.browser().get("/reset-password"));

    const live = await requestLink();
    const visitor = h.browser();
    // Opened twice (a mail client's link preview, then the payer): still usable.
    expect((await visitor.get(live.path)).body).toContain('type="password"');
    expect((await visitor.get(live.path)).statusCode).toBe(200);
    const done = await visitor.post("/reset-password", {
      token: live.token,
      password: "a brand new passphrase",
    });
    expect(done.statusCode).toBe(303);
    expectDead(await h.browser().get(live.path));

    const lapsed = await requestLink();
    h.clock.advance(RESET_LINK_TTL_MS);
    expectDead(await h.browser().get(lapsed.path));
  });
});

describe("account deletion", () => {
  it("deletes the account after the password: connections revoked, funding retired, key linked at OpenRouter", async () => {
    const { browser, email } = await signUp();
    const key = h.sim.control.createKey();
    await browser.get("/account");
    expect((await browser.post("/funding/key", { key, returnTo: "/account" })).headers.location).toBe(
      "/account?funding=connected",
    );
    const payer = (await h.store.payerByEmail(email))!;
    const { appId } = await h.createApp("Deletion app");
    h.store.db
      .prepare(
        "INSERT INTO connections (id, app_id, app_user_id, payer_id, cap_nano, created_at, updated_at) VALUES ('con_del', ?, 'user_1', ?, 1000000000, 0, 0)",
      )
      .run(appId, payer.id);
    expect((await h.store.chatAccount(appId, "user_1"))?.funding?.state).toBe("ok");

    await browser.get("/account");
    const wrong = await browser.post("/account/delete", { password: "not it" });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.body).toContain("Your account was not deleted.");

    const res = await browser.post("/account/delete", { password: PASSWORD });
    expect(res.statusCode).toBe(200);
    const keyHash = createHash("sha256").update(key).digest("hex");
    expect(res.body).toContain(`href="https://openrouter.ai/keys/${keyHash}"`);
    expect(res.body).not.toContain(key);
    expect(await h.store.chatAccount(appId, "user_1")).toBeUndefined();
    const [funding] = await h.store.fundingHistory(payer.id, 1);
    expect(funding?.replacedAt).toBe(h.clock.now());
    expect(funding?.keyBlob).toBe("erased");
    expect((await browser.get("/account")).statusCode).toBe(303);
    expect(await h.store.payerByEmail(email)).toBeUndefined();
    // The address is free again.
    await signUp(email);
  });

  it("stops a signed-in session guessing the password to delete the account after 10 tries, with 429", async () => {
    const { browser, email } = await signUp();
    await browser.get("/account");
    for (let i = 0; i < PAYER_RATE_RULES.confirmPerPayer.limit; i++) {
      expect((await browser.post("/account/delete", { password: `wrong ${i}` })).statusCode).toBe(401);
    }
    const throttled = await browser.post("/account/delete", { password: PASSWORD });
    expect(throttled.statusCode).toBe(429);
    expect(await h.store.payerByEmail(email)).toBeDefined();
  });
});
