import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { AppDeps } from "../../deps.js";
import { toApiError } from "../../http/error-handler.js";
import { parseUrlEncoded } from "./forms.js";
import { html } from "./html.js";
import { ICON, ICON_PATH, STYLESHEET, STYLESHEET_PATH, securityHeaders, sendPage } from "./page.js";

const FORM_BODY_LIMIT = 16 * 1024;

/**
 * Registers `routes` in an encapsulated scope for server-rendered pages: HTML forms are parsed
 * (only here — the JSON API keeps refusing them), every response carries the page security headers,
 * and errors render as an HTML page instead of the JSON error body.
 *
 * @example
 * registerPageScope(app, deps, (scope) => {
 *   scope.get("/connect", async (request, reply) => sendPage(reply, deps.config, { title: "Connect", body }));
 * });
 */
export function registerPageScope(
  app: FastifyInstance,
  deps: AppDeps,
  routes: (scope: FastifyInstance) => void,
): void {
  app.register(async (scope) => {
    scope.addContentTypeParser(
      "application/x-www-form-urlencoded",
      { parseAs: "string", bodyLimit: FORM_BODY_LIMIT },
      (_request, body, done) => done(null, parseUrlEncoded(String(body))),
    );
    const headers = securityHeaders(deps.config);
    scope.addHook("onRequest", async (_request, reply) => {
      reply.headers(headers);
    });
    scope.setErrorHandler((error: unknown, request: FastifyRequest, reply: FastifyReply) => {
      const apiError = toApiError(error);
      if (apiError.status >= 500) request.log.error({ err: error }, "request failed");
      reply.headers(apiError.headers);
      return sendPage(reply, deps.config, {
        title: "Something went wrong",
        status: apiError.status,
        body: html`<h1>Something went wrong</h1>
<p class="alert" role="alert">${apiError.message}</p>
<p><a href="/account">Go to your account</a></p>`,
      });
    });
    routes(scope);
  });
}

/** The shared stylesheet and icon, served once for every page. */
export function registerWebAssets(app: FastifyInstance): void {
  const asset = (path: string, type: string, body: string) =>
    app.get(path, async (_request, reply) =>
      reply
        .type(type)
        .header("cache-control", "public, max-age=3600")
        .header("x-content-type-options", "nosniff")
        .send(body),
    );
  asset(STYLESHEET_PATH, "text/css; charset=utf-8", STYLESHEET);
  asset(ICON_PATH, "image/svg+xml", ICON);
}
