/**
 * Popup consent sessions: what the popup exchanges a verified session token and opener origin for, so
 * sign-up, OpenRouter's OAuth page and its callback can navigate freely (DESIGN.md "Core flows" 2).
 * A random token in an httpOnly, SameSite=Lax cookie (Secure, `__Host-` named, when the public URL is
 * https), valid 30 minutes, stored only as its SHA-256 — like payer sessions.
 */
import { createHash, randomBytes } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Config } from "../../config.js";
import type { Clock } from "../../deps.js";
import {
  createCsrfToken,
  csrfTokenOfThisServer,
  type KeyRing,
  verifyCsrfToken,
} from "../../security/index.js";
import type { ConsentSessionRecord, Store } from "../../store/port.js";
import { parseCookies, serializeCookie } from "../web/index.js";

export const CONSENT_TTL_MS = 30 * 60_000;
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/** What a consent session is made of; the rest (id, times, answer) is filled in here. */
export type NewConsentSession = Omit<
  ConsentSessionRecord,
  "idHash" | "createdAt" | "expiresAt" | "answeredAt" | "outcome"
>;

/** The consent session of this browser, and the key its CSRF tokens are bound to. */
export interface CurrentConsent {
  record: ConsentSessionRecord;
  /** Hex of the cookie hash. */
  key: string;
}

export interface ConsentSessionsDeps {
  store: Store;
  clock: Clock;
  keyRing: KeyRing;
  config: Config;
}

const hash = (token: string): Buffer => createHash("sha256").update(token, "utf8").digest();

export class ConsentSessions {
  readonly cookieName: string;
  private readonly secure: boolean;

  constructor(private readonly d: ConsentSessionsDeps) {
    this.secure = new URL(d.config.publicUrl).protocol === "https:";
    this.cookieName = this.secure ? "__Host-wf_consent" : "wf_consent";
  }

  /** Stores a new consent session and sets its cookie (replacing this browser's previous one). */
  async start(reply: FastifyReply, input: NewConsentSession): Promise<ConsentSessionRecord> {
    const token = randomBytes(32).toString("base64url");
    const now = this.d.clock.now();
    const record: ConsentSessionRecord = {
      ...input,
      idHash: hash(token),
      createdAt: now,
      expiresAt: now + CONSENT_TTL_MS,
      answeredAt: null,
      outcome: null,
    };
    await this.d.store.createConsentSession(record);
    reply.header(
      "set-cookie",
      serializeCookie(this.cookieName, token, { secure: this.secure, maxAgeSeconds: CONSENT_TTL_MS / 1000 }),
    );
    return record;
  }

  /** This browser's consent session, whatever its state (answered and expired ones included). */
  async current(request: FastifyRequest): Promise<CurrentConsent | undefined> {
    const token = parseCookies(request.headers.cookie).get(this.cookieName);
    if (token === undefined || !TOKEN_PATTERN.test(token)) return undefined;
    const idHash = hash(token);
    const record = await this.d.store.consentSession(idHash);
    return record ? { record, key: idHash.toString("hex") } : undefined;
  }

  clearCookie(reply: FastifyReply): void {
    reply.header(
      "set-cookie",
      serializeCookie(this.cookieName, "", { secure: this.secure, maxAgeSeconds: 0 }),
    );
  }

  /**
   * CSRF token for the popup's own forms: bound to the consent session and, for Approve, to the payer's
   * web session too — so a form rendered for one request (or one payer) can't answer another.
   */
  csrf(consent: CurrentConsent, payerSessionKey?: string): string {
    return createCsrfToken(this.d.keyRing, binding(consent, payerSessionKey));
  }

  csrfOk(consent: CurrentConsent, token: string | undefined, payerSessionKey?: string): boolean {
    return verifyCsrfToken(this.d.keyRing, binding(consent, payerSessionKey), token ?? "");
  }

  /**
   * Names the payer an Approve form was rendered for without showing their id: when the form's CSRF
   * token no longer fits, the refusal can tell "another account signed in meanwhile" from an old form.
   */
  payerTag(consent: CurrentConsent, payerId: string): string {
    return createCsrfToken(this.d.keyRing, `consent:${consent.key}:payer-id:${payerId}`);
  }

  /**
   * True when the form carries a payer tag made by this server, and it names another payer than
   * `payerId` (a tag that is garbage, or older than the last two secret rotations, proves nothing).
   */
  renderedForOtherPayer(consent: CurrentConsent, tag: string | undefined, payerId: string): boolean {
    return (
      tag !== undefined &&
      csrfTokenOfThisServer(this.d.keyRing, tag) &&
      !verifyCsrfToken(this.d.keyRing, `consent:${consent.key}:payer-id:${payerId}`, tag)
    );
  }
}

const binding = (consent: CurrentConsent, payerSessionKey: string | undefined): string =>
  payerSessionKey === undefined
    ? `consent:${consent.key}`
    : `consent:${consent.key}:payer:${payerSessionKey}`;
