import type { IncomingMessage, ServerResponse } from "node:http";
import type { FastifyInstance } from "fastify";
import type { AppDeps } from "../../deps.js";
import { authenticateSecretKey } from "../apps/index.js";
import type { ModelCatalogue } from "./catalogue.js";
import { CHAT_PATH } from "./http-handler.js";

/**
 * The Fastify side of the chat module: `GET /api/v1/models` (the upstream catalogue, cached). The chat
 * route itself is a plain node:http handler (http-handler.ts), dispatched before Fastify.
 */
export function registerModelRoutes(app: FastifyInstance, deps: AppDeps, catalogue: ModelCatalogue): void {
  app.get("/api/v1/models", async (request, reply) => {
    await authenticateSecretKey(deps.store, request.headers.authorization, deps.clock.now());
    const { raw } = await catalogue.get();
    return reply.type("application/json").send(raw);
  });
}

/**
 * The same chat handler behind a Fastify route, for requests that never pass through the HTTP server
 * (`app.inject()` in tests): the body is left unread so the handler reads it, exactly as on the wire.
 */
export function registerChatRouteForInject(
  app: FastifyInstance,
  handleHttp: (req: IncomingMessage, res: ServerResponse) => void,
): void {
  app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser("*", (_request, _payload, done) => done(null));
    scope.post(CHAT_PATH, async (request, reply) => {
      reply.hijack();
      handleHttp(request.raw, reply.raw);
    });
  });
}
