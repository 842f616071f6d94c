/**
 * Payer accounts: sign-up, sign-in, email verification, password reset and deletion.
 *
 * Rules (DESIGN.md "Security"):
 * - passwords are argon2id (OWASP parameters: 19 MiB, 2 passes, 1 lane — @node-rs/argon2's defaults);
 * - sign-in failures never say whether the email exists, and an unknown email still costs one argon2
 *   verification, so timing doesn't tell either;
 * - sign-in is throttled per email and per client IP; sign-up, reset requests and mails too;
 * - verification never blocks funding or approving; it gates password reset, because an unverified
 *   address (a typo, say) may belong to someone else, who must not be able to take the account over;
 * - that someone can instead *claim* the address (a reset request for it mails a claim link): the
 *   unconfirmed account is closed and the owner starts a new, confirmed account — nothing of the old
 *   one (funding, connections, grants) passes to them, and nobody can keep an address they don't read;
 * - email links carry a one-time random token; only its SHA-256 is stored.
 */
import { randomUUID } from "node:crypto";
import { hash, verify } from "@node-rs/argon2";
import type { Logger } from "pino";
import type { Config } from "../../config.js";
import type { Clock } from "../../deps.js";
import { clientNetwork } from "../../http/client-network.js";
import type { MailMessage, MailPort } from "../../mail/index.js";
import type { RateLimitStore, RateRule } from "../../ratelimit/index.js";
import type { EmailTokenPurpose, PayerRecord, Store } from "../../store/port.js";
import { hashToken, newToken } from "./session.js";

export const VERIFY_LINK_TTL_MS = 48 * 3_600_000;
export const RESET_LINK_TTL_MS = 3_600_000;
/** Claim links live and are throttled like reset links: a reset request sends one or the other. */
export const CLAIM_LINK_TTL_MS = RESET_LINK_TTL_MS;

/** Throttling rules; each has its own rate-limit key namespace `rl:payer:<what>:…`. */
export const PAYER_RATE_RULES = {
  // Per email *and* address: one client guessing at an account is stopped after 10 tries, but cannot lock
  // its owner out (who must always be able to sign in and pause spending) from anywhere else.
  signInPerEmailFromIp: { limit: 10, windowMs: 15 * 60_000 },
  // Per email from anywhere: bounds guessing spread over many addresses.
  signInPerEmail: { limit: 100, windowMs: 15 * 60_000 },
  // Generous: many people can share one address behind a NAT or a proxy.
  signInPerIp: { limit: 100, windowMs: 15 * 60_000 },
  // A signed-in payer re-entering the password (to delete the account): per account, not per email, so
  // strangers failing to sign in as them cannot block it, while a stolen session still cannot guess on.
  confirmPerPayer: { limit: 10, windowMs: 15 * 60_000 },
  signUpPerIp: { limit: 20, windowMs: 3_600_000 },
  resetRequestPerIp: { limit: 30, windowMs: 3_600_000 },
  mailPerAddress: { limit: 5, windowMs: 3_600_000 },
} as const satisfies Record<string, RateRule>;

/** Keys of the payer throttles. Client addresses count by network (an IPv6 /64: see clientNetwork). */
export const payerRateKeys = {
  signInEmail: (email: string) => `rl:payer:signin:email:${email}`,
  // A network has no space, so the first one ends it: no two (network, email) pairs share a key.
  signInEmailFromIp: (email: string, ip: string) => `rl:payer:signin:email-ip:${clientNetwork(ip)} ${email}`,
  signInIp: (ip: string) => `rl:payer:signin:ip:${clientNetwork(ip)}`,
  signUpIp: (ip: string) => `rl:payer:signup:ip:${clientNetwork(ip)}`,
  resetIp: (ip: string) => `rl:payer:reset:ip:${clientNetwork(ip)}`,
  mail: (email: string) => `rl:payer:mail:${email}`,
  confirm: (payerId: string) => `rl:payer:confirm:${payerId}`,
};

const newPayerId = (): string => `pay_${randomUUID().replaceAll("-", "")}`;

export const MIN_PASSWORD_LENGTH = 8;
export const MAX_PASSWORD_LENGTH = 256;
const MAX_EMAIL_LENGTH = 254;
// Deliberately loose (RFC 5322 in full accepts far more); whitespace, quotes and brackets are refused so
// an address can never break a mail header or a page.
const EMAIL_PATTERN = /^[^\s@"<>()[\]\\,;:]+@[^\s@"<>()[\]\\,;:]+\.[^\s@"<>()[\]\\,;:]+$/;

/** Trimmed, lower-cased address, or undefined when it is not a plausible email address. */
export function normalizeEmail(input: string): string | undefined {
  const email = input.trim().toLowerCase();
  if (email.length > MAX_EMAIL_LENGTH || !EMAIL_PATTERN.test(email)) return undefined;
  return email;
}

/** Why a new password is refused (NIST SP 800-63B: length, no composition rules), or undefined. */
export function passwordProblem(password: string): string | undefined {
  const length = [...password].length;
  if (length < MIN_PASSWORD_LENGTH) return `Use at least ${MIN_PASSWORD_LENGTH} characters.`;
  if (length > MAX_PASSWORD_LENGTH) return `Use at most ${MAX_PASSWORD_LENGTH} characters.`;
  return undefined;
}

export type Throttled = { ok: false; reason: "throttled"; retryAfterSeconds: number };

export type SignUpResult =
  | { ok: true; payer: PayerRecord }
  | { ok: false; reason: "email" | "password"; message: string }
  | { ok: false; reason: "taken" }
  | Throttled;

export type SignInResult = { ok: true; payer: PayerRecord } | { ok: false; reason: "invalid" } | Throttled;

/**
 * A password set through an emailed link (a reset, or a claim: then `payer` is the new, confirmed account
 * that now has the address).
 */
export type LinkPasswordResult =
  | { ok: true; payer: PayerRecord }
  | { ok: false; reason: "link" }
  | { ok: false; reason: "password"; message: string };

/** Where to delete a key at OpenRouter after removing it here. */
export interface KeyLink {
  fingerprint: string;
  url: string;
}

export const openRouterKeyUrl = (keyHash: string): string => `https://openrouter.ai/keys/${keyHash}`;

export interface PayerServiceDeps {
  store: Store;
  clock: Clock;
  config: Config;
  logger: Logger;
  rateLimits: RateLimitStore;
  mail: MailPort;
}

export class PayerService {
  /** A real argon2id hash of nothing in particular, verified against when there is no account. */
  private readonly decoy: Promise<string>;
  private readonly sending = new Set<Promise<void>>();

  constructor(private readonly d: PayerServiceDeps) {
    this.decoy = hash(newToken());
  }

  async signUp(emailInput: string, password: string, ip: string): Promise<SignUpResult> {
    const email = normalizeEmail(emailInput);
    if (email === undefined) return { ok: false, reason: "email", message: "Enter a valid email address." };
    const weak = passwordProblem(password);
    if (weak !== undefined) return { ok: false, reason: "password", message: weak };
    const throttled = await this.throttle(PAYER_RATE_RULES.signUpPerIp, payerRateKeys.signUpIp(ip));
    if (throttled) return throttled;
    const passwordHash = await hash(password);
    const payer: PayerRecord = {
      id: newPayerId(),
      email,
      passwordHash,
      emailVerifiedAt: null,
      paused: false,
      createdAt: this.d.clock.now(),
    };
    const created = await this.d.store.createPayer({
      id: payer.id,
      email,
      passwordHash,
      createdAt: payer.createdAt,
    });
    if (!created) return { ok: false, reason: "taken" };
    await this.sendVerification(payer);
    return { ok: true, payer };
  }

  /**
   * `knownDevice`: whether the browser signed in to this account, with its current password, before
   * (see PayerSessions.knownDevice); such a browser skips the per-email throttles.
   */
  async signIn(
    emailInput: string,
    password: string,
    ip: string,
    knownDevice: (payer: PayerRecord) => boolean = () => false,
  ): Promise<SignInResult> {
    const email = emailInput.trim().toLowerCase().slice(0, MAX_EMAIL_LENGTH);
    const perIp = await this.throttle(PAYER_RATE_RULES.signInPerIp, payerRateKeys.signInIp(ip));
    if (perIp) return perIp;
    const payer = normalizeEmail(email) === undefined ? undefined : await this.d.store.payerByEmail(email);
    if (!(payer && knownDevice(payer))) {
      const throttled = await this.perEmailThrottle(email, ip);
      if (throttled) return throttled;
    }
    return (await this.passwordMatches(payer, password)) && payer
      ? { ok: true, payer }
      : { ok: false, reason: "invalid" };
  }

  /**
   * Re-checks the password of a signed-in payer before a destructive step (deleting the account). Its own
   * per-account throttle, so a stolen session can't be used to guess it; not sign-in's per-email one,
   * which anyone can fill by failing to sign in as this payer.
   */
  async confirmPassword(payer: PayerRecord, password: string, ip: string): Promise<SignInResult> {
    const throttled =
      (await this.throttle(PAYER_RATE_RULES.signInPerIp, payerRateKeys.signInIp(ip))) ??
      (await this.throttle(PAYER_RATE_RULES.confirmPerPayer, payerRateKeys.confirm(payer.id)));
    if (throttled) return throttled;
    return (await this.passwordMatches(payer, password))
      ? { ok: true, payer }
      : { ok: false, reason: "invalid" };
  }

  /** Counts a password attempt per email from this network, and per email from anywhere. */
  private async perEmailThrottle(email: string, ip: string): Promise<Throttled | undefined> {
    return (
      (await this.throttle(
        PAYER_RATE_RULES.signInPerEmailFromIp,
        payerRateKeys.signInEmailFromIp(email, ip),
      )) ?? (await this.throttle(PAYER_RATE_RULES.signInPerEmail, payerRateKeys.signInEmail(email)))
    );
  }

  /** Mails a verification link unless the address is verified or has had too many mails lately. */
  async sendVerification(payer: PayerRecord): Promise<"sent" | "throttled" | "verified"> {
    if (payer.emailVerifiedAt !== null) return "verified";
    if (await this.throttle(PAYER_RATE_RULES.mailPerAddress, payerRateKeys.mail(payer.email)))
      return "throttled";
    const link = await this.issueLink(payer, "verify", VERIFY_LINK_TTL_MS, "/verify-email");
    this.dispatch({
      to: payer.email,
      subject: "Confirm your email address for Wattfare",
      text: [
        "Confirm that this address belongs to your Wattfare account by opening this link:",
        "",
        link,
        "",
        "The link works once and expires in 48 hours.",
        "If you did not create a Wattfare account, ignore this message.",
      ].join("\n"),
    });
    return "sent";
  }

  /** True when the link was valid: the address it was sent to is now verified. */
  async verifyEmail(token: string): Promise<boolean> {
    const used = await this.d.store.consumeEmailToken(hashToken(token), "verify", this.d.clock.now());
    if (!used) return false;
    const payer = await this.d.store.getPayer(used.payerId);
    if (!payer || payer.email !== used.email) return false;
    await this.d.store.markPayerEmailVerified(payer.id, this.d.clock.now());
    return true;
  }

  /**
   * Mails a reset link when the address belongs to a verified account, a claim link when it belongs to
   * an unverified one. The caller answers the same way whatever happens here, so the response never
   * tells whether the account exists or is confirmed.
   */
  async requestPasswordReset(emailInput: string, ip: string): Promise<{ throttled: Throttled | undefined }> {
    const throttled = await this.throttle(PAYER_RATE_RULES.resetRequestPerIp, payerRateKeys.resetIp(ip));
    if (throttled) return { throttled };
    const email = normalizeEmail(emailInput);
    if (email === undefined) return { throttled: undefined };
    const payer = await this.d.store.payerByEmail(email);
    if (!payer) return { throttled: undefined };
    if (await this.throttle(PAYER_RATE_RULES.mailPerAddress, payerRateKeys.mail(payer.email))) {
      return { throttled: undefined };
    }
    if (payer.emailVerifiedAt === null) await this.sendClaimLink(payer);
    else await this.sendResetLink(payer);
    return { throttled: undefined };
  }

  private async sendResetLink(payer: PayerRecord): Promise<void> {
    const link = await this.issueLink(payer, "reset", RESET_LINK_TTL_MS, "/reset-password");
    this.dispatch({
      to: payer.email,
      subject: "Reset your Wattfare password",
      text: [
        "Someone (hopefully you) asked to reset the password of your Wattfare account.",
        "Choose a new password here:",
        "",
        link,
        "",
        "The link works once and expires in 1 hour.",
        "If you did not ask for this, ignore this message: your password is unchanged.",
      ].join("\n"),
    });
  }

  /**
   * The reset mail for an address no account has confirmed: it may have been signed up by someone
   * else, so the link claims the address for a new account instead of opening the old one.
   */
  private async sendClaimLink(payer: PayerRecord): Promise<void> {
    const link = await this.issueLink(payer, "claim", CLAIM_LINK_TTL_MS, "/claim-email");
    this.dispatch({
      to: payer.email,
      subject: "Claim your email address on Wattfare",
      text: [
        "Someone (hopefully you) asked to reset the password of the Wattfare account that uses this address.",
        "That account never confirmed the address, so we can't tell it is yours: someone may have signed up",
        "with it by mistake, or on purpose.",
        "",
        "If this address is yours, you can claim it and create your own Wattfare account with it here:",
        "",
        link,
        "",
        "Claiming closes the unconfirmed account: its connected apps lose access and its funding is not",
        "passed on to you. If that account was yours, connect your funding and apps again afterwards.",
        "The link works once and expires in 1 hour.",
        "If you did not ask for this, ignore this message: nothing changes.",
      ].join("\n"),
    });
  }

  /** The address a claim link would take back, while it can: the link live, its account unconfirmed. */
  async claimableEmail(token: string): Promise<string | undefined> {
    const payer = await this.liveLinkPayer(token, "claim");
    return payer?.emailVerifiedAt === null ? payer.email : undefined;
  }

  /**
   * Takes the address back from the unconfirmed account the claim link was sent for, and gives it to a
   * new, confirmed account with this password. Fails (`link`) when the link is spent or expired, or the
   * account confirmed the address or was closed meanwhile; then nothing changes.
   */
  async claimEmail(token: string, password: string): Promise<LinkPasswordResult> {
    const spent = await this.spendLink(token, "claim", password);
    if (!spent.ok) return spent;
    const { used, now } = spent;
    const payer = {
      id: newPayerId(),
      email: used.email,
      passwordHash: await hash(password),
      emailVerifiedAt: now,
      paused: false,
      createdAt: now,
    } satisfies PayerRecord;
    if (!(await this.d.store.claimPayerEmail(used.payerId, payer, now))) {
      return { ok: false, reason: "link" };
    }
    this.d.logger.info({ payerId: payer.id, closedPayerId: used.payerId }, "payer email claimed");
    return { ok: true, payer };
  }

  /**
   * Whether a reset link can still be used — unused, unexpired, and its account still at the address it
   * was sent to — without using it up: the page shows the form only for a live link.
   */
  async resetLinkLive(token: string): Promise<boolean> {
    return (await this.liveLinkPayer(token, "reset")) !== undefined;
  }

  /** Sets a new password from a reset link; every session of the account ends. */
  async resetPassword(token: string, password: string): Promise<LinkPasswordResult> {
    const spent = await this.spendLink(token, "reset", password);
    if (!spent.ok) return spent;
    const { used, now } = spent;
    const payer = await this.payerStillAt(used);
    if (!payer) return { ok: false, reason: "link" };
    const passwordHash = await hash(password);
    await this.d.store.setPayerPassword(payer.id, passwordHash, now);
    return { ok: true, payer: { ...payer, passwordHash } };
  }

  /**
   * The account of a link not yet used up, while it is still at the address the link was sent to;
   * the link stays unused.
   */
  private async liveLinkPayer(token: string, purpose: EmailTokenPurpose): Promise<PayerRecord | undefined> {
    const found = await this.d.store.peekEmailToken(hashToken(token), purpose, this.d.clock.now());
    return found && this.payerStillAt(found);
  }

  /** The account a link was sent for, if it is still at the address the link went to. */
  private async payerStillAt(link: { payerId: string; email: string }): Promise<PayerRecord | undefined> {
    const payer = await this.d.store.getPayer(link.payerId);
    return payer?.email === link.email ? payer : undefined;
  }

  /**
   * Uses up a reset or claim link to set `password`, which is judged first: a weak password must not
   * spend the one-time link.
   */
  private async spendLink(
    token: string,
    purpose: EmailTokenPurpose,
    password: string,
  ): Promise<
    | { ok: true; used: { payerId: string; email: string }; now: number }
    | Extract<LinkPasswordResult, { ok: false }>
  > {
    const weak = passwordProblem(password);
    if (weak !== undefined) return { ok: false, reason: "password", message: weak };
    const now = this.d.clock.now();
    const used = await this.d.store.consumeEmailToken(hashToken(token), purpose, now);
    return used ? { ok: true, used, now } : { ok: false, reason: "link" };
  }

  /**
   * Deletes the account (every connection and grant revoked, funding retired, sessions ended) and
   * returns the OpenRouter pages of the keys it used, so the payer can delete them there too.
   */
  async deleteAccount(payer: PayerRecord): Promise<KeyLink[]> {
    const links = new Map<string, KeyLink>();
    for (const funding of await this.d.store.fundingHistory(payer.id, 50)) {
      if (funding.openRouterKeyHash !== null && !links.has(funding.openRouterKeyHash)) {
        links.set(funding.openRouterKeyHash, {
          fingerprint: funding.fingerprint,
          url: openRouterKeyUrl(funding.openRouterKeyHash),
        });
      }
    }
    await this.d.store.deletePayer(payer.id, this.d.clock.now());
    return [...links.values()];
  }

  /** Resolves once every mail handed to the port so far has been accepted or has failed (tests). */
  async idle(): Promise<void> {
    await Promise.all([...this.sending]);
  }

  private async passwordMatches(payer: PayerRecord | undefined, password: string): Promise<boolean> {
    const stored = payer?.passwordHash ?? null;
    if (stored === null) {
      await verify(await this.decoy, password).catch(() => false);
      return false;
    }
    return verify(stored, password).catch(() => false);
  }

  private async issueLink(
    payer: PayerRecord,
    purpose: EmailTokenPurpose,
    ttlMs: number,
    path: string,
  ): Promise<string> {
    const token = newToken();
    const now = this.d.clock.now();
    await this.d.store.createEmailToken({
      tokenHash: hashToken(token),
      payerId: payer.id,
      purpose,
      email: payer.email,
      createdAt: now,
      expiresAt: now + ttlMs,
    });
    const url = new URL(path, this.d.config.publicUrl);
    url.searchParams.set("token", token);
    return url.toString();
  }

  /**
   * Sends without making the request wait: a reset request takes the same time whether or not a mail
   * goes out, and a slow mail server never holds a page. Failures are logged without the message body
   * (it carries a one-time link).
   */
  private dispatch(message: MailMessage): void {
    const sending: Promise<void> = this.d.mail.send(message).then(
      () => undefined,
      (error: unknown) => {
        this.d.logger.warn(
          { mailTo: message.to, reason: error instanceof Error ? error.message : "unknown" },
          "payer mail not sent",
        );
      },
    );
    this.sending.add(sending);
    void sending.finally(() => this.sending.delete(sending));
  }

  private async throttle(rule: RateRule, key: string): Promise<Throttled | undefined> {
    const decision = await this.d.rateLimits.hit(key, rule, this.d.clock.now());
    return decision.allowed
      ? undefined
      : { ok: false, reason: "throttled", retryAfterSeconds: decision.retryAfterSeconds };
  }
}
