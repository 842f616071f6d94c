/**
 * The consent popup's pages and its two small scripts (each runs under the page's CSP nonce): the
 * handshake on `/connect` and the result message at the end. Message shapes: DESIGN.md "Core flows" 2.
 */
import { usdToNano } from "../../money.js";
import type { ConnectionStatus } from "../connections/index.js";
import { displayDuration, displayUsd, html, type SafeHtml } from "../web/index.js";

/** The one message the popup sends at the end, to the verified origin only. */
export interface ResultMessage {
  type: "wattfare:result";
  status: "approved" | "denied" | "error";
  connection?: ConnectionStatus;
  grantToken?: string;
  message?: string;
}

/** JSON that is safe inside a `<script>` element (no `</script>`, no JS-only line terminators). */
function scriptJson(value: unknown): string {
  return JSON.stringify(value)
    .replaceAll("<", "\\u003c")
    .replaceAll("\u2028", "\\u2028")
    .replaceAll("\u2029", "\\u2029");
}

/**
 * `/connect`: announces itself to the opener with `wattfare:ready` (targetOrigin "*" — it carries
 * nothing), takes the first `wattfare:session` that comes from the opener window itself, and hands the
 * token with the browser-reported `event.origin` to the server. Nothing is posted back on failure.
 */
export const HANDSHAKE_SCRIPT = `(() => {
  const status = document.getElementById("connect-status");
  // Whatever went wrong (before or after the payer answered), the way on is the same: say it once.
  const fail = (text) => {
    document.querySelector("h1").textContent = "Something went wrong";
    status.textContent = text;
    status.className = "alert";
    status.setAttribute("role", "alert");
    document.getElementById("connect-close").hidden = false;
  };
  const opener = window.opener;
  if (!opener) {
    fail("This window must be opened by an app.");
    return;
  }
  let answered = false;
  const timer = setTimeout(() => {
    if (!answered) fail("The app did not answer.");
  }, 20000);
  window.addEventListener("message", async (event) => {
    if (answered || event.source !== opener) return;
    const data = event.data;
    if (data === null || typeof data !== "object" || data.type !== "wattfare:session") return;
    answered = true;
    clearTimeout(timer);
    const body = {
      token: typeof data.token === "string" ? data.token : "",
      origin: event.origin,
      intent: typeof data.intent === "string" ? data.intent : "connect",
    };
    if (typeof data.monthlyUsd === "number") body.monthlyUsd = data.monthlyUsd;
    try {
      const response = await fetch("/connect/session", {
        method: "POST",
        headers: { "content-type": "application/json" },
        credentials: "same-origin",
        body: JSON.stringify(body),
      });
      const answer = await response.json().catch(() => ({}));
      if (response.ok && typeof answer.next === "string") {
        location.replace(answer.next);
        return;
      }
      fail(answer?.error?.message ?? "Wattfare refused this request.");
    } catch {
      fail("Wattfare could not be reached.");
    }
  });
  opener.postMessage({ type: "wattfare:ready" }, "*");
})();`;

/** Shown once under whatever message the handshake fails with (the messages themselves never say it). */
const HANDSHAKE_CLOSE_HINT = "You can close this window and start again from the app.";

export function connectPage(): SafeHtml {
  return html`<h1>Connecting to Wattfare</h1>
<p id="connect-status" role="status">Waiting for the app…</p>
<p id="connect-close" hidden>${HANDSHAKE_CLOSE_HINT}</p>
<noscript><p class="alert">This window needs JavaScript to talk to the app that opened it.</p></noscript>`;
}

/** Posts `message` to the verified origin only, then closes the popup (the page text covers the rest). */
export function resultScript(message: ResultMessage, origin: string): string {
  return `(() => {
  const opener = window.opener;
  if (!opener || opener.closed) return;
  opener.postMessage(${scriptJson(message)}, ${scriptJson(origin)});
  window.close();
})();`;
}

export const CLOSE_HINT = "This window closes by itself. If it stays open, you can close this window.";

/** Who is asking: the app's name and the verified origin of the page that opened the popup. */
export function requester(appName: string, origin: string): SafeHtml {
  return html`<p class="requester"><strong>${appName}</strong> at <code>${origin}</code></p>`;
}

/**
 * The hidden fields every popup form posts: its CSRF token and the reference of the request it answers
 * (`c`), so a window whose request was replaced by a newer one in this browser cannot answer that one.
 */
function formFieldsFor(csrf: string, ref: string, payerTag?: string): SafeHtml {
  return html`<input type="hidden" name="csrf" value="${csrf}">
<input type="hidden" name="c" value="${ref}">${
    payerTag === undefined ? "" : html`\n<input type="hidden" name="payer" value="${payerTag}">`
  }`;
}

export const CONTINUE_PATH = "/connect/continue";

/** Continue on the funding step: a form, as it may read the key's `/key` again and record what it says. */
export function continueForm(csrf: string, ref: string, payerTag: string): SafeHtml {
  return html`<form method="post" action="${CONTINUE_PATH}">
${formFieldsFor(csrf, ref, payerTag)}
<button type="submit">Continue</button>
</form>`;
}

export function denyForm(csrf: string, ref: string, label = "Deny"): SafeHtml {
  return html`<form method="post" action="/connect/deny" class="inline">
${formFieldsFor(csrf, ref)}
<button type="submit" class="secondary">${label}</button>
</form>`;
}

export interface CapFormView {
  appName: string;
  csrf: string;
  /** Which payer the form was rendered for (ConsentSessions.payerTag): a refusal can say who changed. */
  payerTag: string;
  /** The request's reference, `c` (see consentRef in routes.ts). */
  ref: string;
  /** The value shown in the field. */
  capText: string;
  /** The pre-filled cap: above it the payer must tick the extra confirmation. */
  suggestedNano: bigint;
  /** Whether the app itself asked for the suggested amount. */
  requested: boolean;
  maxMonthlyUsd: number;
  /** Another payer pays for this account now: approving switches payer. */
  otherPayer: boolean;
  /** The payer's own connection, if any. */
  own?: { capNano: bigint; spentNano: bigint } | undefined;
  error?: string | undefined;
  /** The payer paused all spending: the form offers to resume it. */
  paused?: boolean | undefined;
}

export function capForm(view: CapFormView): SafeHtml {
  const suggested = displayUsd(view.suggestedNano, "down");
  const describedBy = view.error ? "consent-cap-hint consent-error" : "consent-cap-hint";
  return html`<section aria-labelledby="approve-heading">
<h2 id="approve-heading">Monthly cap</h2>
${
  view.own
    ? html`<p>You already pay for ${view.appName} here: ${displayUsd(view.own.spentNano)} spent this month of a
${displayUsd(view.own.capNano, "down")} cap.</p>`
    : ""
}
${
  view.otherPayer
    ? html`<p class="alert" role="alert" id="switch-warning">Another Wattfare account pays for this account in
${view.appName} now. Approving switches payer: that account's access ends, and you start a new budget
from zero.</p>`
    : ""
}
${view.error ? html`<p class="alert" role="alert" id="consent-error">${view.error}</p>` : ""}
<form method="post" action="/connect/approve">
${formFieldsFor(view.csrf, view.ref, view.payerTag)}
<label for="consent-cap">Monthly cap in US dollars</label>
<input id="consent-cap" name="monthlyUsd" type="number" inputmode="decimal" step="any" min="0" max="${view.maxMonthlyUsd}" value="${view.capText}" required aria-describedby="${describedBy}">
<p class="hint" id="consent-cap-hint">${
    view.requested
      ? html`${view.appName} asked for ${suggested} a month.`
      : html`Suggested: ${suggested} a month.`
  } You can choose any amount up to ${displayUsd(usdToNano(view.maxMonthlyUsd, "down"), "down")}. ${view.appName} can never spend more than this in a calendar month (UTC), and you can change or revoke it on your account page at any time.</p>
<div class="check">
<input type="checkbox" id="consent-above" name="confirmAbove" value="1">
<label for="consent-above">I allow more than ${suggested} a month</label>
</div>
${
  view.otherPayer
    ? html`<div class="check">
<input type="checkbox" id="consent-switch" name="switchPayer" value="1" required aria-describedby="switch-warning">
<label for="consent-switch">Switch payer: pay for this account from my Wattfare account from now on</label>
</div>`
    : ""
}
${resumeCheck(view.paused)}
<button type="submit">Approve</button>
</form>
</section>`;
}

/** Reconnecting funding for a connection the payer already has: nothing else to decide. */
export function doneForm(view: {
  appName: string;
  csrf: string;
  payerTag: string;
  ref: string;
  capNano: bigint;
  paused?: boolean | undefined;
}): SafeHtml {
  return html`<section aria-labelledby="approve-heading">
<h2 id="approve-heading">All set</h2>
<p>${view.appName} keeps its cap of ${displayUsd(view.capNano, "down")} a month, paid from your funding.</p>
<form method="post" action="/connect/approve" class="inline">
${formFieldsFor(view.csrf, view.ref, view.payerTag)}
${resumeCheck(view.paused)}
<button type="submit">Done</button>
</form>
</section>`;
}

export interface GrantTermsView {
  maxNano: bigint;
  maxUses?: number | undefined;
  expiresInSeconds: number;
}

export function grantForm(view: {
  appName: string;
  csrf: string;
  payerTag: string;
  ref: string;
  terms: GrantTermsView;
  paused?: boolean | undefined;
}): SafeHtml {
  const { terms } = view;
  return html`<section aria-labelledby="approve-heading">
<h2 id="approve-heading">One-time grant</h2>
<p>${view.appName} asks to use AI paid from your Wattfare account, within these limits:</p>
<dl class="terms">
<dt>Up to</dt><dd>${displayUsd(terms.maxNano, "down")} in total</dd>
<dt>Uses</dt><dd>${
    terms.maxUses === undefined ? "Unlimited" : `${terms.maxUses} request${terms.maxUses === 1 ? "" : "s"}`
  }</dd>
<dt>Expires</dt><dd>${displayDuration(terms.expiresInSeconds)} after you approve</dd>
</dl>
<p class="hint">You can revoke it on your account page at any time; it stops at once.</p>
<form method="post" action="/connect/approve" class="inline">
${formFieldsFor(view.csrf, view.ref, view.payerTag)}
${resumeCheck(view.paused)}
<button type="submit">Approve</button>
</form>
</section>`;
}

/**
 * A paused payer can still approve; the app just can't spend until they resume, which the approve forms
 * offer (resumeCheck): the payer is here, and asking to fix a refusal is often why.
 */
export function pausedNotice(appName: string): SafeHtml {
  return html`<p class="notice" role="status" id="paused-notice">Spending is paused on your account: no app,
${appName} included, can use AI until you resume it. Tick "Resume spending" to resume it as you approve,
or resume it later on your account page.</p>`;
}

/** Inside an approve form when the payer is paused (see pausedNotice); unticked: resuming is their call. */
function resumeCheck(paused: boolean | undefined): SafeHtml {
  return paused
    ? html`<div class="check">
<input type="checkbox" id="consent-resume" name="resumeSpending" value="1" aria-describedby="paused-notice">
<label for="consent-resume">Resume spending: let every app and grant on my account use AI again</label>
</div>`
    : html``;
}
