/**
 * Funding: the payer's OpenRouter key. registerFundingRoutes() adds the endpoints, the funding block of
 * /account, and returns the handle the consent popup builds on.
 */
import type { FastifyInstance } from "fastify";
import type { AppDeps } from "../../deps.js";
import type { Payers } from "../payers/index.js";
import { queryParam, registerPageScope } from "../web/index.js";
import type { FundingKeyReads } from "./key-reads.js";
import { registerFundingPages } from "./routes.js";
import { FundingService, type FundingUpstream } from "./service.js";
import { fundingSection, parseFundingOutcome } from "./views.js";

export { type KeyCheck, readKeyCheck } from "./key-check.js";
export { FundingKeyReads } from "./key-reads.js";
export { createCodeVerifier, s256Challenge } from "./pkce.js";
export {
  type FundingOutcome,
  FundingService,
  type FundingUpstream,
  fundingStatus,
  OAUTH_CALLBACK_PATH,
  oauthAvailableFor,
} from "./service.js";
export {
  type FundingView,
  fundingMessage,
  fundingSection,
  parseFundingOutcome,
  stillInsufficientMessage,
} from "./views.js";

export interface Funding {
  service: FundingService;
}

declare module "fastify" {
  interface FastifyInstance {
    funding: Funding;
  }
}

export function registerFundingRoutes(
  app: FastifyInstance,
  deps: AppDeps,
  payers: Payers,
  upstream: FundingUpstream,
  keyReads: FundingKeyReads,
): Funding {
  const service = new FundingService({ ...deps, upstream, keyReads });
  registerPageScope(app, deps, (scope) => registerFundingPages(scope, deps, payers, service));
  payers.addAccountSection(async ({ request, signedIn, csrf }) => {
    const outcome = parseFundingOutcome(queryParam(request, "funding"));
    const payerId = signedIn.payer.id;
    return fundingSection({
      funding: await service.current(payerId),
      csrf,
      returnTo: "/account",
      oauthAvailable: service.oauthAvailable,
      outcome,
      removedKey: outcome === "removed" ? await service.lastRemoved(payerId) : undefined,
    });
  });
  const funding: Funding = { service };
  app.decorate("funding", funding);
  return funding;
}
