/**
 * The pages the consent routes answer with: the consent page at each step (renderConsent) and after a
 * stale form (staleForm), the plain and result pages, and openConsent, which finds the consent request
 * a page answers or sends the page that says why it can no longer be answered.
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import type { AppDeps } from "../../deps.js";
import { nanoToDecimalText, usdToNano } from "../../money.js";
import { periodOf } from "../../period.js";
import { issuedBeforeCompromise } from "../../security/index.js";
import type { AppWithOrigins } from "../../store/port.js";
import { connectionAccount } from "../connections/index.js";
import {
  type Funding,
  fundingSection,
  fundingStatus,
  parseFundingOutcome,
  stillInsufficientMessage,
} from "../funding/index.js";
import { DEFAULT_GRANT_EXPIRY_SECONDS, MAX_GRANT_EXPIRY_SECONDS } from "../grants/index.js";
import { FORM_EXPIRED, type Payers, signInForm } from "../payers/index.js";
import { formFields, html, queryParam, type SafeHtml, sendPage } from "../web/index.js";
import { consentPage, consentRef } from "./paths.js";
import {
  ALREADY_ANSWERED,
  consentState,
  consentStep,
  PAYER_SWITCHED,
  REPLACED,
  suggestedCapNano,
} from "./service.js";
import type { ConsentSessions, CurrentConsent } from "./session.js";
import {
  CLOSE_HINT,
  capForm,
  continueForm,
  denyForm,
  doneForm,
  grantForm,
  pausedNotice,
  type ResultMessage,
  requester,
  resultScript,
} from "./views.js";

export interface OpenConsent {
  consent: CurrentConsent;
  app: AppWithOrigins;
}

/** The consent routes' pages, bound to the app's deps, the payers' sessions, funding and consent sessions. */
export function consentPages(deps: AppDeps, payers: Payers, funding: Funding, consents: ConsentSessions) {
  const { config, store, clock } = deps;
  const { sessions } = payers;

  const plainPage = (reply: FastifyReply, title: string, message: string, status = 400) =>
    sendPage(reply, config, {
      title,
      status,
      body: html`<h1>${title}</h1>
<p class="alert" role="alert">${message}</p>
<p>Close this window and start again from the app.</p>`,
    });

  /** The result page: posts `message` to the verified origin only and closes itself. */
  function sendResult(
    reply: FastifyReply,
    origin: string,
    message: ResultMessage,
    text: SafeHtml,
    status = 200,
  ): FastifyReply {
    const title = { approved: "Approved", denied: "Denied", error: "Something went wrong" }[message.status];
    return sendPage(reply, config, {
      title,
      status,
      body: html`<h1>${title}</h1>
${text}
<p>${CLOSE_HINT}</p>`,
      script: resultScript(message, origin),
    });
  }

  /**
   * This browser's consent session if it can still be answered; otherwise sends the page that says why.
   * Only an expired request is reported to the opener (its origin was verified); for an unknown or
   * answered one there is nothing, or nothing more, to say.
   */
  async function openConsent(
    request: FastifyRequest,
    reply: FastifyReply,
  ): Promise<OpenConsent | { page: FastifyReply }> {
    const consent = await consents.current(request);
    if (!consent) {
      return { page: plainPage(reply, "No request", "No app request is open in this window.") };
    }
    // The request this window shows (its URL, or the form it posts); none named: this browser's one.
    const named = formFields(request.body).c || queryParam(request, "c");
    if (named !== "" && named !== consentRef(consent.key)) {
      return { page: plainPage(reply, "Request replaced", REPLACED, 409) };
    }
    const { record } = consent;
    const state = consentState(record, clock.now());
    if (state === "answered") return { page: plainPage(reply, "Already answered", ALREADY_ANSWERED) };
    const app = await store.getApp(record.appId);
    if (!app?.origins.includes(record.origin)) {
      return {
        page: plainPage(reply, "Request refused", "This app no longer accepts requests from that page."),
      };
    }
    // The exchange refused tokens minted before a compromise rotation; a session opened before one is
    // refused here, at every step, for the same reason.
    if (issuedBeforeCompromise(Math.floor(record.createdAt / 1000), app.compromisedAt)) {
      return {
        page: plainPage(reply, "Request refused", "This app's key was replaced. Start again from the app."),
      };
    }
    if (state === "expired") {
      const message = "This request expired. Start again from the app.";
      return {
        page: sendResult(
          reply,
          record.origin,
          { type: "wattfare:result", status: "error", message },
          html`<p class="alert" role="alert">${message}</p>`,
          400,
        ),
      };
    }
    return { consent, app };
  }

  /**
   * A signed-in form whose CSRF token no longer fits: says whether another account signed in meanwhile
   * (the form's payer tag names someone else) or the form is just old.
   */
  function staleForm(
    request: FastifyRequest,
    reply: FastifyReply,
    opened: OpenConsent,
    payerTag: string | undefined,
    payerId: string,
  ): Promise<FastifyReply> {
    const switched = consents.renderedForOtherPayer(opened.consent, payerTag, payerId);
    return renderConsent(request, reply, opened, {
      status: 403,
      error: switched ? PAYER_SWITCHED : FORM_EXPIRED,
    });
  }

  async function renderConsent(
    request: FastifyRequest,
    reply: FastifyReply,
    { consent, app }: OpenConsent,
    options: { status?: number; error?: string; capText?: string } = {},
  ): Promise<FastifyReply> {
    const { record } = consent;
    const grant = record.intent === "grant";
    const title = grant ? `Approve a grant for ${app.name}` : `Connect ${app.name}`;
    const header = html`<h1>${title}</h1>
${requester(app.name, record.origin)}`;
    const ref = consentRef(consent.key);
    const deny = denyForm(consents.csrf(consent), ref);
    const send = (body: SafeHtml) =>
      sendPage(reply, config, { title, status: options.status ?? 200, body: html`${header}\n${body}` });

    let problem = options.error ? html`<p class="alert" role="alert">${options.error}</p>` : html``;
    const signedIn = await sessions.current(request);
    if (!signedIn) {
      return send(html`${problem}
<p>${app.name} lets you pay for your own AI use in it. Sign in to Wattfare, or
create an account, to continue.</p>
${signInForm({ csrf: sessions.csrfToken(request, reply, undefined), returnTo: consentPage(consent.key) })}
${deny}`);
    }
    const payer = signedIn.payer;
    const continued = queryParam(request, "step") === "approve";
    // Read only: a GET can be any site's navigation. Continue (POST /connect/continue) re-checks first.
    const current = await funding.service.current(payer.id);
    const status = fundingStatus(current);
    const step = consentStep({ signedIn: true, intent: record.intent, funding: status, continued });
    if (continued && step === "fund" && status === "insufficient" && options.error === undefined) {
      problem = html`<p class="alert" role="alert">${stillInsufficientMessage(current)}</p>`;
    }
    const paying = html`<p>Paying as <strong>${payer.email}</strong>.</p>`;

    if (step === "fund") {
      const usable = status === "ok" || status === "insufficient";
      return send(html`${paying}
${problem}
<p>${app.name}'s AI use is paid from your own OpenRouter key.${usable ? "" : " Connect one to continue."}</p>
${fundingSection({
  funding: current,
  csrf: sessions.csrfToken(request, reply, signedIn),
  returnTo: consentPage(consent.key),
  oauthAvailable: funding.service.oauthAvailable,
  outcome: parseFundingOutcome(queryParam(request, "funding")),
})}
${usable ? continueForm(consents.csrf(consent, signedIn.sessionKey), ref, consents.payerTag(consent, payer.id)) : ""}
${deny}`);
    }

    const csrf = consents.csrf(consent, signedIn.sessionKey);
    const payerTag = consents.payerTag(consent, payer.id);
    const paused = payer.paused ? pausedNotice(app.name) : "";
    if (grant) {
      const terms = record.grantTerms ?? { maxUsd: 0 };
      return send(html`${paying}
${problem}
${paused}
${grantForm({
  appName: app.name,
  csrf,
  payerTag,
  ref,
  paused: payer.paused,
  terms: {
    maxNano: usdToNano(Math.min(terms.maxUsd, config.limits.maxMonthlyUsd), "down"),
    maxUses: terms.maxUses,
    expiresInSeconds: Math.min(
      terms.expiresInSeconds ?? DEFAULT_GRANT_EXPIRY_SECONDS,
      MAX_GRANT_EXPIRY_SECONDS,
    ),
  },
})}
${deny}`);
    }

    const account = await store.chatAccount(app.id, record.appUserId ?? "");
    const own = account && account.connection.payerId === payer.id ? account.connection : undefined;
    if (record.intent === "reconnect-funding" && own) {
      return send(html`${paying}
${problem}
${paused}
${doneForm({ appName: app.name, csrf, payerTag, ref, capNano: own.capNano, paused: payer.paused })}
${deny}`);
    }
    const suggested = suggestedCapNano(record, own, config.limits.defaultMonthlyUsd);
    const spent = own
      ? await store.budget({ account: connectionAccount(own.id), period: periodOf(clock.now()) }, own.capNano)
      : undefined;
    return send(html`${paying}
${paused}
${capForm({
  appName: app.name,
  csrf,
  payerTag,
  ref,
  capText: options.capText ?? nanoToDecimalText(suggested),
  suggestedNano: suggested,
  requested: record.requestedCapNano !== null,
  maxMonthlyUsd: config.limits.maxMonthlyUsd,
  otherPayer: account !== undefined && own === undefined,
  own: own && spent ? { capNano: own.capNano, spentNano: spent.settledNano } : undefined,
  error: options.error,
  paused: payer.paused,
})}
<div class="actions">${deny}</div>`);
  }

  return { plainPage, sendResult, openConsent, staleForm, renderConsent };
}
