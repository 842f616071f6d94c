/**
 * The payer dashboard: blocks of /account (through `payers.addAccountSection`) and their forms.
 * Funding has its own block (the funding module); this adds spending, connected apps, usage and grants.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { AppDeps } from "../../deps.js";
import type { Payers } from "../payers/index.js";
import { queryParam, registerPageScope } from "../web/index.js";
import { registerDashboardForms } from "./routes.js";
import { type Dashboard, loadDashboard } from "./service.js";
import {
  connectionsSection,
  grantsSection,
  parseDashboardNotice,
  spendingSection,
  usageSection,
} from "./views.js";

export function registerDashboard(app: FastifyInstance, deps: AppDeps, payers: Payers): void {
  registerPageScope(app, deps, (scope) => registerDashboardForms(scope, deps, payers));
  // The blocks render one after another for the same request: read everything once.
  const loaded = new WeakMap<FastifyRequest, Promise<Dashboard>>();
  const dashboard = (request: FastifyRequest, payerId: string) => {
    let data = loaded.get(request);
    if (!data) {
      data = loadDashboard(deps, payerId, deps.clock.now());
      loaded.set(request, data);
    }
    return data;
  };
  const notice = (request: FastifyRequest) => parseDashboardNotice(queryParam(request, "dashboard"));
  const withNotice = (request: FastifyRequest) => {
    const n = notice(request);
    return n === undefined ? {} : { notice: n };
  };

  payers.addAccountSection(async ({ request, signedIn, csrf }) =>
    spendingSection({ paused: signedIn.payer.paused, csrf, ...withNotice(request) }),
  );
  payers.addAccountSection(async ({ request, signedIn, csrf }) =>
    connectionsSection({
      apps: (await dashboard(request, signedIn.payer.id)).connections,
      csrf,
      maxMonthlyUsd: deps.config.limits.maxMonthlyUsd,
      ...withNotice(request),
    }),
  );
  payers.addAccountSection(async ({ request, signedIn }) =>
    usageSection(await dashboard(request, signedIn.payer.id)),
  );
  payers.addAccountSection(async ({ request, signedIn, csrf }) =>
    grantsSection({
      grants: (await dashboard(request, signedIn.payer.id)).grants,
      csrf,
      ...withNotice(request),
    }),
  );
}
