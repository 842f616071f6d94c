/**
 * Funding endpoints. Each ends with a redirect to the form's `returnTo` carrying `?funding=<outcome>`,
 * so /account and the consent popup both show the result with `fundingMessage()`.
 */
import type { FastifyInstance } from "fastify";
import type { AppDeps } from "../../deps.js";
import { ApiError } from "../../errors.js";
import { FORM_EXPIRED, type Payers, signInPath } from "../payers/index.js";
import { html, queryParam, safeReturnTo, sendPage, withQuery } from "../web/index.js";
import { type FundingService, OAUTH_CALLBACK_PATH } from "./service.js";

export function registerFundingPages(
  scope: FastifyInstance,
  deps: AppDeps,
  payers: Payers,
  funding: FundingService,
): void {
  const { config } = deps;
  const { sessions } = payers;

  /** The checked form of a signed-in payer, or a redirect to sign in first. */
  async function payerForm(request: Parameters<typeof sessions.checkForm>[0]) {
    const form = await sessions.checkForm(request);
    const returnTo = safeReturnTo(form.fields.returnTo, config);
    if (form.signedIn && !form.csrfOk) throw new ApiError("forbidden", FORM_EXPIRED);
    return { ...form, returnTo };
  }

  scope.post("/funding/oauth/start", async (request, reply) => {
    const form = await payerForm(request);
    if (!form.signedIn) return reply.redirect(signInPath(form.returnTo), 303);
    const started = await funding.beginOAuth(
      form.signedIn.payer.id,
      form.signedIn.session.idHash,
      form.returnTo,
    );
    if (!started.ok) return reply.redirect(withQuery(form.returnTo, { funding: started.outcome }), 303);
    return reply.redirect(started.url, 303);
  });

  // OpenRouter sends the browser here with ?code= (&state=) or ?error=. The URL is never logged (request
  // logging is off and errors are logged without it), and the redirect below drops it from the address bar.
  scope.get(OAUTH_CALLBACK_PATH, async (request, reply) => {
    const signedIn = await sessions.current(request);
    if (!signedIn) {
      return sendPage(reply, config, {
        title: "Sign in again",
        status: 401,
        body: html`<h1>Sign in again</h1>
<p class="alert" role="alert">Your session ended before OpenRouter sent you back, so nothing was connected.</p>
<p><a href="/signin">Sign in</a> and connect your key again.</p>`,
      });
    }
    const { outcome, returnTo } = await funding.completeOAuth(
      signedIn.payer.id,
      signedIn.session.idHash,
      {
        code: queryParam(request, "code"),
        state: queryParam(request, "state"),
        error: queryParam(request, "error"),
      },
      "/account",
    );
    return reply.redirect(withQuery(safeReturnTo(returnTo, config), { funding: outcome }), 303);
  });

  scope.post("/funding/key", async (request, reply) => {
    const form = await payerForm(request);
    if (!form.signedIn) return reply.redirect(signInPath(form.returnTo), 303);
    const outcome = await funding.connectKey(form.signedIn.payer.id, form.fields.key ?? "", "pasted");
    return reply.redirect(withQuery(form.returnTo, { funding: outcome }), 303);
  });

  scope.post("/funding/remove", async (request, reply) => {
    const form = await payerForm(request);
    if (!form.signedIn) return reply.redirect(signInPath(form.returnTo), 303);
    await funding.remove(form.signedIn.payer.id);
    return reply.redirect(withQuery(form.returnTo, { funding: "removed" }), 303);
  });
}
