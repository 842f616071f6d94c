/**
 * The funding block: state, fingerprint, connect (OAuth or paste), reconnect, remove. A fragment with
 * its own `returnTo`, so the /account page and the consent popup render the very same controls.
 */

import type { PayerFunding } from "../../store/port.js";
import type { FundingStatus } from "../connections/index.js";
import { openRouterKeyUrl } from "../payers/index.js";
import { displayUsd, html, type SafeHtml } from "../web/index.js";
import { FUNDING_OUTCOMES, type FundingOutcome, fundingStatus } from "./service.js";

const OUTCOME_MESSAGES: Record<FundingOutcome, { tone: "notice" | "alert"; text: string }> = {
  connected: { tone: "notice", text: "Your OpenRouter key is connected." },
  removed: {
    tone: "notice",
    text: "Funding removed: apps you approved can't spend until you connect a key again.",
  },
  malformed_key: { tone: "alert", text: "That doesn't look like an OpenRouter API key. Nothing was saved." },
  invalid_key: {
    tone: "alert",
    text: "OpenRouter did not accept that key. Check it and try again. Nothing was saved.",
  },
  management_key: {
    tone: "alert",
    text: "That is a management key, which can't pay for AI use. Create an ordinary API key at OpenRouter and use that instead. Nothing was saved.",
  },
  unverifiable: {
    tone: "alert",
    text: "We couldn't reach OpenRouter to check the key. Please try again in a moment. Nothing was saved.",
  },
  oauth_denied: { tone: "alert", text: "You cancelled at OpenRouter. Nothing was changed." },
  oauth_failed: {
    tone: "alert",
    text: "OpenRouter refused the authorization. Please start again. Nothing was saved.",
  },
  oauth_expired: {
    tone: "alert",
    text: "That authorization expired or was already used. Please start again. Nothing was saved.",
  },
  oauth_unavailable: {
    tone: "alert",
    text: "Connecting through OpenRouter needs this Wattfare server to use https. Paste a key instead.",
  },
};

const STATE_TEXT: Record<FundingStatus, { label: string; explanation: string }> = {
  ok: { label: "OK", explanation: "Apps you approve can use AI, paid from this key." },
  insufficient: {
    label: "Out of credits",
    explanation:
      "The key is out of credits or over its own limit. Top up at OpenRouter (this clears by itself) or connect another key.",
  },
  invalid: {
    label: "Rejected",
    explanation: "OpenRouter rejected this key. Reconnect to keep your apps working.",
  },
  missing: {
    label: "Not connected",
    explanation: "Connect an OpenRouter key so the apps you approve can use AI.",
  },
};

/**
 * What the popup says when the payer pressed Continue or Done but OpenRouter still reports the key
 * out of credits: with the figure when the key's own limit is what ran out.
 */
export function stillInsufficientMessage(funding: PayerFunding | undefined): string {
  const limit = funding?.limitRemainingNano;
  return limit === null || limit === undefined
    ? "OpenRouter could not confirm that your key has credits again. Wait a moment, then press Continue again, or connect another key."
    : `Your OpenRouter key is still out of credits: ${displayUsd(limit, "down")} left of its own limit. Raise its limit or add credits at OpenRouter, then press Continue again, or connect another key.`;
}

/** The outcome named by a `?funding=` query value, if it is one. */
export function parseFundingOutcome(value: string): FundingOutcome | undefined {
  return (FUNDING_OUTCOMES as readonly string[]).includes(value) ? (value as FundingOutcome) : undefined;
}

/** The message for an outcome, as a status or alert paragraph. */
export function fundingMessage(outcome: FundingOutcome, removedKey?: PayerFunding): SafeHtml {
  const { tone, text } = OUTCOME_MESSAGES[outcome];
  const deleteLink =
    outcome === "removed" && removedKey?.openRouterKeyHash
      ? html` The key itself still exists at OpenRouter: <a href="${openRouterKeyUrl(removedKey.openRouterKeyHash)}" rel="noreferrer">delete key ${removedKey.fingerprint} at OpenRouter</a> if you no longer need it.`
      : "";
  return html`<p class="${tone}" role="${tone === "alert" ? "alert" : "status"}">${text}${deleteLink}</p>`;
}

export interface FundingView {
  funding: PayerFunding | undefined;
  csrf: string;
  returnTo: string;
  oauthAvailable: boolean;
  outcome?: FundingOutcome | undefined;
  /** For the `removed` outcome: the key just retired. */
  removedKey?: PayerFunding | undefined;
  /** Heading level: 2 on /account; the popup may nest it differently. */
  headingLevel?: 2 | 3;
}

const SOURCE_TEXT: Record<PayerFunding["source"], string> = {
  oauth: "through OpenRouter",
  pasted: "by pasting it",
  dev: "by a developer command",
};

/** The whole funding block (a labelled region). */
export function fundingSection(view: FundingView): SafeHtml {
  const status = fundingStatus(view.funding);
  const state = STATE_TEXT[status];
  const funding = view.funding;
  const hidden = html`<input type="hidden" name="csrf" value="${view.csrf}">
<input type="hidden" name="returnTo" value="${view.returnTo}">`;
  const heading =
    view.headingLevel === 3
      ? html`<h3 id="funding-heading">Funding</h3>`
      : html`<h2 id="funding-heading">Funding</h2>`;
  return html`<section aria-labelledby="funding-heading">
${heading}
${view.outcome ? fundingMessage(view.outcome, view.removedKey) : ""}
<p>Status: <strong class="state state-${status}">${state.label}</strong></p>
<p>${state.explanation}</p>
${
  funding
    ? html`<p>Key <code>${funding.fingerprint}</code>, connected ${SOURCE_TEXT[funding.source]} on
${new Date(funding.createdAt).toISOString().slice(0, 10)}.${
        funding.openRouterKeyHash
          ? html` <a href="${openRouterKeyUrl(funding.openRouterKeyHash)}" target="_blank" rel="noopener noreferrer">Manage this key at OpenRouter</a>`
          : ""
      }</p>`
    : ""
}
${
  view.oauthAvailable
    ? html`<form method="post" action="/funding/oauth/start">
${hidden}
<button type="submit">${funding ? "Reconnect with OpenRouter" : "Connect with OpenRouter"}</button>
</form>`
    : ""
}
<form method="post" action="/funding/key">
${hidden}
<label for="funding-key">${view.oauthAvailable ? "Or paste an OpenRouter API key" : "OpenRouter API key"}</label>
<input id="funding-key" name="key" type="password" autocomplete="off" spellcheck="false" required aria-describedby="funding-key-hint">
<p class="hint" id="funding-key-hint">It starts with sk-or-v1-. We check it with OpenRouter, keep it encrypted and only ever show its last four characters.</p>
<button type="submit" class="secondary">${funding ? "Replace with this key" : "Save key"}</button>
</form>
${
  funding
    ? html`<form method="post" action="/funding/remove">
${hidden}
<button type="submit" class="secondary">Remove funding</button>
</form>`
    : ""
}
</section>`;
}
