/**
 * Funding: the payer's OpenRouter key — connected through OAuth PKCE or pasted, checked against
 * upstream `/key` before it is saved, encrypted at rest with its row id as AAD, shown only as a
 * fingerprint. Each connection makes a new row; the previous one is retired (`replaced_at`), so the
 * chat proxy, which reads the payer's current row, sees the new key — and its fresh `ok` state — for
 * every connection of that payer at once.
 */
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import type { Config } from "../../config.js";
import type { Clock } from "../../deps.js";
import {
  encryptFundingKey,
  fundingKeyFingerprint,
  isFundingKeyShaped,
  isLocalOrigin,
  type KeyRing,
  openRouterKeyHash,
} from "../../security/index.js";
import type { PayerFunding, Store } from "../../store/port.js";
import type { FundingStatus } from "../connections/index.js";
import { errorName, readKeyCheck } from "./key-check.js";
import type { FundingKeyReads } from "./key-reads.js";
import { createCodeVerifier, createOAuthState, hashState, s256Challenge } from "./pkce.js";

/** How a funding step ended; carried back to the page as `?funding=<outcome>`. */
export type FundingOutcome =
  | "connected"
  | "removed"
  | "malformed_key"
  | "invalid_key"
  | "management_key"
  | "unverifiable"
  | "oauth_denied"
  | "oauth_failed"
  | "oauth_expired"
  | "oauth_unavailable";

export const FUNDING_OUTCOMES: readonly FundingOutcome[] = [
  "connected",
  "removed",
  "malformed_key",
  "invalid_key",
  "management_key",
  "unverifiable",
  "oauth_denied",
  "oauth_failed",
  "oauth_expired",
  "oauth_unavailable",
];

/** The two upstream calls funding makes; `Upstream` (chat module) provides both. */
export interface FundingUpstream {
  get(path: string, fundingKey?: string): Promise<{ status: number; text: string }>;
  post(path: string, body: unknown): Promise<{ status: number; text: string }>;
}

export interface FundingServiceDeps {
  store: Store;
  keyRing: KeyRing;
  clock: Clock;
  config: Config;
  logger: Logger;
  upstream: FundingUpstream;
  keyReads: FundingKeyReads;
}

/**
 * How old a `/key` reading may be when the payer says they topped up (the popup's Continue and Done):
 * short, so a top-up shows at once, but a payer (or a script with their cookies) repeating the action
 * makes one upstream call per key every few seconds, not one each.
 */
export const PAYER_RECHECK_MS = 5_000;

/** A pending attempt lives this long: OpenRouter's code itself is valid for 10 minutes. */
export const OAUTH_ATTEMPT_TTL_MS = 30 * 60_000;
export const OAUTH_CALLBACK_PATH = "/funding/oauth/callback";

/** The state shown for a payer's current funding row, or `missing` without one. */
export function fundingStatus(funding: PayerFunding | undefined): FundingStatus {
  return funding?.state ?? "missing";
}

/**
 * OAuth funding needs a callback OpenRouter accepts: https, or http on localhost / 127.0.0.1
 * (openrouter-api.md §1; DESIGN.md "Security").
 */
export function oauthAvailableFor(publicUrl: string): boolean {
  return new URL(publicUrl).protocol === "https:" || isLocalOrigin(publicUrl);
}

export class FundingService {
  constructor(private readonly d: FundingServiceDeps) {}

  get oauthAvailable(): boolean {
    return oauthAvailableFor(this.d.config.publicUrl);
  }

  /** The payer's current funding row, if any. */
  async current(payerId: string): Promise<PayerFunding | undefined> {
    const [newest] = await this.d.store.fundingHistory(payerId, 1);
    return newest?.replacedAt === null ? newest : undefined;
  }

  /** The most recently retired row when there is no current one (for "delete it at OpenRouter"). */
  async lastRemoved(payerId: string): Promise<PayerFunding | undefined> {
    const [newest] = await this.d.store.fundingHistory(payerId, 1);
    return newest !== undefined && newest.replacedAt !== null ? newest : undefined;
  }

  /**
   * Checks `key` with upstream `/key` and, when it is a usable non-management key, makes it the payer's
   * funding. The key never appears in a log line or an outcome.
   */
  async connectKey(payerId: string, keyInput: string, source: "oauth" | "pasted"): Promise<FundingOutcome> {
    const key = keyInput.trim();
    if (!isFundingKeyShaped(key)) return "malformed_key";
    let check: ReturnType<typeof readKeyCheck>;
    try {
      const res = await this.d.upstream.get("/key", key);
      check = readKeyCheck(res.status, res.text);
    } catch (error) {
      this.d.logger.warn({ reason: errorName(error) }, "funding key check failed");
      return "unverifiable";
    }
    if (check.kind === "invalid") return "invalid_key";
    if (check.kind === "unknown") {
      this.d.logger.warn({ status: check.status }, "funding key check answered unexpectedly");
      return "unverifiable";
    }
    if (check.management) return "management_key";
    const now = this.d.clock.now();
    const id = `fnd_${randomBytes(12).toString("hex")}`;
    const fingerprint = fundingKeyFingerprint(key);
    await this.d.store.replacePayerFunding(
      payerId,
      {
        id,
        keyBlob: encryptFundingKey(this.d.keyRing, key, id),
        fingerprint,
        openRouterKeyHash: openRouterKeyHash(key),
        source,
        state: check.state,
        limitRemainingNano: check.limitRemainingNano,
        checkedAt: now,
      },
      now,
    );
    this.d.logger.info({ payerId, fundingId: id, fingerprint, source }, "funding connected");
    return "connected";
  }

  /**
   * Starts an OAuth PKCE attempt bound to this web session and returns OpenRouter's authorize URL. The
   * verifier never leaves the server; `state` ties the callback to this attempt.
   */
  async beginOAuth(
    payerId: string,
    sessionHash: Buffer,
    returnTo: string,
  ): Promise<{ ok: true; url: string } | { ok: false; outcome: "oauth_unavailable" }> {
    if (!this.oauthAvailable) return { ok: false, outcome: "oauth_unavailable" };
    const verifier = createCodeVerifier();
    const state = createOAuthState();
    const now = this.d.clock.now();
    await this.d.store.createOAuthAttempt({
      stateHash: hashState(state),
      sessionHash,
      payerId,
      // Stored as is: the verifier is useless without the one-time code, which never touches storage.
      codeVerifier: verifier,
      returnTo,
      createdAt: now,
      expiresAt: now + OAUTH_ATTEMPT_TTL_MS,
    });
    const url = new URL(this.d.config.openRouterAuthUrl);
    url.searchParams.set("callback_url", `${this.d.config.publicUrl}${OAUTH_CALLBACK_PATH}`);
    url.searchParams.set("code_challenge", s256Challenge(verifier));
    url.searchParams.set("code_challenge_method", "S256");
    url.searchParams.set("state", state);
    return { ok: true, url: url.toString() };
  }

  /**
   * Completes the attempt this session started: the one `state` names, or — OpenRouter omits `state`
   * when the user denies access — the session's newest, which can then only end as denied or failed.
   * A code without a state is refused before any attempt is touched: it may be someone else's (a link
   * that would put the sender's key on this payer's account); so is a callback with neither a state nor
   * an error. An attempt named by its state is used up whatever happens, so a replayed callback finds
   * nothing; a state-less denial only reads the newest (any site can send one: the payer's real callback
   * must still find its attempt). The code is exchanged server-side with the verifier, then the
   * new key goes through the same checks as a pasted one.
   */
  async completeOAuth(
    payerId: string,
    sessionHash: Buffer,
    params: { code: string; state: string; error: string },
    fallbackReturnTo: string,
  ): Promise<{ outcome: FundingOutcome; returnTo: string }> {
    // Without a state only a denial is taken (OpenRouter sends it so): a code, or nothing at all (any
    // site can send the browser to this URL), is refused before any attempt is touched.
    if (params.state === "" && (params.code !== "" || params.error === ""))
      return { outcome: "oauth_failed", returnTo: fallbackReturnTo };
    const now = this.d.clock.now();
    const attempt = await this.d.store.takeOAuthAttempt(
      sessionHash,
      params.state === "" ? null : hashState(params.state),
      now,
    );
    if (!attempt || attempt.payerId !== payerId)
      return { outcome: "oauth_expired", returnTo: fallbackReturnTo };
    const done = (outcome: FundingOutcome) => ({ outcome, returnTo: attempt.returnTo });
    // Only access_denied is the payer cancelling; any other error (server_error, …) is a failure.
    if (params.error !== "") return done(params.error === "access_denied" ? "oauth_denied" : "oauth_failed");
    if (params.code === "") return done("oauth_failed");
    let exchanged: { status: number; text: string };
    try {
      exchanged = await this.d.upstream.post("/auth/keys", {
        code: params.code,
        code_verifier: attempt.codeVerifier,
        code_challenge_method: "S256",
      });
    } catch (error) {
      this.d.logger.warn({ reason: errorName(error) }, "OAuth code exchange failed");
      return done("unverifiable");
    }
    if (exchanged.status !== 200) {
      this.d.logger.warn({ status: exchanged.status }, "OpenRouter refused the OAuth code exchange");
      return done("oauth_failed");
    }
    const key = parseExchangedKey(exchanged.text);
    if (key === undefined) {
      this.d.logger.warn("OAuth code exchange answered without a key");
      return done("oauth_failed");
    }
    return done(await this.connectKey(payerId, key, "oauth"));
  }

  /**
   * The payer's current funding, read again from upstream `/key` first when it is `insufficient`: they
   * say they topped up (the popup's Continue and Done), so this asks now instead of leaving it to the
   * chat proxy's re-check, which waits up to 30 s — but through the same reads (FundingKeyReads), so at
   * most once per PAYER_RECHECK_MS per key, and concurrent presses share one call. Account credits are
   * invisible to `/key`, so a key without a limit of its own reads `ok` (a later refusal for lack of
   * credits marks it again). A failed read changes nothing.
   */
  async recheckInsufficient(payerId: string): Promise<PayerFunding | undefined> {
    const funding = await this.current(payerId);
    if (funding?.state !== "insufficient") return funding;
    return this.d.keyReads.read(funding, PAYER_RECHECK_MS);
  }

  /** Retires the payer's funding: every connection of theirs stops being admitted until they reconnect. */
  async remove(payerId: string): Promise<void> {
    await this.d.store.replacePayerFunding(payerId, null, this.d.clock.now());
    this.d.logger.info({ payerId }, "funding removed");
  }
}

function parseExchangedKey(text: string): string | undefined {
  try {
    const key = (JSON.parse(text) as { key?: unknown }).key;
    return typeof key === "string" && key !== "" ? key : undefined;
  } catch {
    return undefined;
  }
}
