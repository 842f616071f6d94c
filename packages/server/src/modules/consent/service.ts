/**
 * The consent popup's decisions: exchanging a session token and its opener origin for a consent session,
 * which step the popup shows, the cap rule, and the payer's answer. Pure where possible; the clock is
 * always passed in.
 */
import { randomBytes } from "node:crypto";
import type { AppDeps } from "../../deps.js";
import { ApiError } from "../../errors.js";
import { MoneyParseError, parseUsdToNano, usdToNano } from "../../money.js";
import type { ConnectionRecord, ConsentIntent, ConsentSessionRecord } from "../../store/port.js";
import type { FundingStatus } from "../connections/index.js";
import { verifySessionToken } from "../sessions/index.js";
import { displayUsd } from "../web/index.js";
import type { NewConsentSession } from "./session.js";

export const CONSENT_INTENTS: readonly ConsentIntent[] = ["connect", "raise", "reconnect-funding", "grant"];

/** What the popup's script posts to `POST /connect/session` after the opener answered `wattfare:ready`. */
export interface SessionExchange {
  token: string;
  /** `event.origin` of the opener's `wattfare:session` message, as the browser reported it. */
  origin: string;
  intent: ConsentIntent;
  monthlyUsd?: number | undefined;
}

export const UNREGISTERED_ORIGIN =
  "The page that opened this window is not registered for this app, so Wattfare won't answer it.";
export const ALREADY_ANSWERED = "This request was already answered. Start again from the app.";
export const REPLACED =
  "A newer request, opened from another page in this browser, has replaced this window's request.";
/** An Approve form rendered for one payer, posted after another signed in in this browser. */
export const PAYER_SWITCHED =
  "Another Wattfare account signed in in this browser meanwhile, so nothing was sent. Check who pays below, then try again.";

/**
 * Verifies the token strictly (typ `grant` for the grant intent, else `user`), then checks that the
 * opener's origin is registered for the token's own app. Any failure throws (401 or 403) and nothing is
 * stored, so the popup posts nothing back.
 */
export async function verifyExchange(deps: AppDeps, input: SessionExchange): Promise<NewConsentSession> {
  const common = { origin: input.origin, intent: input.intent };
  if (input.intent === "grant") {
    const { claims, app } = await verifySessionToken(deps, `Bearer ${input.token}`, "grant");
    if (!app.origins.includes(input.origin)) throw new ApiError("forbidden", UNREGISTERED_ORIGIN);
    if (await deps.store.consentAnswered(claims.jti)) throw new ApiError("forbidden", ALREADY_ANSWERED);
    return {
      ...common,
      appId: app.id,
      appUserId: null,
      grantTerms: claims.grant,
      requestedCapNano: null,
      sessionJti: claims.jti,
      sessionExpiresAt: claims.exp,
    };
  }
  const { claims, app } = await verifySessionToken(deps, `Bearer ${input.token}`, "user");
  if (!app.origins.includes(input.origin)) throw new ApiError("forbidden", UNREGISTERED_ORIGIN);
  // The page's own request (e.g. the higher cap of a raise) comes first, then the token's `lim`.
  const requestedUsd = input.monthlyUsd ?? claims.lim;
  const maxNano = usdToNano(deps.config.limits.maxMonthlyUsd, "down");
  const requested = requestedUsd === undefined ? null : usdToNano(requestedUsd, "down");
  return {
    ...common,
    appId: app.id,
    appUserId: claims.sub,
    grantTerms: null,
    requestedCapNano: requested !== null && requested > maxNano ? maxNano : requested,
    sessionJti: claims.jti,
    sessionExpiresAt: claims.exp,
  };
}

/** Where an open consent session stands. */
export type ConsentState = "open" | "answered" | "expired";

export function consentState(record: ConsentSessionRecord, now: number): ConsentState {
  if (record.answeredAt !== null) return "answered";
  return now >= record.expiresAt ? "expired" : "open";
}

export type ConsentStep = "sign-in" | "fund" | "approve";

/**
 * The step the popup shows: sign in first; then funding when there is none that works (or the app asked
 * to reconnect it), unless the payer chose to continue — which a reconnect-funding request allows only
 * once the funding is no longer out of credits; then the approval.
 */
export function consentStep(input: {
  signedIn: boolean;
  intent: ConsentIntent;
  funding: FundingStatus;
  /** The payer pressed "Continue" on the funding step (`?step=approve`). */
  continued: boolean;
}): ConsentStep {
  if (!input.signedIn) return "sign-in";
  if (input.funding === "missing" || input.funding === "invalid") return "fund";
  // Reconnecting funding is what this request is for: still out of credits, there is nothing to approve.
  if (input.intent === "reconnect-funding" && input.funding === "insufficient") return "fund";
  if ((input.intent === "reconnect-funding" || input.funding === "insufficient") && !input.continued)
    return "fund";
  return "approve";
}

/**
 * The cap pre-filled in the popup, which is also the line above which the payer must confirm explicitly:
 * what the app asked for, else the payer's current cap, else the configured default. A raise never
 * suggests less than the current cap: the app's token may carry a lower `lim`, and a payer approving
 * what is shown (to resume spending, say) must not lower their cap unawares.
 */
export function suggestedCapNano(
  record: ConsentSessionRecord,
  own: ConnectionRecord | undefined,
  defaultMonthlyUsd: number,
): bigint {
  const suggested = record.requestedCapNano ?? own?.capNano ?? usdToNano(defaultMonthlyUsd, "down");
  return record.intent === "raise" && own !== undefined && own.capNano > suggested ? own.capNano : suggested;
}

export type CapInput = { ok: true; capNano: bigint } | { ok: false; message: string };

/**
 * A cap typed by the payer ("12.50", "$12.50"): exact decimal, rounded down to the nano, above zero
 * (or zero, where `allowZero`) and at most the server maximum.
 */
export function parseCapInput(text: string | undefined, maxMonthlyUsd: number, allowZero = false): CapInput {
  const trimmed = (text ?? "").trim().replace(/^\$\s*/, "");
  if (trimmed === "") return { ok: false, message: "Enter a monthly cap in US dollars." };
  let capNano: bigint;
  try {
    capNano = parseUsdToNano(trimmed, "down");
  } catch (error) {
    if (!(error instanceof MoneyParseError)) throw error;
    return { ok: false, message: "Enter the cap as an amount in US dollars, like 5 or 12.50." };
  }
  if (capNano === 0n && !allowZero) return { ok: false, message: "The cap must be more than $0." };
  if (capNano > usdToNano(maxMonthlyUsd, "down"))
    return {
      ok: false,
      message: `The cap can be at most ${displayUsd(usdToNano(maxMonthlyUsd, "down"), "down")}.`,
    };
  return { ok: true, capNano };
}

export const newConnectionId = (): string => `con_${randomBytes(12).toString("hex")}`;
