/**
 * What `recover()` can fix: the recoverable error codes with the popup intent that fixes each, how an
 * error relayed by the app's backend is read as one, the cap suggested for `budget_exceeded`, and what
 * is still wrong after the payer approved.
 */
import { errorFields } from "../core/errors.js";
import type { ConnectionStatus } from "../core/types.js";
import type { ConsentIntent } from "./consent-popup.js";

/**
 * The error codes `recover()` can fix, with the popup intent that fixes each.
 *
 * @example
 * ```ts
 * RECOVERABLE_CODES.budget_exceeded; // "raise"
 * ```
 */
export const RECOVERABLE_CODES = {
  not_connected: "connect",
  budget_exceeded: "raise",
  funding_invalid: "reconnect-funding",
  grant_invalid: "grant",
} as const satisfies Record<string, ConsentIntent>;

/**
 * An error code `recover()` can fix.
 *
 * @example
 * ```ts
 * const code: RecoverableCode = "not_connected";
 * ```
 */
export type RecoverableCode = keyof typeof RECOVERABLE_CODES;

/**
 * What `recover()` resolves with: the user's new connection status, or for `grant_invalid` a new
 * grant token to hand to your backend.
 *
 * @example
 * ```ts
 * const fixed: Recovery = await wattfare.recover(error);
 * if (fixed.code === "grant_invalid") saveGrant(fixed.grantToken);
 * else showBudget(fixed.status.remainingUsd);
 * ```
 */
export type Recovery =
  | { code: "not_connected" | "budget_exceeded" | "funding_invalid"; status: ConnectionStatus }
  | { code: "grant_invalid"; grantToken: string };

/**
 * The cap recover() suggests for budget_exceeded: twice the current one — unless spending is paused
 * while the cap still has room, when the cap is not the problem (the popup offers to resume spending) and
 * the current cap is suggested as it is.
 */
export function suggestRaise(before: ConnectionStatus | undefined): number | undefined {
  if (!before?.connected) return undefined;
  if (before.paused && before.remainingUsd > 0) return before.limits.monthlyUsd;
  return Math.max(1, Math.ceil(before.limits.monthlyUsd * 2));
}

/** What still causes the error `code` in Wattfare's status after an approval, in the user's terms. */
export function stillBroken(code: RecoverableCode, status: ConnectionStatus): string | undefined {
  if (code === "budget_exceeded" && status.paused) {
    return "Spending is still paused on your Wattfare account. Resume it to continue.";
  }
  if (code === "budget_exceeded" && status.remainingUsd <= 0) {
    return "Nothing is left of your monthly AI budget. Raise the cap to continue.";
  }
  if (code === "funding_invalid" && status.funding !== "ok") {
    return status.funding === "insufficient"
      ? "Your OpenRouter funding is still out of credits. Top it up to continue."
      : "Your OpenRouter funding still needs to be reconnected.";
  }
  return undefined;
}

/** The code of an error relayed by the app's backend, when `recover()` can fix it. */
export function recoverableCode(error: unknown): RecoverableCode | undefined {
  let code: unknown;
  if (typeof error === "string") code = error;
  else if (typeof error === "object" && error !== null) {
    code = (error as { code?: unknown }).code ?? errorFields(error).code;
  }
  return typeof code === "string" && Object.hasOwn(RECOVERABLE_CODES, code)
    ? (code as RecoverableCode)
    : undefined;
}
