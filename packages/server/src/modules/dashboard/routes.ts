/**
 * The dashboard's forms on /account: change a cap (raises included — the payer is present), revoke a
 * connection, pause or resume all spending, revoke a grant. Each checks Origin (or Sec-Fetch-Site) and
 * the payer-bound CSRF token, acts only on the signed-in payer's own rows, and redirects back to
 * /account with `?dashboard=<notice>`. Chat reads caps, revocations, the pause flag and grants from the
 * database on every request, so each change applies to the very next request.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { AppDeps } from "../../deps.js";
import { ApiError } from "../../errors.js";
import { parseCapInput } from "../consent/index.js";
import { FORM_EXPIRED, type Payers, type SignedInPayer, signInPath } from "../payers/index.js";
import type { FormFields } from "../web/index.js";
import type { DashboardNotice } from "./views.js";

export function registerDashboardForms(scope: FastifyInstance, deps: AppDeps, payers: Payers): void {
  const { store, clock, config } = deps;
  const back = (reply: FastifyReply, notice: DashboardNotice) =>
    reply.redirect(`/account?dashboard=${notice}`, 303);

  /** Registers a payer-only form: signed out → sign in; stale or foreign CSRF → 403. */
  const form = (
    path: string,
    act: (fields: FormFields, signedIn: SignedInPayer, request: FastifyRequest) => Promise<DashboardNotice>,
  ) =>
    scope.post(path, async (request, reply) => {
      const checked = await payers.sessions.checkForm(request);
      if (!checked.signedIn) return reply.redirect(signInPath("/account"), 303);
      if (!checked.csrfOk) throw new ApiError("forbidden", FORM_EXPIRED);
      return back(reply, await act(checked.fields, checked.signedIn, request));
    });

  form("/account/connections/cap", async (fields, { payer }, request) => {
    const cap = parseCapInput(fields.monthlyUsd, config.limits.maxMonthlyUsd, true);
    if (!cap.ok) return "cap_invalid";
    const saved = await store.setConnectionCap(fields.connection ?? "", payer.id, cap.capNano, clock.now());
    if (saved) request.log.info({ connectionId: fields.connection }, "cap changed by the payer");
    return saved ? "cap_saved" : "not_found";
  });

  form("/account/connections/revoke", async (fields, { payer }, request) => {
    const revoked = await store.revokePayerConnection(fields.connection ?? "", payer.id, clock.now());
    if (revoked) request.log.info({ connectionId: fields.connection }, "connection revoked by the payer");
    return revoked ? "revoked" : "not_found";
  });

  form("/account/spending", async (fields, { payer }, request) => {
    const paused = fields.paused === "1";
    await store.setPayerPaused(payer.id, paused);
    request.log.info({ paused }, "payer spending switch");
    return paused ? "paused" : "resumed";
  });

  form("/account/grants/revoke", async (fields, { payer }, request) => {
    const revoked = await store.revokeGrant(fields.grant ?? "", payer.id, clock.now());
    if (revoked) request.log.info({ grantId: fields.grant }, "grant revoked by the payer");
    return revoked ? "grant_revoked" : "not_found";
  });
}
