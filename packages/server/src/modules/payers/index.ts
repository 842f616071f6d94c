/**
 * Payer accounts: who pays. registerPayerRoutes() wires the service, the web sessions and the pages,
 * and returns the handle other modules (funding, the consent popup) build on.
 */
import type { FastifyInstance } from "fastify";
import type { AppDeps } from "../../deps.js";
import { createMailPort } from "../../mail/index.js";
import { registerPageScope, registerWebAssets } from "../web/index.js";
import { type AccountSection, registerPayerPages } from "./routes.js";
import { PayerService } from "./service.js";
import { PayerSessions } from "./session.js";

export {
  type AccountSection,
  type AccountSectionContext,
  FORM_EXPIRED,
  signInPath,
  throttledMessage,
} from "./routes.js";
export {
  type KeyLink,
  normalizeEmail,
  openRouterKeyUrl,
  PAYER_RATE_RULES,
  PayerService,
  passwordProblem,
  payerRateKeys,
  type SignInResult,
  type SignUpResult,
} from "./service.js";
export { type CheckedForm, PayerSessions, SESSION_TTL_MS, type SignedInPayer } from "./session.js";
export { type FormView, signInForm, signUpForm } from "./views.js";

export interface Payers {
  service: PayerService;
  sessions: PayerSessions;
  /** Adds a block to the /account page, rendered in registration order. */
  addAccountSection(section: AccountSection): void;
}

declare module "fastify" {
  interface FastifyInstance {
    payers: Payers;
  }
}

export function registerPayerRoutes(app: FastifyInstance, deps: AppDeps): Payers {
  const mail = deps.mail ?? createMailPort(deps.config, deps.store, deps.clock, deps.logger);
  if (deps.mail === undefined) app.addHook("onClose", async () => mail.close());
  const sessions = new PayerSessions(deps);
  const service = new PayerService({ ...deps, mail });
  const sections: AccountSection[] = [];
  registerWebAssets(app);
  registerPageScope(app, deps, (scope) => registerPayerPages(scope, deps, service, sessions, sections));
  const payers: Payers = {
    service,
    sessions,
    addAccountSection: (section) => {
      sections.push(section);
    },
  };
  app.decorate("payers", payers);
  return payers;
}
