import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { AppDeps } from "../../deps.js";
import { APP_USER_ID, APP_USER_ID_MESSAGE, parseOr400 } from "../../http/validation.js";
import { authenticateSecretKey } from "../apps/index.js";
import { connectionStatus } from "./service.js";

const statusQuery = z.object({
  appUserId: z.string({ error: "is required" }).regex(APP_USER_ID, APP_USER_ID_MESSAGE),
});

export function registerConnectionRoutes(app: FastifyInstance, deps: AppDeps): void {
  app.get("/api/v1/status", async (request) => {
    const caller = await authenticateSecretKey(deps.store, request.headers.authorization, deps.clock.now());
    const { appUserId } = parseOr400(statusQuery, request.query, "query");
    return connectionStatus(deps.store, caller.id, appUserId, deps.clock.now());
  });
}
