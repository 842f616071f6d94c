/**
 * Payer web sessions: an opaque random token in an httpOnly, SameSite=Lax cookie (Secure whenever the
 * public URL is https), stored only as its SHA-256. CSRF tokens are HMACs bound to the session — or,
 * before sign-in, to an anonymous browser cookie, so the sign-in and sign-up forms are protected too.
 */
import { createHash, randomBytes } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Config } from "../../config.js";
import type { Clock } from "../../deps.js";
import { createCsrfToken, type KeyRing, verifyCsrfToken } from "../../security/index.js";
import type { PayerRecord, PayerSessionRecord, Store } from "../../store/port.js";
import {
  assertSameOrigin,
  type FormFields,
  formFields,
  parseCookies,
  serializeCookie,
} from "../web/index.js";

/** Absolute lifetime of a payer session. */
export const SESSION_TTL_MS = 30 * 24 * 3_600_000;
/** How long a browser that signed in stays known for the account (see knownDevice). */
const KNOWN_DEVICE_TTL_MS = 365 * 24 * 3_600_000;
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;

export interface SignedInPayer {
  payer: PayerRecord;
  session: PayerSessionRecord;
  /** Hex of the session id hash: what CSRF tokens and OAuth attempts are bound to. */
  sessionKey: string;
}

/** A checked form post: same origin, fields parsed, the CSRF token judged against this browser. */
export interface CheckedForm {
  fields: FormFields;
  signedIn: SignedInPayer | undefined;
  csrfOk: boolean;
}

export interface PayerSessionsDeps {
  store: Store;
  clock: Clock;
  keyRing: KeyRing;
  config: Config;
}

export const hashToken = (token: string): Buffer => createHash("sha256").update(token, "utf8").digest();
export const newToken = (): string => randomBytes(32).toString("base64url");

export class PayerSessions {
  /** `__Host-` names are only accepted by browsers with Secure, Path=/ and no Domain — exactly ours. */
  readonly cookieName: string;
  readonly anonCookieName: string;
  readonly knownCookieName: string;
  private readonly secure: boolean;
  private readonly resolved = new WeakMap<FastifyRequest, SignedInPayer | null>();

  constructor(private readonly d: PayerSessionsDeps) {
    this.secure = new URL(d.config.publicUrl).protocol === "https:";
    this.cookieName = this.secure ? "__Host-wf_session" : "wf_session";
    this.anonCookieName = this.secure ? "__Host-wf_browser" : "wf_browser";
    this.knownCookieName = this.secure ? "__Host-wf_known" : "wf_known";
  }

  /**
   * Whether this browser has signed in to `payer`'s account, with its current password, before: it holds
   * a MAC of the account id and password hash that only this server makes, set at every sign-in, sign-up
   * and password reset. Such a browser is not held back by the per-email sign-in throttles, so nobody
   * can lock a payer out by failing to sign in as them. A new password, or a new account on the same
   * address, makes every earlier cookie worthless.
   */
  knownDevice(request: FastifyRequest, payer: PayerRecord): boolean {
    const token = parseCookies(request.headers.cookie).get(this.knownCookieName);
    const binding = knownDeviceBinding(payer);
    return token !== undefined && binding !== undefined && verifyCsrfToken(this.d.keyRing, binding, token);
  }

  /** Makes this browser known for `payer` (it signed in, signed up or reset the password by email link). */
  rememberDevice(reply: FastifyReply, payer: PayerRecord): void {
    const binding = knownDeviceBinding(payer);
    if (binding === undefined) return;
    const token = createCsrfToken(this.d.keyRing, binding);
    appendCookie(
      reply,
      serializeCookie(this.knownCookieName, token, {
        secure: this.secure,
        maxAgeSeconds: KNOWN_DEVICE_TTL_MS / 1000,
      }),
    );
  }

  /** The signed-in payer of this request, if any (resolved once per request). */
  async current(request: FastifyRequest): Promise<SignedInPayer | undefined> {
    const known = this.resolved.get(request);
    if (known !== undefined) return known ?? undefined;
    const token = parseCookies(request.headers.cookie).get(this.cookieName);
    let signedIn: SignedInPayer | null = null;
    if (token !== undefined && TOKEN_PATTERN.test(token)) {
      const found = await this.d.store.payerSession(hashToken(token), this.d.clock.now());
      if (found) signedIn = { ...found, sessionKey: found.session.idHash.toString("hex") };
    }
    this.resolved.set(request, signedIn);
    return signedIn ?? undefined;
  }

  /** Signs `payerId` in: a fresh session (the previous one, if any, ends — no session fixation). */
  async start(request: FastifyRequest, reply: FastifyReply, payerId: string): Promise<SignedInPayer> {
    const previous = await this.current(request);
    if (previous) await this.d.store.deletePayerSession(previous.session.idHash);
    const token = newToken();
    const now = this.d.clock.now();
    const session: PayerSessionRecord = {
      idHash: hashToken(token),
      payerId,
      createdAt: now,
      expiresAt: now + SESSION_TTL_MS,
    };
    await this.d.store.createPayerSession(session);
    const payer = await this.d.store.getPayer(payerId);
    if (!payer) throw new Error("payer vanished while signing in");
    appendCookie(
      reply,
      serializeCookie(this.cookieName, token, { secure: this.secure, maxAgeSeconds: SESSION_TTL_MS / 1000 }),
    );
    this.rememberDevice(reply, payer);
    const signedIn = { payer, session, sessionKey: session.idHash.toString("hex") };
    this.resolved.set(request, signedIn);
    return signedIn;
  }

  /** Ends this request's session (if any) and clears the cookie. */
  async end(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const signedIn = await this.current(request);
    if (signedIn) await this.d.store.deletePayerSession(signedIn.session.idHash);
    this.clearCookie(reply);
    this.resolved.set(request, null);
  }

  clearCookie(reply: FastifyReply): void {
    appendCookie(reply, serializeCookie(this.cookieName, "", { secure: this.secure, maxAgeSeconds: 0 }));
  }

  /**
   * The CSRF token for forms rendered in this response: bound to the payer's session when signed in,
   * else to an anonymous browser cookie (set here when missing).
   */
  csrfToken(request: FastifyRequest, reply: FastifyReply, signedIn: SignedInPayer | undefined): string {
    if (signedIn) return createCsrfToken(this.d.keyRing, `payer:${signedIn.sessionKey}`);
    let browser = parseCookies(request.headers.cookie).get(this.anonCookieName);
    if (browser === undefined || !TOKEN_PATTERN.test(browser)) {
      browser = newToken();
      appendCookie(reply, serializeCookie(this.anonCookieName, browser, { secure: this.secure }));
    }
    return createCsrfToken(this.d.keyRing, `browser:${browser}`);
  }

  /**
   * Checks a form post: throws 403 unless it comes from Wattfare's own pages (Origin / Sec-Fetch-Site),
   * then judges its `csrf` field against the session binding or the anonymous browser binding (a form
   * rendered before signing in, in another tab, stays valid).
   */
  async checkForm(request: FastifyRequest): Promise<CheckedForm> {
    assertSameOrigin(request, this.d.config);
    const fields = formFields(request.body);
    const signedIn = await this.current(request);
    const token = fields.csrf ?? "";
    const browser = parseCookies(request.headers.cookie).get(this.anonCookieName);
    const csrfOk =
      (signedIn !== undefined && verifyCsrfToken(this.d.keyRing, `payer:${signedIn.sessionKey}`, token)) ||
      (browser !== undefined &&
        TOKEN_PATTERN.test(browser) &&
        verifyCsrfToken(this.d.keyRing, `browser:${browser}`, token));
    return { fields, signedIn, csrfOk };
  }
}

/** What a known-device cookie's MAC binds: the account and its current password (none without one). */
const knownDeviceBinding = (payer: PayerRecord): string | undefined =>
  payer.passwordHash === null ? undefined : `known-device:${payer.id}:${payer.passwordHash}`;

/** Adds a Set-Cookie, replacing one for the same name set earlier in this response. */
function appendCookie(reply: FastifyReply, cookie: string): void {
  const existing = reply.getHeader("set-cookie");
  const list = existing === undefined ? [] : Array.isArray(existing) ? existing : [String(existing)];
  // Fastify appends to set-cookie rather than replacing it, so start from a clean header.
  reply.removeHeader("set-cookie");
  reply.header("set-cookie", [...list.filter((c) => !sameCookieName(c, cookie)), cookie]);
}

const sameCookieName = (a: string, b: string): boolean => a.split("=", 1)[0] === b.split("=", 1)[0];
