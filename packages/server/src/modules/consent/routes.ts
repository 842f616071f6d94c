/**
 * The consent popup (DESIGN.md "Core flows" 2 and 5):
 *
 * - `GET /connect` — the handshake page the SDK opens inside the click (no token in the URL);
 * - `POST /connect/session` — JSON, same-origin only: token + opener origin → popup consent session
 *   (session-exchange.ts);
 * - `GET /connect/consent` — the steps: sign in or up → fund → approve (cap, or a grant's terms);
 * - `POST /connect/continue` — Continue on the funding step: re-checks an out-of-credits key, then
 *   redirects to the approve step;
 * - `POST /connect/approve`, `POST /connect/deny` — the answer, then the result page that posts
 *   `wattfare:result` to the verified origin only and closes.
 *
 * The answer forms need the consent-session cookie, a CSRF token bound to it (and, for Approve, to the
 * payer's session) and a same-origin `Origin` / `Sec-Fetch-Site`. The pages these routes answer with are
 * rendered in pages.ts; their paths are in paths.ts.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { AppDeps } from "../../deps.js";
import { connectionStatus } from "../connections/index.js";
import { type Funding, fundingStatus, stillInsufficientMessage } from "../funding/index.js";
import { approveGrant } from "../grants/index.js";
import { FORM_EXPIRED, type Payers } from "../payers/index.js";
import { displayUsd, html, type SafeHtml, sendPage } from "../web/index.js";
import { consentPages } from "./pages.js";
import { CONNECT_PATH, CONSENT_PATH, consentPage } from "./paths.js";
import { ALREADY_ANSWERED, newConnectionId, parseCapInput, suggestedCapNano } from "./service.js";
import type { ConsentSessions } from "./session.js";
import { CONTINUE_PATH, connectPage, HANDSHAKE_SCRIPT } from "./views.js";

export function registerConsentPages(
  scope: FastifyInstance,
  deps: AppDeps,
  payers: Payers,
  funding: Funding,
  consents: ConsentSessions,
): void {
  const { config, store, clock } = deps;
  const { sessions } = payers;

  const { plainPage, sendResult, openConsent, staleForm, renderConsent } = consentPages(
    deps,
    payers,
    funding,
    consents,
  );

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
