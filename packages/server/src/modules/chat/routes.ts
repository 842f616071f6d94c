import type { FastifyInstance, FastifyRequest } from "fastify";
import type { AppDeps } from "../../deps.js";
import { ApiError } from "../../errors.js";
import { H } from "../../http/headers.js";
import { APP_USER_ID, APP_USER_ID_MESSAGE } from "../../http/validation.js";
import { chatGrantKey, chatUserKey, type RateRule, RL_CHAT } from "../../ratelimit/index.js";
import { authenticateSecretKey } from "../apps/index.js";
import { resolveGrant } from "../grants/index.js";
import type { ModelCatalogue } from "./catalogue.js";
import type { ChatCaller, ChatProxy } from "./proxy.js";

declare module "fastify" {
  interface FastifyRequest {
    chatCaller?: ChatCaller;
  }
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * The chat route lives in its own encapsulated context: its JSON body is kept raw (parsed once by the
 * proxy, which needs the byte length for the prompt bound) with its own size limit, and the caller is
 * authenticated and rate-limited in onRequest — before a byte of the body is read.
 */
export function registerChatRoutes(
  app: FastifyInstance,
  deps: AppDeps,
  proxy: ChatProxy,
  catalogue: ModelCatalogue,
): void {
  /** RL_CHAT, keyed per user or per grant (separate namespaces). */
  const enforceChatLimit = async (key: string, rule: RateRule, now: number) => {
    const decision = await deps.rateLimits.hit(key, rule, now);
    if (!decision.allowed) {
      throw new ApiError("rate_limited", `Too many chat requests (${rule.limit}/minute).`, {
        headers: { [H.retryAfter]: String(decision.retryAfterSeconds) },
      });
    }
  };

  app.register(async (scope) => {
    scope.removeContentTypeParser("application/json");
    scope.addContentTypeParser("application/json", { parseAs: "buffer" }, (_req, body, done) =>
      done(null, body),
    );

    scope.addHook("onRequest", async (request: FastifyRequest) => {
      const now = deps.clock.now();
      const caller = await authenticateSecretKey(deps.store, request.headers.authorization, now);
      const user = single(request.headers[H.user]);
      const grant = single(request.headers[H.grant]);
      if (user !== undefined && grant !== undefined) {
        throw new ApiError("invalid_request", `Send either ${H.user} or ${H.grant}, not both.`);
      }
      const rule = { limit: caller.chatPerMinute ?? RL_CHAT.limit, windowMs: RL_CHAT.windowMs };
      if (grant !== undefined) {
        const account = await resolveGrant(deps, caller.id, grant, now);
        await enforceChatLimit(chatGrantKey(caller.id, account.grant.id), rule, now);
        request.chatCaller = { app: caller, kind: "grant", grant: account };
        return;
      }
      if (user === undefined) {
        throw new ApiError("invalid_request", `The ${H.user} header is required (your user's id).`, {
          param: H.user,
        });
      }
      if (!APP_USER_ID.test(user)) {
        throw new ApiError("invalid_request", `${H.user} ${APP_USER_ID_MESSAGE}.`, { param: H.user });
      }
      await enforceChatLimit(chatUserKey(caller.id, user), rule, now);
      request.chatCaller = { app: caller, kind: "user", appUserId: user };
    });

    scope.post(
      "/api/v1/chat/completions",
      { bodyLimit: deps.config.limits.chatBodyBytes },
      async (request, reply) => {
        const caller = request.chatCaller;
        if (!caller || !Buffer.isBuffer(request.body))
          throw new ApiError("invalid_request", "Send a JSON body.");
        await proxy.handle(request, reply, caller, request.body);
        return reply;
      },
    );
  });

  app.get("/api/v1/models", async (request, reply) => {
    await authenticateSecretKey(deps.store, request.headers.authorization, deps.clock.now());
    const { raw } = await catalogue.get();
    return reply.type("application/json").send(raw);
  });
}
