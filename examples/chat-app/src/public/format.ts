/** Text the server and the page both render, so the first view and later updates read the same. */
import type { ConnectionStatus } from "@wattfare/sdk/browser";

/** Dollars with cents, and the sub-cent digits Wattfare reports when there are any ($0.999988). */
const usd = (amount: number): string => `$${amount.toFixed(6).replace(/0{1,4}$/, "")}`;

/** What the budget line adds when the payer's funding is not usable. */
const FUNDING_NOTE: Record<ConnectionStatus["funding"], string> = {
  ok: "",
  insufficient: " Your OpenRouter funding is out of credits.",
  invalid: " Your OpenRouter funding needs reconnecting.",
  missing: " Your OpenRouter funding needs reconnecting.",
};

/** One line about the user's budget. */
export function budgetLine(status: ConnectionStatus | undefined): string {
  if (status === undefined) return "Checking your AI budget…";
  if (!status.connected) return "Not connected: connect your AI budget to start chatting.";
  const paused = status.paused ? " Spending is paused on your Wattfare account." : "";
  return `${usd(status.remainingUsd)} left of ${usd(status.limits.monthlyUsd)} this month.${paused}${FUNDING_NOTE[status.funding]}`;
}

/** A grant's state, as the example's backend reports it from `wattfare.grants.current()`. */
export interface GrantView {
  status: "active" | "exhausted" | "expired" | "revoked";
  remainingUsd: number;
  usesLeft: number | null;
  expiresAt: number;
}

/** One line about a grant. */
export function grantLine(grant: GrantView): string {
  if (grant.status !== "active") return `This grant is ${grant.status}: request a new one to keep chatting.`;
  const uses =
    grant.usesLeft === null ? "" : `, ${grant.usesLeft} message${grant.usesLeft === 1 ? "" : "s"} left`;
  const until = new Date(grant.expiresAt * 1000).toLocaleTimeString([], {
    hour: "2-digit",
    minute: "2-digit",
  });
  return `${usd(grant.remainingUsd)} left${uses}; valid until ${until}.`;
}
