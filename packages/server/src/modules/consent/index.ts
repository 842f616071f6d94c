/**
 * The consent popup: where a payer signs in or up, funds, and approves an app's monthly cap or a
 * one-time grant (DESIGN.md "Core flows" 2 and 5). Builds on payer accounts and funding.
 */
import type { FastifyInstance } from "fastify";
import type { AppDeps } from "../../deps.js";
import type { Funding } from "../funding/index.js";
import type { Payers } from "../payers/index.js";
import { registerPageScope } from "../web/index.js";
import { registerConsentPages } from "./routes.js";
import { ConsentSessions } from "./session.js";
import { registerSessionExchange } from "./session-exchange.js";

export { CONNECT_PATH, CONSENT_PATH } from "./paths.js";
export { CONSENT_INTENTS, parseCapInput } from "./service.js";
export type { ResultMessage } from "./views.js";

export function registerConsentRoutes(
  app: FastifyInstance,
  deps: AppDeps,
  payers: Payers,
  funding: Funding,
): void {
  const consents = new ConsentSessions(deps);
  registerSessionExchange(app, deps, consents);
  registerPageScope(app, deps, (scope) => registerConsentPages(scope, deps, payers, funding, consents));
}
