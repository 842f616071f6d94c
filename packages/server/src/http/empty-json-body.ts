import type { FastifyInstance } from "fastify";

/**
 * In this scope, an `application/json` request with an empty body has no body (`request.body` is
 * undefined) instead of failing with 400: for routes whose body is optional, which clients often call
 * with a JSON Content-Type regardless. Anything else is parsed by Fastify's own JSON parser.
 */
export function acceptEmptyJsonBody(scope: FastifyInstance): void {
  const { onProtoPoisoning = "error", onConstructorPoisoning = "error" } = scope.initialConfig;
  const parse = scope.getDefaultJsonParser(onProtoPoisoning, onConstructorPoisoning);
  scope.removeContentTypeParser("application/json");
  scope.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    if (body.length === 0) done(null, undefined);
    else parse(request, body.toString(), done);
  });
}
