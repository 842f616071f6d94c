import { errorCodes, type FastifyInstance } from "fastify";

/**
 * In this scope the JSON body is optional: an empty body is no body (`request.body` is undefined),
 * whatever Content-Type came with it — `application/json` as clients often send regardless, or the
 * `text/plain` a browser's `fetch` sets for an empty string body. A body that is not empty must be
 * `application/json`, parsed by Fastify's own JSON parser; any other type is refused as the chat route
 * refuses it (400 "Content-Type must be application/json."). Routes outside such a scope keep Fastify's
 * parsers, whose `text/plain` one reads a body the JSON schema then refuses.
 */
export function optionalJsonBody(scope: FastifyInstance): void {
  const { onProtoPoisoning = "error", onConstructorPoisoning = "error" } = scope.initialConfig;
  const parse = scope.getDefaultJsonParser(onProtoPoisoning, onConstructorPoisoning);
  scope.removeAllContentTypeParsers();
  scope.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    if (body.length === 0) done(null, undefined);
    else parse(request, body.toString(), done);
  });
  scope.addContentTypeParser("*", { parseAs: "buffer" }, (_request, body, done) => {
    if (body.length === 0) done(null, undefined);
    else done(new errorCodes.FST_ERR_CTP_INVALID_MEDIA_TYPE(), undefined);
  });
}
