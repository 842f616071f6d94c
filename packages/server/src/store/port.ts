/**
 * The Store port: everything Wattfare persists. Adapters (sqlite/ now, postgres/ with the scale-out
 * work) implement it and all pass the one contract suite (contract.ts).
 *
 * Money is bigint nano-USD; times are unix milliseconds unless a name says otherwise.
 */
import type { Period } from "../period.js";

export interface AppRecord {
  id: string;
  name: string;
  createdAt: number;
  /** Per-app RL_SESSIONS override (requests/minute); null = the default 120. */
  sessionsPerMinute: number | null;
  /** Per-app RL_CHAT override (requests/minute per user or grant); null = the default 30. */
  chatPerMinute: number | null;
  /** Set by `apps rotate-key --compromised`: session tokens issued at or before it (unix s) are refused. */
  compromisedAt: number | null;
}

export interface AppKeyRecord {
  id: number;
  appId: string;
  keyHash: Buffer;
  createdAt: number;
  /** null while the key is current; set by rotation (grace period end, or now when compromised). */
  expiresAt: number | null;
}

export interface AppWithOrigins extends AppRecord {
  origins: string[];
}

export type FundingState = "ok" | "insufficient" | "invalid";

/**
 * An `unreconciled` charge (settled at its reservation for want of the cost) is asked about again for
 * this long (DESIGN.md: 7 days); a retired funding key some such charge still needs is kept that long.
 */
export const UNRECONCILED_RECHECK_WINDOW_MS = 7 * 86_400_000;

export interface FundingRecord {
  id: string;
  payerId: string;
  /** Encrypted blob (security/funding-crypto.ts); decrypt with the funding row id as AAD. */
  keyBlob: string;
  fingerprint: string;
  source: "oauth" | "pasted" | "dev";
  state: FundingState;
  /** The key's own limit headroom from upstream `/key`; null = unlimited or unknown. */
  limitRemainingNano: bigint | null;
  /** When `/key` was last consulted (ms), or null. */
  checkedAt: number | null;
  createdAt: number;
}

export interface ConnectionRecord {
  id: string;
  appId: string;
  appUserId: string;
  payerId: string;
  capNano: bigint;
  createdAt: number;
  revokedAt: number | null;
}

/** What chat admission needs about a user, read in one query. */
export interface ChatAccount {
  connection: ConnectionRecord;
  payerPaused: boolean;
  /** The payer's current funding, or null when they have none. */
  funding: FundingRecord | null;
}

/** A budget account: a connection in a month, or a grant (lifetime; period "-"). */
export interface AccountRef {
  account: string;
  period: Period;
}

export interface BudgetSnapshot {
  capNano: bigint;
  settledNano: bigint;
  reservedNano: bigint;
}

export interface ReservationDraft extends AccountRef {
  /** The request id (server-generated); also the ledger idempotency key. */
  id: string;
  appId: string;
  fundingId: string;
  model: string;
  stream: boolean;
  createdAt: number;
  /** Past this time (ms) an unreconcilable reservation is settled at its amount, flagged unreconciled. */
  deadlineAt: number;
}

export interface ReservationRecord extends ReservationDraft {
  amountNano: bigint;
  generationId: string | null;
  owner: string;
  leaseUntil: number;
}

/**
 * Decides how much to reserve given the headroom (cap − settled − reserved, never negative), or null to
 * refuse. `fundingSpentNano` is what the draft's funding key has taken through Wattfare since its limit
 * was last read (setFundingState): its open reservations plus what it settled since, to take off that
 * cached limit. Pure and synchronous: PostgreSQL runs it inside the admission transaction.
 */
export type ReservationDecider = (headroomNano: bigint, fundingSpentNano: bigint) => bigint | null;

export type AdmitResult =
  | { admitted: true; amountNano: bigint; reservation: ReservationRecord }
  | { admitted: false; headroomNano: bigint; usedUp?: true };

/** A grant's use count, taken atomically with its reservation; a proven release gives the use back. */
export interface GrantUse {
  grantId: string;
  maxUses: number | null;
}

export interface GrantRecord {
  id: string;
  appId: string;
  payerId: string;
  maxNano: bigint;
  maxUses: number | null;
  uses: number;
  /** Unix ms. */
  expiresAt: number;
  createdAt: number;
  revokedAt: number | null;
}

export interface GrantAccount {
  grant: GrantRecord;
  payerPaused: boolean;
  funding: FundingRecord | null;
}

export interface NewGrant {
  id: string;
  appId: string;
  tokenHash: Buffer;
  payerId: string;
  maxNano: bigint;
  maxUses: number | null;
  expiresAt: number;
  createdAt: number;
}

export interface Settlement {
  costNano: bigint;
  generationId: string | null;
  promptTokens: number | null;
  completionTokens: number | null;
  /** True when the cost could not be confirmed upstream and the reservation amount was charged. */
  unreconciled: boolean;
  at: number;
}

export interface LedgerEntry extends AccountRef {
  requestId: string;
  kind: "settle" | "adjust";
  appId: string;
  /** The funding whose key paid (the hourly re-check asks `/generation` with it). */
  fundingId: string;
  amountNano: bigint;
  generationId: string | null;
  model: string;
  promptTokens: number | null;
  completionTokens: number | null;
  unreconciled: boolean;
  createdAt: number;
}

export interface NewApp {
  id: string;
  name: string;
  keyHash: Buffer;
  origins: string[];
  createdAt: number;
}

export interface DevConnectInput {
  appId: string;
  appUserId: string;
  capNano: bigint;
  payerEmail: string;
  funding: { id: string; keyBlob: string; fingerprint: string; source: FundingRecord["source"] };
  now: number;
}

export interface Store {
  readonly kind: "sqlite";
  /** Runs pending migrations; returns the names applied. */
  migrate(): Promise<string[]>;
  /** Cheap reachability probe for /readyz. */
  ping(): Promise<void>;
  close(): Promise<void>;

  // ── apps ────────────────────────────────────────────────────────────
  createApp(app: NewApp): Promise<void>;
  getApp(appId: string): Promise<AppWithOrigins | undefined>;
  listApps(): Promise<AppWithOrigins[]>;
  /** Keys usable at `now`: current ones and those still inside a rotation grace period. */
  activeAppKeys(appId: string, now: number): Promise<readonly AppKeyRecord[]>;
  /** Adds a new current key and schedules every other live key to expire at `oldExpiresAt`. */
  rotateAppKey(
    appId: string,
    newKeyHash: Buffer,
    now: number,
    oldExpiresAt: number,
    compromised: boolean,
  ): Promise<void>;
  addOrigin(appId: string, origin: string, now: number): Promise<boolean>;
  removeOrigin(appId: string, origin: string): Promise<boolean>;
  setAppLimits(
    appId: string,
    limits: { sessionsPerMinute?: number | null; chatPerMinute?: number | null },
  ): Promise<void>;

  // ── payers, funding, connections ───────────────────────────────────
  /** Dev-only shortcut (`wattfare dev connect`): payer + funding + connection in one transaction. */
  devConnect(input: DevConnectInput): Promise<ConnectionRecord>;
  chatAccount(appId: string, appUserId: string): Promise<ChatAccount | undefined>;
  /** Revokes the user's live connection; false when there was none. Reservations in flight still settle. */
  revokeConnection(appId: string, appUserId: string, now: number): Promise<boolean>;
  /** Lowers a cap (`… SET cap = :new WHERE cap > :new`); false when it was not higher. Never raises. */
  lowerCap(connectionId: string, capNano: bigint, now: number): Promise<boolean>;
  /** True when any app registered this origin (CORS preflights carry no token to tell which app). */
  isRegisteredOrigin(origin: string): Promise<boolean>;
  /**
   * Records the key's state checked at `now`. `limitRemainingNano` is the limit just read from `/key`
   * (null: unlimited); what the key spent through Wattfare is then counted again from its open
   * reservations. Undefined keeps the stored limit and that count (the limit was not read).
   */
  setFundingState(
    fundingId: string,
    state: FundingState,
    limitRemainingNano: bigint | null | undefined,
    now: number,
  ): Promise<void>;
  getFunding(fundingId: string): Promise<FundingRecord | undefined>;
  /** Every funding row's encrypted key (erased ones left out), for re-encryption after a secret rotation. */
  fundingKeyBlobs(): Promise<{ id: string; keyBlob: string }[]>;
  /** Replaces a row's encrypted key if it is still `from`; false when it changed meanwhile. */
  replaceFundingKeyBlob(fundingId: string, from: string, to: string): Promise<boolean>;

  // ── budgets, reservations, ledger (the hot path) ────────────────────
  budget(ref: AccountRef, capNano: bigint): Promise<BudgetSnapshot>;
  /**
   * Atomically: headroom = max(0, cap − settled − reserved); amount = decide(headroom); when not null
   * and ≤ headroom, record the reservation. Resolves only once the reservation is durable, so a request
   * is forwarded upstream only after a crash could no longer lose it (DESIGN.md "The hot path").
   */
  admit(
    draft: ReservationDraft,
    capNano: bigint,
    decide: ReservationDecider,
    owner: string,
    leaseUntil: number,
    grantUse?: GrantUse,
  ): Promise<AdmitResult>;
  /** Durable before the first response byte goes to the client. */
  recordGenerationId(reservationId: string, generationId: string): Promise<void>;
  /**
   * Closes the reservation with its real cost. Idempotent by reservation id: resolves to whether this
   * call closed it (false when it was already closed). Rejects only when the closing write failed after
   * the reservation was closed; the store retries that write until it commits.
   */
  settle(reservation: ReservationRecord, settlement: Settlement): Promise<boolean>;
  /** Closes the reservation with no charge (proven non-billing); a grant gets its use back. Idempotent. */
  release(reservation: ReservationRecord): Promise<void>;
  /** Extends the lease of this owner's open reservations. */
  heartbeat(owner: string, leaseUntil: number): Promise<void>;
  /** Claims open reservations whose lease expired (or every other owner's, when `takeOverAll`). */
  claimExpired(
    owner: string,
    now: number,
    leaseUntil: number,
    takeOverAll: boolean,
    limit: number,
  ): Promise<ReservationRecord[]>;
  openReservations(): Promise<ReservationRecord[]>;
  ledger(filter?: { account?: string }): Promise<LedgerEntry[]>;

  // ── one-time grants ────────────────────────────────────────────────
  createGrant(grant: NewGrant): Promise<void>;
  /** The grant behind a token hash with its payer's state; `uses` counts admissions not yet refunded. */
  grantByTokenHash(tokenHash: Buffer): Promise<GrantAccount | undefined>;
  grantsOfPayer(payerId: string): Promise<GrantRecord[]>;
  revokeGrant(grantId: string, payerId: string, now: number): Promise<boolean>;
  /** Keeps an approved grant token (encrypted) for the opener whose popup was lost; taken once. */
  putGrantHandoff(sessionJti: string, appId: string, tokenBlob: string, expiresAt: number): Promise<void>;
  takeGrantHandoff(sessionJti: string, appId: string, now: number): Promise<string | undefined>;
  /**
   * Settlements charged at their reservation (`unreconciled`) that carry a generation id, were made at or
   * after `since`, and have no adjustment yet: the hourly re-check asks /generation about them again.
   * Ordered by request id; `afterRequestId` pages on.
   */
  unreconciledSince(since: number, limit: number, afterRequestId?: string): Promise<LedgerEntry[]>;
  /** Records the difference between the real cost and what was charged (idempotent per request). */
  adjust(entry: LedgerEntry, realCostNano: bigint, at: number): Promise<void>;

  // ── payer accounts and funding (issue 5; types at the end of this file) ──
  /** Inserts a payer; false when the email (case-insensitive) is already taken. */
  createPayer(payer: NewPayer): Promise<boolean>;
  /** A live (not deleted) payer by email, compared case-insensitively. */
  payerByEmail(email: string): Promise<PayerRecord | undefined>;
  getPayer(payerId: string): Promise<PayerRecord | undefined>;
  /** Sets the password and, in the same transaction, ends every session and unused reset link. */
  setPayerPassword(payerId: string, passwordHash: string, now: number): Promise<void>;
  markPayerEmailVerified(payerId: string, now: number): Promise<void>;
  /**
   * Deletes the account in one transaction: revokes every connection and grant, retires the funding,
   * ends every session and drops tokens and OAuth attempts; the payer row stays (the ledger points at
   * it) with its email and password removed.
   */
  deletePayer(payerId: string, now: number): Promise<void>;
  /**
   * Gives an address an unconfirmed account uses to a new, confirmed account, in one transaction — only
   * while `unconfirmedPayerId` is still live, unconfirmed and at `payer.email`; false (nothing changed)
   * otherwise. The old account is closed like a deleted one (connections and grants revoked, funding
   * retired, sessions, tokens and OAuth attempts dropped; its email becomes `unclaimed:<id>`): nothing
   * of it passes to the new one.
   */
  claimPayerEmail(unconfirmedPayerId: string, payer: NewPayer, now: number): Promise<boolean>;
  createPayerSession(session: PayerSessionRecord): Promise<void>;
  /** The live session with this id hash and its (live) payer, or undefined when unknown or expired. */
  payerSession(
    idHash: Buffer,
    now: number,
  ): Promise<{ session: PayerSessionRecord; payer: PayerRecord } | undefined>;
  deletePayerSession(idHash: Buffer): Promise<void>;
  createEmailToken(token: NewEmailToken): Promise<void>;
  /** An unused, unexpired token, left unused (to show a link's page before it is acted on). */
  peekEmailToken(
    tokenHash: Buffer,
    purpose: EmailTokenPurpose,
    now: number,
  ): Promise<{ payerId: string; email: string } | undefined>;
  /** Marks an unused, unexpired token used and returns it; undefined otherwise (single use). */
  consumeEmailToken(
    tokenHash: Buffer,
    purpose: EmailTokenPurpose,
    now: number,
  ): Promise<{ payerId: string; email: string } | undefined>;
  createOAuthAttempt(attempt: OAuthAttempt): Promise<void>;
  /**
   * Removes and returns the session's pending OAuth attempt whose state hash matches. When the callback
   * carried no state (a denial — which any site can forge), returns the session's newest without
   * removing it: the real callback can still complete it. Expired attempts and other sessions' are never
   * returned.
   */
  takeOAuthAttempt(
    sessionHash: Buffer,
    stateHash: Buffer | null,
    now: number,
  ): Promise<OAuthAttempt | undefined>;
  /**
   * Stores a message and drops those older than OUTBOX_KEEP_MS before it: the outbox is a development
   * sink, and its messages carry sign-in links that have long expired by then.
   */
  addOutboxMessage(message: Omit<OutboxMessage, "id">): Promise<void>;
  /** Outbox messages, oldest first, optionally only those to one address. */
  outboxMessages(to?: string): Promise<OutboxMessage[]>;
  /** The payer's funding rows, newest first (the current one, if any, has replacedAt null). */
  fundingHistory(payerId: string, limit: number): Promise<PayerFunding[]>;
  /**
   * Retires the payer's current funding and, when given, makes `next` current — in one transaction, so
   * chat admission always reads exactly one current row. Retired rows keep their key blob while an open
   * reservation still needs it (reconciliation), and, when the key is replaced (not removed), while an
   * unreconciled charge it paid may still be corrected through /generation; the others' are erased.
   */
  replacePayerFunding(payerId: string, next: NewFunding | null, now: number): Promise<void>;
  /**
   * Erases the key blob of every retired funding row nothing needs any more: no open reservation, and no
   * unadjusted `unreconciled` charge younger than UNRECONCILED_RECHECK_WINDOW_MS. Returns how many.
   */
  eraseRetiredFundingKeys(now: number): Promise<number>;

  // ── consent popup and payer dashboard (issue 6; types at the end of this file) ──
  /** Stores a popup consent session, replacing an unanswered one made from the same session token. */
  createConsentSession(session: ConsentSessionRecord): Promise<void>;
  /** The consent session behind a cookie hash, answered or expired ones included (the caller judges). */
  consentSession(idHash: Buffer): Promise<ConsentSessionRecord | undefined>;
  /** True when a consent session made from this session token (jti) was already answered. */
  consentAnswered(sessionJti: string): Promise<boolean>;
  /** Records the payer's answer once; false when it was already answered or has expired. */
  answerConsentSession(idHash: Buffer, outcome: ConsentOutcome, now: number): Promise<boolean>;
  /**
   * The payer's approval, in one transaction: the payer's own live connection gets the cap; another
   * payer's is revoked and replaced by a new row only when `switchPayer` is set (usage belongs to the
   * connection, so the new payer starts at zero); no connection → a new row.
   */
  approveConnection(input: ApproveConnectionInput): Promise<ApproveConnectionResult>;
  /** The payer's live connections with their app's name, oldest first. */
  payerConnections(payerId: string): Promise<PayerConnection[]>;
  /** Sets the cap of the payer's own live connection (raises included: the payer is present). */
  setConnectionCap(connectionId: string, payerId: string, capNano: bigint, now: number): Promise<boolean>;
  /** Revokes the payer's own live connection; false when it is not theirs or not live. */
  revokePayerConnection(connectionId: string, payerId: string, now: number): Promise<boolean>;
  setPayerPaused(payerId: string, paused: boolean): Promise<void>;
  /** Settled spend per month over all the payer's connections and grants, from `fromPeriod` on. */
  payerMonthlySpend(payerId: string, fromPeriod: Period): Promise<MonthlySpend[]>;
  /** The payer's most recent settled requests, newest first, adjustments folded in. */
  payerRecentRequests(payerId: string, limit: number): Promise<PayerRequest[]>;
}

// ── payer accounts and funding (issue 5) ────────────────────────────

export interface PayerRecord {
  id: string;
  email: string;
  /** argon2id PHC string; null only for payers created by `wattfare dev connect`. */
  passwordHash: string | null;
  emailVerifiedAt: number | null;
  paused: boolean;
  createdAt: number;
}

export interface NewPayer {
  id: string;
  email: string;
  passwordHash: string;
  createdAt: number;
}

export interface PayerSessionRecord {
  /** SHA-256 of the cookie token; the token itself is never stored. */
  idHash: Buffer;
  payerId: string;
  createdAt: number;
  expiresAt: number;
}

/** `claim`: takes an address back from an unconfirmed account (PayerService.claimEmail). */
export type EmailTokenPurpose = "verify" | "reset" | "claim";

export interface NewEmailToken {
  /** SHA-256 of the token mailed in the link. */
  tokenHash: Buffer;
  payerId: string;
  purpose: EmailTokenPurpose;
  /** The address the link was sent to: verifying proves this address, not a later one. */
  email: string;
  createdAt: number;
  expiresAt: number;
}

export interface OAuthAttempt {
  stateHash: Buffer;
  /** The web session that started the attempt; only it may complete it. */
  sessionHash: Buffer;
  payerId: string;
  codeVerifier: string;
  /** Same-origin path to return to after the callback. */
  returnTo: string;
  createdAt: number;
  expiresAt: number;
}

/** How long the development mail outbox keeps a message: longer than any link in it lives (48 h). */
export const OUTBOX_KEEP_MS = 7 * 24 * 3_600_000;

export interface OutboxMessage {
  id: number;
  to: string;
  subject: string;
  text: string;
  createdAt: number;
}

export interface PayerFunding extends FundingRecord {
  /** sha256 hex of the key: addresses its page at OpenRouter. Null for rows made before issue 5. */
  openRouterKeyHash: string | null;
  replacedAt: number | null;
}

export interface NewFunding {
  id: string;
  keyBlob: string;
  fingerprint: string;
  openRouterKeyHash: string;
  source: "oauth" | "pasted";
  state: FundingState;
  limitRemainingNano: bigint | null;
  checkedAt: number;
}

// ── consent popup and payer dashboard (issue 6) ─────────────────────

export type ConsentIntent = "connect" | "raise" | "reconnect-funding" | "grant";
export type ConsentOutcome = "approved" | "denied";

/**
 * A popup consent session: what a verified session token and its verified opener origin were exchanged
 * for. The cookie holds a random token; only its SHA-256 is stored.
 */
export interface ConsentSessionRecord {
  idHash: Buffer;
  appId: string;
  intent: ConsentIntent;
  /** The app's user being connected; null for a grant. */
  appUserId: string | null;
  /** The terms the grant session token carried; null unless the intent is "grant". */
  grantTerms: { maxUsd: number; maxUses?: number; expiresInSeconds?: number } | null;
  /** The opener's origin, registered for the app: the only target of the result message. */
  origin: string;
  /** The monthly cap the app asked for; null when it asked for none. */
  requestedCapNano: bigint | null;
  sessionJti: string;
  /** The session token's `exp`, unix seconds. */
  sessionExpiresAt: number;
  createdAt: number;
  expiresAt: number;
  answeredAt: number | null;
  outcome: ConsentOutcome | null;
}

export interface ApproveConnectionInput {
  appId: string;
  appUserId: string;
  payerId: string;
  /** null keeps the cap of the payer's existing connection (there must be one). */
  capNano: bigint | null;
  /** The payer confirmed replacing another payer's connection. */
  switchPayer: boolean;
  /** The id a new row gets, if one is made. */
  newConnectionId: string;
  now: number;
}

export type ApproveConnectionResult =
  | { ok: true; connection: ConnectionRecord; created: boolean }
  | { ok: false; reason: "other_payer" | "not_connected" };

export interface PayerConnection extends ConnectionRecord {
  appName: string;
}

export interface MonthlySpend {
  period: Period;
  settledNano: bigint;
  requests: number;
}

export interface PayerRequest {
  requestId: string;
  appId: string;
  appName: string;
  /** true when it was paid through a one-time grant. */
  viaGrant: boolean;
  model: string;
  promptTokens: number | null;
  completionTokens: number | null;
  amountNano: bigint;
  createdAt: number;
}
