import type { IncomingMessage, ServerResponse } from "node:http";
import type { FastifyInstance } from "fastify";
import type { AppDeps } from "../../deps.js";
import { ApiError } from "../../errors.js";
import { authenticateSecretKey } from "../apps/index.js";
import { filterByOutputModalities, type ModelCatalogue } from "./catalogue.js";
import { CHAT_PATH } from "./http-handler.js";

/**
 * The Fastify side of the chat module: `GET /api/v1/models` (the upstream catalogue, cached, filtered by
 * `output_modalities` as upstream filters it) and `GET /api/v1/models/{id}` (any model). The chat
 * route itself is a plain node:http handler (http-handler.ts), dispatched before Fastify.
 */
export function registerModelRoutes(app: FastifyInstance, deps: AppDeps, catalogue: ModelCatalogue): void {
  // The listing OpenRouter gives by default (text-output models) is asked for most: filtered once per
  // catalogue; other `output_modalities` values are filtered per call.
  let textOnly: { raw: string; listing: string } | undefined;
  app.get("/api/v1/models", async (request, reply) => {
    await authenticateSecretKey(deps.store, request.headers.authorization, deps.clock.now());
    const { raw } = await catalogue.get();
    const asked = (request.query as Record<string, string | string[] | undefined>).output_modalities;
    const param = Array.isArray(asked) ? asked.join(",") : asked;
    let listing: string;
    if (!param || param === "text") {
      if (textOnly?.raw !== raw) textOnly = { raw, listing: filterByOutputModalities(raw, "text") };
      listing = textOnly.listing;
    } else listing = filterByOutputModalities(raw, param);
    return reply.type("application/json").send(listing);
  });

  // One model's entry (what the openai client's `models.retrieve(id)` asks for; ids contain "/", which
  // it sends encoded). The catalogue text is parsed into a map once per catalogue, not per call.
  let indexed: { raw: string; byId: Map<string, unknown> } | undefined;
  app.get("/api/v1/models/*", async (request, reply) => {
    await authenticateSecretKey(deps.store, request.headers.authorization, deps.clock.now());
    const id = (request.params as { "*": string })["*"];
    const { raw } = await catalogue.get();
    if (indexed?.raw !== raw) {
      const data = (JSON.parse(raw) as { data?: { id?: unknown }[] }).data ?? [];
      indexed = { raw, byId: new Map(data.map((model) => [String(model.id), model])) };
    }
    const model = indexed.byId.get(id);
    if (model === undefined) {
      throw new ApiError("not_found", `No model ${JSON.stringify(id)} in the catalogue.`, { param: "model" });
    }
    return reply.type("application/json").send(model);
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
