/**
 * The dashboard blocks of /account: spending switch, connected apps (spend against cap, change cap,
 * revoke), six months of spending (an inline SVG chart plus the same figures as a table) with the latest
 * requests, and grants. No script: every control is a labelled form control in a plain form.
 */
import { maxNano, nanoToDecimalText, nanoToUsd, usdToNano } from "../../money.js";
import type { Period } from "../../period.js";
import type { PayerRequest } from "../../store/port.js";
import { displayTime, displayUsd, html, type SafeHtml } from "../web/index.js";
import type { ConnectedApp, GrantRow, MonthTotal } from "./service.js";

/** A status line for the outcome of a dashboard form, carried back as `?dashboard=<notice>`. */
export const DASHBOARD_NOTICES = {
  cap_saved: { tone: "notice", text: "The cap is saved. It applies from the next request." },
  cap_invalid: {
    tone: "alert",
    text: "That cap was not saved: enter an amount in US dollars within the limit.",
  },
  revoked: { tone: "notice", text: "Access revoked. The app can no longer spend from your account." },
  paused: { tone: "notice", text: "All spending is paused. No app can use AI paid by you until you resume." },
  resumed: { tone: "notice", text: "Spending resumed. Your apps can use AI again within their caps." },
  grant_revoked: { tone: "notice", text: "Grant revoked. It can no longer be used." },
  not_found: { tone: "alert", text: "That app or grant is no longer active on your account." },
} as const satisfies Record<string, { tone: "notice" | "alert"; text: string }>;

export type DashboardNotice = keyof typeof DASHBOARD_NOTICES;

export function parseDashboardNotice(value: string): DashboardNotice | undefined {
  return Object.hasOwn(DASHBOARD_NOTICES, value) ? (value as DashboardNotice) : undefined;
}

function noticeOf(notice: DashboardNotice | undefined, shown: readonly DashboardNotice[]): SafeHtml | "" {
  if (notice === undefined || !shown.includes(notice)) return "";
  const { tone, text } = DASHBOARD_NOTICES[notice];
  return html`<p class="${tone}" role="${tone === "alert" ? "alert" : "status"}">${text}</p>`;
}

const hiddenCsrf = (csrf: string) => html`<input type="hidden" name="csrf" value="${csrf}">`;

export function spendingSection(view: { paused: boolean; csrf: string; notice?: DashboardNotice }): SafeHtml {
  return html`<section aria-labelledby="spending-heading">
<h2 id="spending-heading">Spending</h2>
${noticeOf(view.notice, ["paused", "resumed"])}
<p>${
    view.paused
      ? html`<strong class="state state-invalid">Paused</strong> No app can use AI paid by you.`
      : html`<strong class="state state-ok">Active</strong> Apps you approved can spend within their caps.`
  }</p>
<form method="post" action="/account/spending">
${hiddenCsrf(view.csrf)}
<input type="hidden" name="paused" value="${view.paused ? "0" : "1"}">
<button type="submit" role="switch" aria-checked="${view.paused ? "true" : "false"}" aria-label="Pause all spending" class="${view.paused ? "" : "secondary"}">Pause all spending: ${
    view.paused ? "on" : "off"
  }</button>
</form>
</section>`;
}

export function connectionsSection(view: {
  apps: readonly ConnectedApp[];
  csrf: string;
  maxMonthlyUsd: number;
  notice?: DashboardNotice;
}): SafeHtml {
  return html`<section aria-labelledby="apps-heading">
<h2 id="apps-heading">Connected apps</h2>
${noticeOf(view.notice, ["cap_saved", "cap_invalid", "revoked", "not_found"])}
${
  view.apps.length === 0
    ? html`<p>No app can spend from your account yet. Apps ask through a Wattfare window when you first use AI in them.</p>`
    : view.apps.map((app) => connectedApp(app, view.csrf, view.maxMonthlyUsd))
}
</section>`;
}

function connectedApp(
  { connection, settledNano }: ConnectedApp,
  csrf: string,
  maxMonthlyUsd: number,
): SafeHtml {
  const id = connection.id;
  const cap = connection.capNano;
  const percent = cap > 0n ? Number((settledNano * 100n) / cap) : 100;
  return html`<article aria-labelledby="app-${id}">
<h3 id="app-${id}">${connection.appName}</h3>
<p class="hint">Account <code>${connection.appUserId}</code> in ${connection.appName}, connected ${displayTime(connection.createdAt).slice(0, 10)}.</p>
<label for="spend-${id}" id="spend-label-${id}">This month: ${displayUsd(settledNano)} of ${displayUsd(cap, "down")} (${Math.min(percent, 100)}%)</label>
<progress id="spend-${id}" max="${cap > 0n ? nanoToUsd(cap, "down") : 1}" value="${
    cap > 0n ? Math.min(nanoToUsd(settledNano, "up"), nanoToUsd(cap, "down")) : 1
  }">${Math.min(percent, 100)}%</progress>
<form method="post" action="/account/connections/cap">
${hiddenCsrf(csrf)}
<input type="hidden" name="connection" value="${id}">
<label for="cap-${id}">Monthly cap for ${connection.appName} in US dollars</label>
<input id="cap-${id}" name="monthlyUsd" type="number" inputmode="decimal" step="any" min="0" max="${maxMonthlyUsd}" value="${nanoToDecimalText(cap)}" required>
<button type="submit">Save cap</button>
</form>
<form method="post" action="/account/connections/revoke">
${hiddenCsrf(csrf)}
<input type="hidden" name="connection" value="${id}">
<button type="submit" class="danger">Revoke ${connection.appName}</button>
</form>
</article>`;
}

const MONTH_NAMES = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

function monthName(period: Period, withYear = true): string {
  const [year, month] = period.split("-");
  const name = MONTH_NAMES[Number(month) - 1] ?? period;
  return withYear ? `${name} ${year}` : name;
}

/** Bars scaled to the busiest month; every bar also says its amount, and the table repeats them all. */
function usageChart(months: readonly MonthTotal[]): SafeHtml {
  const top = maxNano(0n, ...months.map((m) => m.settledNano));
  const width = 360;
  const slot = width / Math.max(1, months.length);
  const base = 130;
  const tallest = 100;
  const summary = months.map((m) => `${monthName(m.period)}: ${displayUsd(m.settledNano)}`).join("; ");
  const bars = months.map((m, i) => {
    const height = top === 0n ? 0 : Number((m.settledNano * BigInt(tallest)) / top);
    const x = Math.round(i * slot + slot * 0.2);
    const barWidth = Math.round(slot * 0.6);
    const centre = Math.round(i * slot + slot / 2);
    return html`<rect class="bar" x="${x}" y="${base - height}" width="${barWidth}" height="${height}"></rect>
<text x="${centre}" y="${base - height - 6}" text-anchor="middle">${displayUsd(m.settledNano)}</text>
<text x="${centre}" y="${base + 18}" text-anchor="middle">${monthName(m.period, false)}</text>`;
  });
  return html`<svg class="chart" viewBox="0 0 ${width} 160" role="img" aria-label="Spending by month. ${summary}">
<line x1="0" y1="${base}" x2="${width}" y2="${base}" class="axis"></line>
${bars}
</svg>`;
}

function tokens(request: PayerRequest): string {
  const part = (n: number | null) => (n === null ? "?" : n.toLocaleString("en-US"));
  return `${part(request.promptTokens)} in, ${part(request.completionTokens)} out`;
}

export function usageSection(view: {
  months: readonly MonthTotal[];
  recent: readonly PayerRequest[];
}): SafeHtml {
  return html`<section aria-labelledby="usage-heading">
<h2 id="usage-heading">Usage</h2>
${usageChart(view.months)}
<div class="table-wrap">
<table>
<caption>Spending by month</caption>
<thead><tr><th scope="col">Month</th><th scope="col">Spent</th><th scope="col">Requests</th></tr></thead>
<tbody>${view.months.map(
    (m) =>
      html`<tr><th scope="row">${monthName(m.period)}</th><td>${displayUsd(m.settledNano)}</td><td>${m.requests}</td></tr>`,
  )}</tbody>
</table>
</div>
<div class="table-wrap">
<table>
<caption>Recent requests</caption>
<thead><tr><th scope="col">Time</th><th scope="col">App</th><th scope="col">Model</th><th scope="col">Tokens</th><th scope="col">Cost</th></tr></thead>
<tbody>${
    view.recent.length === 0
      ? html`<tr><td colspan="5">No requests yet.</td></tr>`
      : view.recent.map(
          (r) =>
            html`<tr><td>${displayTime(r.createdAt)}</td><td>${r.appName}${r.viaGrant ? " (grant)" : ""}</td><td><code>${r.model}</code></td><td>${tokens(r)}</td><td>${displayUsd(r.amountNano)}</td></tr>`,
        )
  }</tbody>
</table>
</div>
</section>`;
}

const GRANT_STATES: Record<GrantRow["status"]["status"], { label: string; className: string }> = {
  active: { label: "Active", className: "state-ok" },
  exhausted: { label: "Used up", className: "state-insufficient" },
  expired: { label: "Expired", className: "state-missing" },
  revoked: { label: "Revoked", className: "state-invalid" },
};

export function grantsSection(view: {
  grants: readonly GrantRow[];
  csrf: string;
  notice?: DashboardNotice;
}): SafeHtml {
  return html`<section aria-labelledby="grants-heading">
<h2 id="grants-heading">One-time grants</h2>
${noticeOf(view.notice, ["grant_revoked", "not_found"])}
${
  view.grants.length === 0
    ? html`<p>You have not approved any one-time grant.</p>`
    : view.grants.map((row) => grantItem(row, view.csrf))
}
</section>`;
}

function grantItem({ grant, appName, status }: GrantRow, csrf: string): SafeHtml {
  const state = GRANT_STATES[status.status];
  const live = status.status === "active" || status.status === "exhausted";
  return html`<article aria-labelledby="grant-${grant.id}">
<h3 id="grant-${grant.id}">${appName} grant of ${displayTime(grant.createdAt)}</h3>
<p><strong class="state ${state.className}">${state.label}</strong></p>
<dl class="terms">
<dt>Up to</dt><dd>${displayUsd(grant.maxNano, "down")} in total</dd>
<dt>Left</dt><dd>${displayUsd(usdToNano(status.remainingUsd, "down"), "down")}</dd>
<dt>Uses left</dt><dd>${status.usesLeft === null ? "Unlimited" : `${status.usesLeft} of ${grant.maxUses}`}</dd>
<dt>${status.status === "expired" ? "Expired" : "Expires"}</dt><dd>${displayTime(grant.expiresAt)}</dd>
</dl>
${
  live
    ? html`<form method="post" action="/account/grants/revoke">
${hiddenCsrf(csrf)}
<input type="hidden" name="grant" value="${grant.id}">
<button type="submit" class="danger">Revoke this grant</button>
</form>`
    : ""
}
</article>`;
}
