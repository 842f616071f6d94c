import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { AppDeps } from "../../deps.js";
import { ApiError } from "../../errors.js";
import { admitBeforeBody } from "../../http/admit-before-body.js";
import { H } from "../../http/headers.js";
import { APP_USER_ID, APP_USER_ID_MESSAGE, parseOr400 } from "../../http/validation.js";
import { RL_SESSIONS, sessionsKey } from "../../ratelimit/index.js";
import { signGrantSession, signUserSession } from "../../security/index.js";
import { authenticateSecretKey } from "../apps/index.js";
import { MAX_GRANT_EXPIRY_SECONDS } from "../grants/index.js";
import { tokenConfig } from "./service.js";

export function registerSessionRoutes(app: FastifyInstance, deps: AppDeps): void {
  const maxUsd = deps.config.limits.maxMonthlyUsd;
  // Amounts are kept in nano-USD, rounded down: anything positive below one nano would become a zero
  // cap, which the popup itself refuses to pre-fill or approve.
  const usd = z
    .number({ error: "must be a number" })
    .positive("must be positive")
    .min(1e-9, "must be at least 0.000000001")
    .max(maxUsd, `must be at most ${maxUsd}`);
  // Either a user session ({appUserId, requestLimit?}) or, as an extension, a grant session ({grant}).
  const body = z
    .strictObject({
      appUserId: z.string().regex(APP_USER_ID, APP_USER_ID_MESSAGE).optional(),
      requestLimit: z.strictObject({ monthlyUsd: usd.optional() }).optional(),
      grant: z
        .strictObject({
          maxUsd: usd,
          maxUses: z
            .number()
            .int("must be an integer")
            .positive("must be positive")
            .max(1_000_000)
            .optional(),
          expiresInSeconds: z
            .number()
            .int("must be an integer")
            .positive("must be positive")
            .max(MAX_GRANT_EXPIRY_SECONDS, `must be at most ${MAX_GRANT_EXPIRY_SECONDS} (30 days)`)
            .optional(),
        })
        .optional(),
    })
    .superRefine((b, ctx) => {
      if (b.grant !== undefined && (b.appUserId !== undefined || b.requestLimit !== undefined)) {
        ctx.addIssue({
          code: "custom",
          path: ["grant"],
          message: "send either appUserId or grant, not both",
        });
      } else if (b.grant === undefined && b.appUserId === undefined) {
        ctx.addIssue({ code: "custom", path: ["appUserId"], message: "is required" });
      }
    });

  // The caller is authenticated and counted before the body is read, as chat does: a request without a
  // valid key is 401 whatever it sent, and one with a valid key counts toward RL_SESSIONS whatever its
  // answer, a body that is not JSON included.
  const callers = admitBeforeBody(async (request) => {
    const now = deps.clock.now();
    const caller = await authenticateSecretKey(deps.store, request.headers.authorization, now);
    const rule = { limit: caller.sessionsPerMinute ?? RL_SESSIONS.limit, windowMs: RL_SESSIONS.windowMs };
    const decision = await deps.rateLimits.hit(sessionsKey(caller.id), rule, now);
    if (!decision.allowed) {
      throw new ApiError("rate_limited", `Too many session requests for this app (${rule.limit}/minute).`, {
        headers: { [H.retryAfter]: String(decision.retryAfterSeconds) },
      });
    }
    return caller;
  });

  app.post("/api/v1/sessions", { preParsing: callers.preParsing }, async (request) => {
    const now = deps.clock.now();
    const caller = callers.of(request);
    const input = parseOr400(body, request.body);
    const nowSeconds = Math.floor(now / 1000);
    const cfg = tokenConfig(deps.config);
    if (input.grant !== undefined) {
      const { token, expiresAt } = await signGrantSession(
        deps.keyRing,
        cfg,
        { appId: caller.id, grant: input.grant },
        nowSeconds,
      );
      return { token, expiresAt };
    }
    const monthlyUsd = input.requestLimit?.monthlyUsd;
    const { token, expiresAt } = await signUserSession(
      deps.keyRing,
      cfg,
      {
        appId: caller.id,
        appUserId: input.appUserId as string,
        ...(monthlyUsd === undefined ? {} : { monthlyUsd }),
      },
      nowSeconds,
    );
    return { token, expiresAt };
  });
}
