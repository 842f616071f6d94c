/**
 * Budget periods are calendar months in UTC ("2026-11"). A reservation stores its period, so a
 * request that crosses midnight on the last day settles into the month it was admitted in.
 */
export type Period = string;

/** The last month asked about, as [from, to) in ms: every request asks, and it is nearly always this one. */
let lastPeriod = { period: "", fromMs: 0, toMs: 0 };

export function periodOf(ms: number): Period {
  if (ms >= lastPeriod.fromMs && ms < lastPeriod.toMs) return lastPeriod.period;
  const d = new Date(ms);
  const year = d.getUTCFullYear();
  const month = d.getUTCMonth();
  const period = `${year}-${String(month + 1).padStart(2, "0")}`;
  lastPeriod = { period, fromMs: Date.UTC(year, month, 1), toMs: Date.UTC(year, month + 1, 1) };
  return period;
}

/** Unix seconds; `end` is exclusive (the first second of the next month). */
export function periodBounds(period: Period): { start: number; end: number } {
  const match = /^(\d{4})-(\d{2})$/.exec(period);
  if (!match) throw new Error(`not a period: ${period}`);
  const year = Number(match[1]);
  const month = Number(match[2]) - 1;
  return { start: Date.UTC(year, month, 1) / 1000, end: Date.UTC(year, month + 1, 1) / 1000 };
}
