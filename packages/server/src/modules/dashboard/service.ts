/**
 * What the payer dashboard shows, read in one place: each live connection with this month's spend,
 * six months of spending, the latest requests and the payer's grants. Month arithmetic is pure.
 */
import type { AppDeps } from "../../deps.js";
import { type Period, periodOf } from "../../period.js";
import type { GrantRecord, PayerConnection, PayerRequest } from "../../store/port.js";
import { connectionAccount } from "../connections/index.js";
import { type GrantStatus, grantStatus } from "../grants/index.js";

export const CHART_MONTHS = 6;
export const RECENT_REQUESTS = 20;
/** Ended grants listed (the newest); every grant still live is listed too. */
export const LISTED_GRANTS = 20;

export interface ConnectedApp {
  connection: PayerConnection;
  /** Settled spend this month (what is still in flight shows once it settles). */
  settledNano: bigint;
}

export interface MonthTotal {
  period: Period;
  settledNano: bigint;
  requests: number;
}

export interface GrantRow {
  grant: GrantRecord;
  appName: string;
  status: GrantStatus;
}

export interface Dashboard {
  connections: ConnectedApp[];
  /** Oldest first, exactly CHART_MONTHS entries ending with the current month. */
  months: MonthTotal[];
  recent: PayerRequest[];
  grants: GrantRow[];
}

/**
 * The `count` calendar months (UTC) ending with the one containing `now`, oldest first.
 *
 * @example lastMonths(Date.UTC(2026, 1, 10), 3) // ["2025-12", "2026-01", "2026-02"]
 */
export function lastMonths(now: number, count: number): Period[] {
  const date = new Date(now);
  const year = date.getUTCFullYear();
  const month = date.getUTCMonth();
  return Array.from({ length: count }, (_, i) => periodOf(Date.UTC(year, month - (count - 1 - i), 1)));
}

export async function loadDashboard(deps: AppDeps, payerId: string, now: number): Promise<Dashboard> {
  const { store } = deps;
  const period = periodOf(now);
  const connections = await Promise.all(
    (await store.payerConnections(payerId)).map(async (connection) => {
      const budget = await store.budget(
        { account: connectionAccount(connection.id), period },
        connection.capNano,
      );
      return { connection, settledNano: budget.settledNano };
    }),
  );
  const periods = lastMonths(now, CHART_MONTHS);
  const spend = new Map(
    (await store.payerMonthlySpend(payerId, periods[0] ?? period)).map((m) => [m.period, m]),
  );
  const months = periods.map((p) => spend.get(p) ?? { period: p, settledNano: 0n, requests: 0 });
  const appNames = new Map<string, string>();
  // Every grant that can still spend is listed, however many came after it: it is the payer's only way
  // to revoke it. Of those that ended (revoked, expired), the newest LISTED_GRANTS.
  let ended = 0;
  const listed = (await store.grantsOfPayer(payerId)).filter(
    (grant) => (grant.revokedAt === null && now < grant.expiresAt) || ended++ < LISTED_GRANTS,
  );
  const grants = await Promise.all(
    listed.map(async (grant) => {
      let appName = appNames.get(grant.appId);
      if (appName === undefined) {
        appName = (await store.getApp(grant.appId))?.name ?? grant.appId;
        appNames.set(grant.appId, appName);
      }
      return { grant, appName, status: await grantStatus(deps, grant, now) };
    }),
  );
  return {
    connections,
    months,
    recent: await store.payerRecentRequests(payerId, RECENT_REQUESTS),
    grants,
  };
}
