/**
 * CORS for the browser-facing API (`/connections`, and later grants): a preflight is answered for any
 * origin some app registered (it carries no token to tell which app); the real request must come from
 * an origin registered for the token's own app. Credentials are never allowed: these endpoints take a
 * bearer token, never cookies.
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import type { AppDeps } from "../deps.js";
import { ApiError } from "../errors.js";
import type { AppWithOrigins } from "../store/port.js";

const ALLOWED_HEADERS = "authorization, content-type";
const EXPOSED_HEADERS = "x-request-id, retry-after, x-should-retry";

function requestOrigin(request: FastifyRequest): string | undefined {
  const origin = request.headers.origin;
  return typeof origin === "string" && origin !== "null" ? origin : undefined;
}

/** Answers an OPTIONS preflight. */
export async function preflight(
  deps: AppDeps,
  request: FastifyRequest,
  reply: FastifyReply,
  methods: string,
) {
  const origin = requestOrigin(request);
  reply.header("vary", "Origin");
  if (origin === undefined || !(await deps.store.isRegisteredOrigin(origin))) {
    throw new ApiError("forbidden", "This origin is not registered for any app.");
  }
  return reply
    .code(204)
    .header("access-control-allow-origin", origin)
    .header("access-control-allow-methods", methods)
    .header("access-control-allow-headers", ALLOWED_HEADERS)
    .header("access-control-max-age", "600")
    .send();
}

/**
 * Lets a browser read this response (errors included) when its origin is registered for any app, so the
 * SDK can see a 401 and refresh its token. Call before authenticating.
 */
export async function exposeToRegisteredOrigin(deps: AppDeps, request: FastifyRequest, reply: FastifyReply) {
  const origin = requestOrigin(request);
  reply.header("vary", "Origin");
  if (origin !== undefined && (await deps.store.isRegisteredOrigin(origin))) {
    reply
      .header("access-control-allow-origin", origin)
      .header("access-control-expose-headers", EXPOSED_HEADERS);
  }
}

/** The real request must come from an origin registered for the token's app. */
export function requireAppOrigin(request: FastifyRequest, app: AppWithOrigins): string {
  const origin = requestOrigin(request);
  if (origin === undefined || !app.origins.includes(origin)) {
    throw new ApiError("forbidden", "This origin is not registered for the session's app.");
  }
  return origin;
}
