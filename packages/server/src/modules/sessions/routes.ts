import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { AppDeps } from "../../deps.js";
import { ApiError } from "../../errors.js";
import { H } from "../../http/headers.js";
import { APP_USER_ID, APP_USER_ID_MESSAGE, parseOr400 } from "../../http/validation.js";
import { RL_SESSIONS, sessionsKey } from "../../ratelimit/index.js";
import { signUserSession } from "../../security/index.js";
import { authenticateSecretKey } from "../apps/index.js";
import { tokenConfig } from "./service.js";

export function registerSessionRoutes(app: FastifyInstance, deps: AppDeps): void {
  const body = z.strictObject({
    appUserId: z.string({ error: "is required" }).regex(APP_USER_ID, APP_USER_ID_MESSAGE),
    requestLimit: z
      .strictObject({
        monthlyUsd: z
          .number({ error: "must be a number" })
          .positive("must be positive")
          .max(deps.config.limits.maxMonthlyUsd, `must be at most ${deps.config.limits.maxMonthlyUsd}`)
          .optional(),
      })
      .optional(),
  });

  app.post("/api/v1/sessions", async (request) => {
    const now = deps.clock.now();
    const caller = await authenticateSecretKey(deps.store, request.headers.authorization, now);
    const rule = { limit: caller.sessionsPerMinute ?? RL_SESSIONS.limit, windowMs: RL_SESSIONS.windowMs };
    const decision = await deps.rateLimits.hit(sessionsKey(caller.id), rule, now);
    if (!decision.allowed) {
      throw new ApiError("rate_limited", `Too many session requests for this app (${rule.limit}/minute).`, {
        headers: { [H.retryAfter]: String(decision.retryAfterSeconds) },
      });
    }
    const input = parseOr400(body, request.body);
    const monthlyUsd = input.requestLimit?.monthlyUsd;
    const { token, expiresAt } = await signUserSession(
      deps.keyRing,
      tokenConfig(deps.config),
      monthlyUsd === undefined
        ? { appId: caller.id, appUserId: input.appUserId }
        : { appId: caller.id, appUserId: input.appUserId, monthlyUsd },
      Math.floor(now / 1000),
    );
    return { token, expiresAt };
  });
}
