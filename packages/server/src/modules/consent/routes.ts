/**
 * The consent popup (DESIGN.md "Core flows" 2 and 5):
 *
 * - `GET /connect` — the handshake page the SDK opens inside the click (no token in the URL);
 * - `POST /connect/session` — JSON, same-origin only: token + opener origin → popup consent session;
 * - `GET /connect/consent` — the steps: sign in or up → fund → approve (cap, or a grant's terms);
 * - `POST /connect/continue` — Continue on the funding step: re-checks an out-of-credits key, then
 *   redirects to the approve step;
 * - `POST /connect/approve`, `POST /connect/deny` — the answer, then the result page that posts
 *   `wattfare:result` to the verified origin only and closes.
 *
 * The answer forms need the consent-session cookie, a CSRF token bound to it (and, for Approve, to the
 * payer's session) and a same-origin `Origin` / `Sec-Fetch-Site`.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import type { AppDeps } from "../../deps.js";
import { ApiError } from "../../errors.js";
import { clientNetwork } from "../../http/client-network.js";
import { parseOr400 } from "../../http/validation.js";
import { nanoToDecimalText, usdToNano } from "../../money.js";
import { periodOf } from "../../period.js";
import { issuedBeforeCompromise } from "../../security/index.js";
import type { AppWithOrigins } from "../../store/port.js";
import { connectionAccount, connectionStatus } from "../connections/index.js";
import {
  type Funding,
  fundingSection,
  fundingStatus,
  parseFundingOutcome,
  stillInsufficientMessage,
} from "../funding/index.js";
import { approveGrant, DEFAULT_GRANT_EXPIRY_SECONDS, MAX_GRANT_EXPIRY_SECONDS } from "../grants/index.js";
import { FORM_EXPIRED, type Payers, signInForm } from "../payers/index.js";
import {
  assertSameOrigin,
  displayUsd,
  formFields,
  html,
  queryParam,
  type SafeHtml,
  securityHeaders,
  sendPage,
} from "../web/index.js";
import {
  ALREADY_ANSWERED,
  CONSENT_INTENTS,
  consentState,
  consentStep,
  newConnectionId,
  PAYER_SWITCHED,
  parseCapInput,
  REPLACED,
  suggestedCapNano,
  verifyExchange,
} from "./service.js";
import type { ConsentSessions, CurrentConsent } from "./session.js";
import {
  CLOSE_HINT,
  CONTINUE_PATH,
  capForm,
  connectPage,
  continueForm,
  denyForm,
  doneForm,
  grantForm,
  HANDSHAKE_SCRIPT,
  pausedNotice,
  type ResultMessage,
  requester,
  resultScript,
} from "./views.js";

export const CONNECT_PATH = "/connect";
export const CONSENT_PATH = "/connect/consent";

/**
 * A consent request's reference in the popup's URLs and forms (`c`): the first 16 hex digits of its
 * session's id hash. A browser holds one consent session; when another app's popup replaces it, the
 * older window still names its own request and is told so, instead of showing (and answering) the newer
 * one. Not a secret: the session itself is the cookie.
 */
const consentRef = (sessionKey: string): string => sessionKey.slice(0, 16);

/** The consent page of the request with this session key (hex id hash), plus `query` ("&step=approve"). */
const consentPage = (sessionKey: string, query = ""): string =>
  `${CONSENT_PATH}?c=${consentRef(sessionKey)}${query}`;
const SESSION_EXCHANGE_PATH = "/connect/session";
/** Popup exchanges per client address: far above a person opening consent popups, far below a flood. */
const EXCHANGES_PER_MINUTE = { limit: 60, windowMs: 60_000 };

/** The handshake page adds, once, that the payer can close the window and start again. */
const NOT_VERIFIED = "This request could not be verified: its session token is invalid or has expired.";

/** `POST /connect/session`: JSON in, JSON out (the popup's script reads the error message). */
export function registerSessionExchange(
  app: FastifyInstance,
  deps: AppDeps,
  consents: ConsentSessions,
): void {
  const body = z.strictObject({
    token: z.string({ error: "is required" }).min(1, "is required").max(4096),
    origin: z.string({ error: "is required" }).min(1, "is required").max(2048),
    intent: z.enum(CONSENT_INTENTS as [string, ...string[]], {
      error: `must be one of ${CONSENT_INTENTS.join(", ")}`,
    }),
    // No maximum here: verifyExchange lowers a larger one to it, as the popup cannot ask the page for
    // another number (an SDK's recover() suggests twice the cap), and the payer decides anyway.
    monthlyUsd: z.number({ error: "must be a number" }).positive("must be positive").optional(),
  });

  app.post(SESSION_EXCHANGE_PATH, async (request, reply) => {
    reply.headers(securityHeaders(deps.config));
    assertSameOrigin(request, deps.config);
    // Each exchange verifies a token and writes a row: bounded per client address like sign-in.
    const decision = await deps.rateLimits.hit(
      `rl:consent-exchange:${clientNetwork(request.ip)}`,
      EXCHANGES_PER_MINUTE,
      deps.clock.now(),
    );
    if (!decision.allowed) {
      throw new ApiError("rate_limited", "Too many consent requests from this address; wait a minute.", {
        headers: { "retry-after": String(decision.retryAfterSeconds) },
      });
    }
    const input = parseOr400(body, request.body);
    const session = await verifyExchange(deps, {
      ...input,
      intent: input.intent as (typeof CONSENT_INTENTS)[number],
    }).catch((error: unknown) => {
      // The payer reads this in the popup: say what to do, not which JWT check failed.
      throw error instanceof ApiError && error.code === "auth" ? new ApiError("auth", NOT_VERIFIED) : error;
    });
    const started = await consents.start(reply, session);
    request.log.info({ appId: session.appId, intent: session.intent }, "consent session started");
    return { next: consentPage(started.idHash.toString("hex")) };
  });
}

interface OpenConsent {
  consent: CurrentConsent;
  app: AppWithOrigins;
}

export function registerConsentPages(
  scope: FastifyInstance,
  deps: AppDeps,
  payers: Payers,
  funding: Funding,
  consents: ConsentSessions,
): void {
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

  /**
   * After an approval by a paused payer: resumes spending when they ticked "Resume spending" (the
   * dashboard's switch, `POST /account/spending`, does the same); says which it is now.
   */
  async function resumeIfAsked(
    request: FastifyRequest,
    payer: { id: string; paused: boolean },
    fields: Record<string, string | undefined>,
  ): Promise<SafeHtml> {
    if (!payer.paused) return html``;
    if (fields.resumeSpending !== "1") {
      return html`<p class="notice">Spending is still paused on your account: no app can use AI until you
resume it on your account page.</p>`;
    }
    await store.setPayerPaused(payer.id, false);
    request.log.info({ paused: false }, "payer spending switch");
    return html`<p class="notice">Spending is resumed on your account.</p>`;
  }

  scope.get(CONNECT_PATH, async (_request, reply) =>
    sendPage(reply, config, { title: "Connecting", body: connectPage(), script: HANDSHAKE_SCRIPT }),
  );

  scope.get(CONSENT_PATH, async (request, reply) => {
    const opened = await openConsent(request, reply);
    if ("page" in opened) return opened.page;
    return renderConsent(request, reply, opened);
  });

  scope.post("/connect/approve", async (request, reply) => {
    const form = await sessions.checkForm(request);
    const opened = await openConsent(request, reply);
    if ("page" in opened) return opened.page;
    const { consent, app } = opened;
    const { record } = consent;
    if (!form.signedIn) return reply.redirect(consentPage(consent.key), 303);
    if (!consents.csrfOk(consent, form.fields.csrf, form.signedIn.sessionKey)) {
      return staleForm(request, reply, opened, form.fields.payer, form.signedIn.payer.id);
    }
    const payer = form.signedIn.payer;
    // Done on a page shown before a top-up: the answer reflects what OpenRouter says now.
    const current = await funding.service.recheckInsufficient(payer.id);
    const status = fundingStatus(current);
    if (status === "missing" || status === "invalid") return reply.redirect(consentPage(consent.key), 303);
    if (record.intent === "reconnect-funding" && status === "insufficient") {
      return renderConsent(request, reply, opened, { status: 400, error: stillInsufficientMessage(current) });
    }
    const now = clock.now();
    const again = (error: string, capText?: string) =>
      renderConsent(request, reply, opened, {
        status: 400,
        error,
        ...(capText === undefined ? {} : { capText }),
      });
    const answered = async () => {
      if (!(await store.answerConsentSession(record.idHash, "approved", now))) return false;
      consents.clearCookie(reply);
      return true;
    };

    if (record.intent === "grant" && record.grantTerms !== null) {
      if (!(await answered())) return plainPage(reply, "Already answered", ALREADY_ANSWERED);
      const approved = await approveGrant(
        deps,
        {
          appId: app.id,
          payerId: payer.id,
          terms: record.grantTerms,
          sessionJti: record.sessionJti,
          sessionExpiresAt: record.sessionExpiresAt,
        },
        now,
      );
      request.log.info({ appId: app.id, grantId: approved.grantId }, "grant approved");
      const spending = await resumeIfAsked(request, payer, form.fields);
      return sendResult(
        reply,
        record.origin,
        { type: "wattfare:result", status: "approved", grantToken: approved.grantToken },
        html`<p class="notice" role="status">${app.name} can now spend up to
${displayUsd(approved.grant.maxNano, "down")} from your Wattfare account under this grant.</p>
${spending}`,
      );
    }

    const appUserId = record.appUserId ?? "";
    const account = await store.chatAccount(app.id, appUserId);
    const own = account && account.connection.payerId === payer.id ? account.connection : undefined;
    const keepCap =
      record.intent === "reconnect-funding" && own !== undefined && form.fields.monthlyUsd === undefined;
    let capNano: bigint | null = null;
    if (!keepCap) {
      const cap = parseCapInput(form.fields.monthlyUsd, config.limits.maxMonthlyUsd);
      if (!cap.ok) return again(cap.message, form.fields.monthlyUsd);
      const suggested = suggestedCapNano(record, own, config.limits.defaultMonthlyUsd);
      if (cap.capNano > suggested && form.fields.confirmAbove !== "1") {
        return again(
          `${displayUsd(cap.capNano, "down")} is more than the ${displayUsd(suggested, "down")} suggested. Tick "I allow more than ${displayUsd(suggested, "down")} a month" to confirm it.`,
          form.fields.monthlyUsd,
        );
      }
      capNano = cap.capNano;
    }
    const switchPayer = form.fields.switchPayer === "1";
    if (account && !own && !switchPayer) {
      return again(
        'Tick "Switch payer" to confirm that you pay for this account from now on.',
        form.fields.monthlyUsd,
      );
    }
    if (!(await answered())) return plainPage(reply, "Already answered", ALREADY_ANSWERED);
    const result = await store.approveConnection({
      appId: app.id,
      appUserId,
      payerId: payer.id,
      capNano,
      switchPayer,
      newConnectionId: newConnectionId(),
      now,
    });
    if (!result.ok) {
      const message = "Another Wattfare account connected this account meanwhile. Start again from the app.";
      return sendResult(
        reply,
        record.origin,
        { type: "wattfare:result", status: "error", message },
        html`<p class="alert" role="alert">${message}</p>`,
        409,
      );
    }
    request.log.info(
      { appId: app.id, connectionId: result.connection.id, created: result.created, intent: record.intent },
      "connection approved",
    );
    // Before the status is read: the result tells the page whether spending is paused.
    const spending = await resumeIfAsked(request, payer, form.fields);
    const connection = await connectionStatus(store, app.id, appUserId, now);
    return sendResult(
      reply,
      record.origin,
      { type: "wattfare:result", status: "approved", connection },
      html`<p class="notice" role="status">${app.name} can now use AI paid from your Wattfare account, up to
${displayUsd(result.connection.capNano, "down")} a month.</p>
${spending}`,
    );
  });

  // Continue on the funding step: the payer says they topped up, so an out-of-credits key's `/key` is
  // read again now (at most every few seconds per key), then the approve step shows what it says.
  scope.post(CONTINUE_PATH, async (request, reply) => {
    const form = await sessions.checkForm(request);
    const opened = await openConsent(request, reply);
    if ("page" in opened) return opened.page;
    const { consent } = opened;
    if (!form.signedIn) return reply.redirect(consentPage(consent.key), 303);
    if (!consents.csrfOk(consent, form.fields.csrf, form.signedIn.sessionKey)) {
      return staleForm(request, reply, opened, form.fields.payer, form.signedIn.payer.id);
    }
    await funding.service.recheckInsufficient(form.signedIn.payer.id);
    return reply.redirect(consentPage(consent.key, "&step=approve"), 303);
  });

  scope.post("/connect/deny", async (request, reply) => {
    const form = await sessions.checkForm(request);
    const opened = await openConsent(request, reply);
    if ("page" in opened) return opened.page;
    const { consent, app } = opened;
    if (!consents.csrfOk(consent, form.fields.csrf)) {
      return renderConsent(request, reply, opened, { status: 403, error: FORM_EXPIRED });
    }
    if (!(await store.answerConsentSession(consent.record.idHash, "denied", clock.now()))) {
      return plainPage(reply, "Already answered", ALREADY_ANSWERED);
    }
    consents.clearCookie(reply);
    request.log.info({ appId: app.id, intent: consent.record.intent }, "consent denied");
    return sendResult(
      reply,
      consent.record.origin,
      { type: "wattfare:result", status: "denied" },
      html`<p class="notice" role="status">You said no to ${app.name}. Nothing was connected.</p>`,
    );
  });
}
