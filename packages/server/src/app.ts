/**
 * buildApp(deps): every route and plugin, no env reads and no listening. main.ts creates the deps and
 * listens; tests call buildApp with their own deps and use inject() or listen(0).
 */
import { setMaxListeners } from "node:events";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from "fastify";
import type { AppDeps } from "./deps.js";
import { restartingError } from "./errors.js";
import { answerClientError, registerErrorHandling, sendFrameworkError } from "./http/error-handler.js";
import { H } from "./http/headers.js";
import { newRequestId } from "./http/request-id.js";
import { type Chat, createChat, isChatRequest } from "./modules/chat/index.js";
import { registerConnectionRoutes } from "./modules/connections/index.js";
import { registerConsentRoutes } from "./modules/consent/index.js";
import { registerDashboard } from "./modules/dashboard/index.js";
import { registerFundingRoutes } from "./modules/funding/index.js";
import { registerGrantRoutes } from "./modules/grants/index.js";
import { registerHealthRoutes } from "./modules/health/index.js";
import { Metrics, registerMetricsRoute } from "./modules/metrics/index.js";
import { registerPayerRoutes } from "./modules/payers/index.js";
import { registerSessionRoutes } from "./modules/sessions/index.js";

declare module "fastify" {
  interface FastifyInstance {
    chat: Chat;
  }
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  // The chat route is served by a plain node:http handler ahead of Fastify (see chat/http-handler.ts);
  // it exists once the chat module is built, below.
  let chatHandler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const app = Fastify({
    serverFactory: (fastifyHandler) =>
      http.createServer((req, res) => {
        if (chatHandler !== undefined && isChatRequest(req)) chatHandler(req, res);
        else fastifyHandler(req, res);
      }),
    loggerInstance: deps.logger as FastifyBaseLogger,
    // Per-request info lines cost throughput on the hot path; failures are logged by the error handler.
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: () => newRequestId(),
    // Per-client limits (sign-in, sign-up, resets, consent exchanges) key on request.ip: behind a
    // reverse proxy that must be the client's address from X-Forwarded-For, not the proxy's.
    trustProxy: deps.config.trustProxy,
    bodyLimit: deps.config.limits.otherBodyBytes,
    // Answered by the onRequest hook below, in our error envelope rather than Fastify's.
    return503OnClosing: false,
    // Errors Fastify raises before any hook (a malformed URL) and ones Node raises before any request
    // exists (a malformed request line, oversized headers): in our envelope too.
    frameworkErrors: sendFrameworkError,
    clientErrorHandler: answerClientError,
    routerOptions: { ignoreTrailingSlash: false },
  });

  // Aborted when the server starts closing: new requests are refused, chat bodies still arriving too.
  const closing = new AbortController();
  // One listener per chat body being read (see chat/http-handler.ts): as many as requests in flight.
  setMaxListeners(0, closing.signal);
  app.addHook("preClose", async () => {
    closing.abort();
  });
  // After every onRequest hook (a route's CORS headers included), so a browser can read it too.
  app.addHook("preParsing", async () => {
    if (closing.signal.aborted) throw restartingError();
  });
  app.addHook("onRequest", async (request, reply) => {
    reply.header(H.requestId, request.id);
    // API answers carry tokens (a grant token, session tokens) and per-user state: no cache keeps one.
    if (request.url.startsWith("/api/")) reply.header("cache-control", "no-store");
    const clientId = request.headers[H.requestId];
    if (typeof clientId === "string")
      request.log.debug({ clientRequestId: clientId.slice(0, 200) }, "client id");
  });

  registerErrorHandling(app);
  registerHealthRoutes(app, deps);
  const metrics = new Metrics(deps.config.metricsToken !== undefined);
  registerMetricsRoute(app, deps, metrics);
  registerSessionRoutes(app, deps);
  registerConnectionRoutes(app, deps);
  registerGrantRoutes(app, deps);
  const chat = await createChat(app, deps, metrics, closing.signal);
  app.decorate("chat", chat);
  chatHandler = chat.handleHttp;
  app.addHook("onClose", async () => chat.close());
  const payers = registerPayerRoutes(app, deps);
  registerFundingRoutes(app, deps, payers, chat.upstream, chat.keyReads);
  // Consent popup and payer dashboard (issue 6).
  registerConsentRoutes(app, deps, payers, app.funding);
  registerDashboard(app, deps, payers);
  await app.ready();
  return app;
}
