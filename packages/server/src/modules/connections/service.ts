/**
 * ConnectionStatus (DESIGN.md): what `GET /status` and `/connections` answer. Amounts are USD numbers
 * with 6 decimals; usage is settled spend rounded up, remaining = max(0, cap − settled − reserved)
 * rounded down, so the numbers shown never promise more than admission will allow.
 */
import { nanoToUsd } from "../../money.js";
import { periodBounds, periodOf } from "../../period.js";
import type { Store } from "../../store/port.js";

export type FundingStatus = "ok" | "insufficient" | "invalid" | "missing";

export interface ConnectionStatus {
  connected: boolean;
  limits: { monthlyUsd: number };
  usage: { monthlyUsd: number };
  remainingUsd: number;
  period: { start: number; end: number };
  funding: FundingStatus;
  paused: boolean;
}

export const connectionAccount = (connectionId: string): string => `c:${connectionId}`;

export async function connectionStatus(
  store: Store,
  appId: string,
  appUserId: string,
  now: number,
): Promise<ConnectionStatus> {
  const period = periodOf(now);
  const bounds = periodBounds(period);
  const account = await store.chatAccount(appId, appUserId);
  if (!account) {
    return {
      connected: false,
      limits: { monthlyUsd: 0 },
      usage: { monthlyUsd: 0 },
      remainingUsd: 0,
      period: bounds,
      funding: "missing",
      paused: false,
    };
  }
  const cap = account.connection.capNano;
  const budget = await store.budget({ account: connectionAccount(account.connection.id), period }, cap);
  const remaining = cap - budget.settledNano - budget.reservedNano;
  return {
    connected: true,
    limits: { monthlyUsd: nanoToUsd(cap, "down") },
    usage: { monthlyUsd: nanoToUsd(budget.settledNano, "up") },
    remainingUsd: nanoToUsd(remaining > 0n ? remaining : 0n, "down"),
    period: bounds,
    funding: account.funding?.state ?? "missing",
    paused: account.payerPaused,
  };
}
