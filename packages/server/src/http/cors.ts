/**
 * CORS for the browser-facing API (`/connections`, and later grants): a preflight is answered for any
 * origin some app registered (it carries no token to tell which app); the real request must come from
 * an origin registered for the token's own app. Credentials are never allowed: these endpoints take a
 * bearer token, never cookies.
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import type { AppDeps } from "../deps.js";
import { ApiError } from "../errors.js";
import { isOriginList, parseOrigin } from "../security/index.js";
import type { AppWithOrigins } from "../store/port.js";

const ALLOWED_HEADERS = "authorization, content-type";
const EXPOSED_HEADERS = "x-request-id, retry-after, x-should-retry, www-authenticate";

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
  if (origin !== undefined && isOriginList(origin)) throw new ApiError("forbidden", severalOrigins(origin));
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

/**
 * The real request must come from an origin registered for the token's app. The refusal says which
 * origin was seen and how to register it: the origin is the caller's own string, so it only ever goes
 * into the JSON message (quoted), never into a header.
 */
export function requireAppOrigin(request: FastifyRequest, app: AppWithOrigins): string {
  const origin = requestOrigin(request);
  if (origin === undefined) {
    throw new ApiError(
      "forbidden",
      "No Origin header (or Origin: null, as from a file:// page or a sandboxed frame): this endpoint serves the browser SDK, on a page served from an origin registered for the session's app.",
    );
  }
  if (!app.origins.includes(origin)) {
    throw new ApiError(
      "forbidden",
      isOriginList(origin) ? severalOrigins(origin) : unregisteredOrigin(origin, app.id),
    );
  }
  return origin;
}

/** The caller's own string, quoted and cut short, for a message. */
function quoted(origin: string): string {
  return JSON.stringify(origin.length > 200 ? `${origin.slice(0, 200)}…` : origin);
}

/** A repeated `Origin` header (node:http joins the copies with ", ") or a list: no browser sends one. */
function severalOrigins(origin: string): string {
  return `The Origin header names more than one origin (${quoted(origin)}): it was sent more than once, or as a list, where a browser sends exactly one, its page's.`;
}

function unregisteredOrigin(origin: string, appId: string): string {
  const parsed = parseOrigin(origin);
  const seen = `Origin ${quoted(origin)} is not registered for the session's app`;
  return parsed.ok
    ? `${seen}; register it with: wattfare apps origins add ${appId} ${parsed.origin}`
    : `${seen}, and cannot be (${parsed.reason}).`;
}
