import type { FastifyInstance } from "fastify";
import type { AppDeps } from "../../deps.js";
import { ApiError } from "../../errors.js";
import { exposeToRegisteredOrigin, preflight, requireAppOrigin } from "../../http/cors.js";
import { H } from "../../http/headers.js";
import { authenticateSecretKey } from "../apps/index.js";
import { verifySessionToken } from "../sessions/index.js";
import { grantInvalid, grantStatus, hashGrantToken, takePendingGrantToken } from "./service.js";

export function registerGrantRoutes(app: FastifyInstance, deps: AppDeps): void {
  // Secret key + x-wattfare-grant → the grant's state. Unknown or another app's grant → 402.
  app.get("/api/v1/grants/current", async (request) => {
    const now = deps.clock.now();
    const caller = await authenticateSecretKey(deps.store, request.headers.authorization, now);
    const token = request.headers[H.grant];
    if (typeof token !== "string" || token.length === 0) {
      throw new ApiError("invalid_request", `The ${H.grant} header is required.`, { param: H.grant });
    }
    const account = await deps.store.grantByTokenHash(hashGrantToken(token));
    if (!account || account.grant.appId !== caller.id) throw grantInvalid("Unknown grant token.");
    return grantStatus(deps, account.grant, now);
  });

  app.options("/api/v1/grants/pending", (request, reply) => preflight(deps, request, reply, "GET"));

  // Bearer grant-session token + registered Origin → the approved grantToken, once. CORS headers from
  // onRequest, so that any error is readable by the browser.
  app.get(
    "/api/v1/grants/pending",
    { onRequest: (request, reply) => exposeToRegisteredOrigin(deps, request, reply) },
    async (request) => {
      const session = await verifySessionToken(deps, request.headers.authorization, "grant");
      requireAppOrigin(request, session.app);
      const grantToken = await takePendingGrantToken(
        deps,
        session.app.id,
        session.claims.jti,
        deps.clock.now(),
      );
      if (grantToken === undefined)
        throw new ApiError("not_found", "No approved grant is waiting for this session.");
      return { grantToken };
    },
  );
}
