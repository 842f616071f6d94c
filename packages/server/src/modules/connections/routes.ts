import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { AppDeps } from "../../deps.js";
import { ApiError } from "../../errors.js";
import { admitBeforeBody } from "../../http/admit-before-body.js";
import { exposeToRegisteredOrigin, preflight, requireAppOrigin } from "../../http/cors.js";
import { optionalJsonBody } from "../../http/optional-json-body.js";
import { APP_USER_ID, APP_USER_ID_MESSAGE, parseOr400 } from "../../http/validation.js";
import { usdToNano } from "../../money.js";
import { authenticateSecretKey } from "../apps/index.js";
import { verifySessionToken } from "../sessions/index.js";
import { connectionStatus } from "./service.js";

const statusQuery = z.object({
  appUserId: z
    .string({ error: (issue) => (issue.input === undefined ? "is required" : "must be given once") })
    .regex(APP_USER_ID, APP_USER_ID_MESSAGE),
});

const CONSENT_REQUIRED = "payer consent required — open the consent popup";

export function registerConnectionRoutes(app: FastifyInstance, deps: AppDeps): void {
  app.get("/api/v1/status", async (request) => {
    const caller = await authenticateSecretKey(deps.store, request.headers.authorization, deps.clock.now());
    const { appUserId } = parseOr400(statusQuery, request.query, "query");
    return connectionStatus(deps.store, caller.id, appUserId, deps.clock.now());
  });

  const lowerBody = z.strictObject({
    monthlyUsd: z
      .number({ error: "must be a number" })
      .min(0, "must not be negative")
      .max(deps.config.limits.maxMonthlyUsd, `must be at most ${deps.config.limits.maxMonthlyUsd}`)
      .optional(),
  });

  /**
   * The browser's view of its own user: bearer session JWT (typ "user") from a registered origin, both
   * checked before the body is read, so a bad token is 401 and a foreign origin 403 whatever was sent.
   */
  const callers = admitBeforeBody(async (request) => {
    const session = await verifySessionToken(deps, request.headers.authorization, "user");
    requireAppOrigin(request, session.app);
    return { appId: session.app.id, appUserId: session.claims.sub };
  });

  app.options("/api/v1/connections", (request, reply) =>
    preflight(deps, request, reply, "GET, POST, DELETE"),
  );

  // A scope of their own: CORS headers from onRequest, so that errors raised before the handler (the
  // caller's, body parsing, size) are readable by the browser too; the caller admitted from the headers
  // before the body is read; and a JSON parser that takes an empty body as none, since DELETE has no
  // body and POST's is optional, whatever Content-Type a client sends.
  app.register(async (scope) => {
    scope.addHook("onRequest", (request, reply) => exposeToRegisteredOrigin(deps, request, reply));
    scope.addHook("preParsing", callers.preParsing);
    optionalJsonBody(scope);

    scope.get("/api/v1/connections", async (request) => {
      const { appId, appUserId } = callers.of(request);
      return connectionStatus(deps.store, appId, appUserId, deps.clock.now());
    });

    scope.delete("/api/v1/connections", async (request, reply) => {
      const { appId, appUserId } = callers.of(request);
      await deps.store.revokeConnection(appId, appUserId, deps.clock.now());
      return reply.code(204).send();
    });

    // Only lowers: first approval and raises need the payer present, on Wattfare's own pages.
    scope.post("/api/v1/connections", async (request) => {
      const { appId, appUserId } = callers.of(request);
      const { monthlyUsd } = parseOr400(lowerBody, request.body ?? {});
      const now = deps.clock.now();
      const account = await deps.store.chatAccount(appId, appUserId);
      if (!account) throw new ApiError("forbidden", CONSENT_REQUIRED);
      if (monthlyUsd !== undefined) {
        const capNano = usdToNano(monthlyUsd, "down");
        if (capNano > account.connection.capNano) throw new ApiError("forbidden", CONSENT_REQUIRED);
        await deps.store.lowerCap(account.connection.id, capNano, now);
      }
      return connectionStatus(deps.store, appId, appUserId, now);
    });
  });
}
