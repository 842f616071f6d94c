import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../config.js";
import type { MailMessage, MailPort } from "../../mail/index.js";
import { MemoryRateLimitStore } from "../../ratelimit/index.js";
import { openSqliteStore, type SqliteStore } from "../../store/sqlite/sqlite-store.js";
import { ManualClock, TEST_SECRET } from "../../testing/harness.js";
import {
  CLAIM_LINK_TTL_MS,
  normalizeEmail,
  PayerService,
  passwordProblem,
  RESET_LINK_TTL_MS,
  VERIFY_LINK_TTL_MS,
} from "./service.js";

class MemoryMail implements MailPort {
  readonly sent: MailMessage[] = [];
  failNext = false;
  async send(message: MailMessage): Promise<void> {
    if (this.failNext) {
      this.failNext = false;
      throw new Error("smtp down");
    }
    this.sent.push(message);
  }
  async close(): Promise<void> {}
  tokenIn(index: number): string {
    const text = this.sent[index]?.text ?? "";
    return new URL(/https?:\/\/\S+/.exec(text)?.[0] ?? "http://x").searchParams.get("token") ?? "";
  }
}

const PASSWORD = "correct horse battery staple";
const IP = "203.0.113.7";
let store: SqliteStore;
let clock: ManualClock;
let mail: MemoryMail;
let rateLimits: MemoryRateLimitStore;
let service: PayerService;

beforeEach(async () => {
  store = await openSqliteStore(":memory:");
  clock = new ManualClock();
  mail = new MemoryMail();
  rateLimits = new MemoryRateLimitStore();
  service = new PayerService({
    store,
    clock,
    mail,
    rateLimits,
    config: loadConfig(
      { WATTFARE_SERVER_SECRET: TEST_SECRET, WATTFARE_PUBLIC_URL: "https://pay.example" },
      "/tmp",
    ),
    logger: pino({ level: "silent" }),
  });
});
afterEach(async () => {
  await rateLimits.close();
  await store.close();
});

async function signUp(email = "alice@example.com") {
  const result = await service.signUp(email, PASSWORD, IP);
  if (!result.ok) throw new Error(`sign-up failed: ${result.reason}`);
  await service.idle();
  return result.payer;
}

describe("normalizeEmail and passwordProblem", () => {
  it.each([
    [" Alice@Example.COM ", "alice@example.com"],
    ["a+tag@sub.example.org", "a+tag@sub.example.org"],
  ])("normalizes %j to %j", (input, expected) => {
    expect(normalizeEmail(input)).toBe(expected);
  });

  it.each([
    "",
    "alice",
    "alice@",
    "@example.com",
    "al ice@example.com",
    "a@b",
    'a"b@example.com',
    "a@example.com\r\nBcc: x@y.z",
  ])("refuses %j", (input) => {
    expect(normalizeEmail(input)).toBeUndefined();
  });

  it("asks only for a length between 8 and 256 characters", () => {
    expect(passwordProblem("1234567")).toBe("Use at least 8 characters.");
    expect(passwordProblem("12345678")).toBeUndefined();
    expect(passwordProblem("🔑".repeat(8))).toBeUndefined();
    expect(passwordProblem("x".repeat(257))).toBe("Use at most 256 characters.");
  });
});

describe("PayerService", () => {
  it("creates the payer with an argon2id hash and mails a verification link to the normalized address", async () => {
    const payer = await signUp("Alice@Example.com");
    expect(payer.email).toBe("alice@example.com");
    expect(payer.passwordHash).toMatch(/^\$argon2id\$/);
    expect(payer.passwordHash).not.toContain(PASSWORD);
    expect(mail.sent).toHaveLength(1);
    expect(mail.sent[0]?.to).toBe("alice@example.com");
    expect(mail.sent[0]?.text).toContain("https://pay.example/verify-email?token=");
  });

  it("reports a taken address without creating a second payer", async () => {
    await signUp();
    expect(await service.signUp("ALICE@example.com", "another password", IP)).toEqual({
      ok: false,
      reason: "taken",
    });
  });

  it("signs in with the right password only, never saying whether the email exists", async () => {
    const payer = await signUp();
    expect(await service.signIn("alice@example.com", PASSWORD, IP)).toEqual({ ok: true, payer });
    expect(await service.signIn("alice@example.com", "wrong password", IP)).toEqual({
      ok: false,
      reason: "invalid",
    });
    expect(await service.signIn("bob@example.com", PASSWORD, IP)).toEqual({ ok: false, reason: "invalid" });
    expect(await service.signIn("not an email", PASSWORD, IP)).toEqual({ ok: false, reason: "invalid" });
  });

  it("keeps a signed-up payer signed up when the mail server fails", async () => {
    mail.failNext = true;
    const result = await service.signUp("carol@example.com", PASSWORD, IP);
    await service.idle();
    expect(result.ok).toBe(true);
    expect(mail.sent).toHaveLength(0);
  });

  it("throttles sign-ups per IP at 20 an hour", async () => {
    for (let i = 0; i < 20; i++) {
      expect((await service.signUp(`user${i}@example.com`, PASSWORD, IP)).ok).toBe(true);
    }
    expect(await service.signUp("one-more@example.com", PASSWORD, IP)).toMatchObject({
      ok: false,
      reason: "throttled",
      retryAfterSeconds: 3600,
    });
    expect((await service.signUp("elsewhere@example.com", PASSWORD, "198.51.100.1")).ok).toBe(true);
  });

  it("verifies the address with a link that works once and expires after 48 hours", async () => {
    const payer = await signUp();
    const token = mail.tokenIn(0);
    expect(await service.verifyEmail("made-up-token")).toBe(false);
    expect(await service.verifyEmail(token)).toBe(true);
    expect((await store.getPayer(payer.id))?.emailVerifiedAt).toBe(clock.now());
    expect(await service.verifyEmail(token)).toBe(false);

    const bob = await signUp("bob@example.com");
    clock.advance(VERIFY_LINK_TTL_MS);
    expect(await service.verifyEmail(mail.tokenIn(1))).toBe(false);
    expect((await store.getPayer(bob.id))?.emailVerifiedAt).toBeNull();
  });

  it("mails reset links only to confirmed addresses, valid once for one hour", async () => {
    const payer = await signUp();
    await service.requestPasswordReset("alice@example.com", IP);
    await service.idle();
    // An unconfirmed address gets a claim link instead, which no reset accepts.
    expect(mail.sent.map((m) => m.subject)).toEqual([
      "Confirm your email address for Wattfare",
      "Claim your email address on Wattfare",
    ]);
    expect(await service.resetPassword(mail.tokenIn(1), "a new passphrase")).toEqual({
      ok: false,
      reason: "link",
    });
    mail.sent.splice(1);
    await store.markPayerEmailVerified(payer.id, clock.now());
    await service.requestPasswordReset(" ALICE@example.com ", IP);
    await service.idle();
    expect(mail.sent[1]?.subject).toBe("Reset your Wattfare password");
    const token = mail.tokenIn(1);

    expect(await service.resetPassword(token, "short")).toMatchObject({ ok: false, reason: "password" });
    expect(await service.resetPassword(token, "a new passphrase")).toMatchObject({
      ok: true,
      payer: { email: "alice@example.com" },
    });
    expect(await service.resetPassword(token, "another passphrase")).toEqual({ ok: false, reason: "link" });
    expect((await service.signIn("alice@example.com", "a new passphrase", IP)).ok).toBe(true);

    await service.requestPasswordReset("alice@example.com", IP);
    await service.idle();
    clock.advance(RESET_LINK_TTL_MS);
    expect(await service.resetPassword(mail.tokenIn(2), "too late passphrase")).toEqual({
      ok: false,
      reason: "link",
    });
  });

  it("ends every session and unused reset link when the password changes", async () => {
    const payer = await signUp();
    await store.markPayerEmailVerified(payer.id, clock.now());
    const idHash = Buffer.alloc(32, 7);
    await store.createPayerSession({
      idHash,
      payerId: payer.id,
      createdAt: clock.now(),
      expiresAt: clock.now() + 1e9,
    });
    await service.requestPasswordReset("alice@example.com", IP);
    await service.requestPasswordReset("alice@example.com", IP);
    await service.idle();
    expect(await service.resetPassword(mail.tokenIn(1), "a new passphrase")).toMatchObject({
      ok: true,
      payer: { email: "alice@example.com" },
    });
    expect(await store.payerSession(idHash, clock.now())).toBeUndefined();
    expect(await service.resetPassword(mail.tokenIn(2), "a third passphrase")).toEqual({
      ok: false,
      reason: "link",
    });
  });

  it("limits verification and reset mails to 5 an hour per address", async () => {
    const payer = await signUp();
    const results = [];
    for (let i = 0; i < 5; i++) results.push(await service.sendVerification(payer));
    expect(results).toEqual(["sent", "sent", "sent", "sent", "throttled"]);
    clock.advance(3_600_000);
    expect(await service.sendVerification(payer)).toBe("sent");
  });

  it("deletes the account and lists each distinct OpenRouter key it used once", async () => {
    const payer = await signUp();
    const funding = (id: string, hash: string) => ({
      id,
      keyBlob: "v1.x",
      fingerprint: `sk-or-v1-…${hash.slice(0, 4)}`,
      openRouterKeyHash: hash,
      source: "pasted" as const,
      state: "ok" as const,
      limitRemainingNano: null,
      checkedAt: clock.now(),
    });
    await store.replacePayerFunding(payer.id, funding("fnd_1", "a".repeat(64)), clock.now());
    await store.replacePayerFunding(payer.id, funding("fnd_2", "b".repeat(64)), clock.now() + 1);
    await store.replacePayerFunding(payer.id, funding("fnd_3", "a".repeat(64)), clock.now() + 2);
    const links = await service.deleteAccount(payer);
    expect(links.map((l) => l.url).sort()).toEqual([
      `https://openrouter.ai/keys/${"a".repeat(64)}`,
      `https://openrouter.ai/keys/${"b".repeat(64)}`,
    ]);
    expect(await store.getPayer(payer.id)).toBeUndefined();
    expect(
      (await store.fundingHistory(payer.id, 5)).every((f) => f.replacedAt !== null && f.keyBlob === "erased"),
    ).toBe(true);
  });
});

describe("claiming an address an unconfirmed account uses", () => {
  const squat = async () => {
    const squatter = await signUp("victim@example.com");
    await store.replacePayerFunding(
      squatter.id,
      {
        id: "fnd_squatter",
        keyBlob: "v1.x",
        fingerprint: "sk-or-v1-…abcd",
        openRouterKeyHash: "c".repeat(64),
        source: "pasted",
        state: "ok",
        limitRemainingNano: null,
        checkedAt: clock.now(),
      },
      clock.now(),
    );
    return squatter;
  };
  /** Asks for a reset as the address's owner would, and returns the claim link's token. */
  const claimToken = async (): Promise<string> => {
    await service.requestPasswordReset("victim@example.com", IP);
    await service.idle();
    const index = mail.sent.findLastIndex((m) => m.subject === "Claim your email address on Wattfare");
    expect(index).toBeGreaterThanOrEqual(0);
    return mail.tokenIn(index);
  };

  it("gives the owner a new confirmed account with the address, and closes the squatter's without passing its funding on", async () => {
    const squatter = await squat();
    const sessionHash = Buffer.alloc(32, 9);
    await store.createPayerSession({
      idHash: sessionHash,
      payerId: squatter.id,
      createdAt: clock.now(),
      expiresAt: clock.now() + 1e9,
    });
    clock.advance(VERIFY_LINK_TTL_MS + 60_000);
    const token = await claimToken();
    expect(mail.sent.at(-1)?.text).toContain("https://pay.example/claim-email?token=");
    expect(await service.claimableEmail(token)).toBe("victim@example.com");

    expect(await service.claimEmail(token, "short")).toMatchObject({ ok: false, reason: "password" });
    const claimed = await service.claimEmail(token, "the owner's passphrase");
    if (!claimed.ok) throw new Error(`claim failed: ${claimed.reason}`);
    expect(claimed.payer.id).not.toBe(squatter.id);
    expect(await store.payerByEmail("victim@example.com")).toMatchObject({
      id: claimed.payer.id,
      emailVerifiedAt: clock.now(),
    });
    expect(await store.fundingHistory(claimed.payer.id, 5)).toEqual([]);
    // The squatter's account is closed: no sign-in, no session, its funding retired and erased.
    expect(await store.getPayer(squatter.id)).toBeUndefined();
    expect(await store.payerSession(sessionHash, clock.now())).toBeUndefined();
    expect((await service.signIn("victim@example.com", PASSWORD, IP)).ok).toBe(false);
    expect((await service.signIn("victim@example.com", "the owner's passphrase", IP)).ok).toBe(true);
    expect(
      (await store.fundingHistory(squatter.id, 5)).every(
        (f) => f.replacedAt !== null && f.keyBlob === "erased",
      ),
    ).toBe(true);
    // The link worked once.
    expect(await service.claimableEmail(token)).toBeUndefined();
    expect(await service.claimEmail(token, "another passphrase")).toEqual({ ok: false, reason: "link" });
    // The squatter's confirmation link confirms nothing now.
    expect(await service.verifyEmail(mail.tokenIn(0))).toBe(false);
  });

  it("expires a claim link after one hour", async () => {
    await squat();
    const token = await claimToken();
    clock.advance(CLAIM_LINK_TTL_MS);
    expect(await service.claimableEmail(token)).toBeUndefined();
    expect(await service.claimEmail(token, "the owner's passphrase")).toEqual({ ok: false, reason: "link" });
  });

  it("refuses a claim link once the address was confirmed meanwhile, and changes nothing", async () => {
    const squatter = await squat();
    const token = await claimToken();
    expect(await service.verifyEmail(mail.tokenIn(0))).toBe(true);
    expect(await service.claimableEmail(token)).toBeUndefined();
    expect(await service.claimEmail(token, "the owner's passphrase")).toEqual({ ok: false, reason: "link" });
    expect((await store.payerByEmail("victim@example.com"))?.id).toBe(squatter.id);
    expect((await service.signIn("victim@example.com", PASSWORD, IP)).ok).toBe(true);
    expect((await store.fundingHistory(squatter.id, 1))[0]?.replacedAt).toBeNull();
  });

  it("lets exactly one of two claims at once win", async () => {
    await squat();
    const first = await claimToken();
    const second = await claimToken();
    const results = await Promise.all([
      service.claimEmail(first, "first passphrase 1"),
      service.claimEmail(second, "second passphrase 2"),
    ]);
    expect(results.filter((r) => r.ok)).toHaveLength(1);
    const winner = results.find((r) => r.ok);
    expect((await store.payerByEmail("victim@example.com"))?.id).toBe(winner?.ok ? winner.payer.id : "");
  });

  it("sends claim links under the reset throttles: 5 mails an hour per address", async () => {
    await squat(); // the verification mail counts too
    for (let i = 0; i < 5; i++) await service.requestPasswordReset("victim@example.com", IP);
    await service.idle();
    expect(mail.sent.filter((m) => m.subject === "Claim your email address on Wattfare")).toHaveLength(4);
  });
});
