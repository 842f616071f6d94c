/**
 * The endpoint the browser SDK calls to get a session token for whoever is signed in to the app. It is
 * a Fetch-API handler, `(Request) => Promise<Response>`, so it mounts as-is in Next.js, Hono, Remix,
 * Bun, Deno and workers, and through `toNodeHandler` in node:http, Express and Fastify.
 */
import { APIError, isWattfareError, type WattfareError } from "../core/errors.js";
import type { GrantTerms, Session } from "../core/types.js";
import { loggerOf, Wattfare } from "./client.js";

/**
 * Who is signed in, as your app knows it.
 *
 * @example
 * ```ts
 * const user: SessionUser = { appUserId: "user_123", monthlyUsd: 20 };
 * ```
 */
export interface SessionUser {
  /** Your user's id: 1–256 printable ASCII characters, no spaces. */
  appUserId: string;
  /** The monthly cap, in USD, to suggest in the consent popup; omit for Wattfare's default. */
  monthlyUsd?: number | undefined;
}

/**
 * Finds the signed-in user from the request (its cookies or `Authorization` header) and, for
 * frameworks that keep the user elsewhere, from `context`, whatever your framework passes as the
 * handler's second argument. Returns null when nobody is signed in.
 *
 * @example
 * ```ts
 * const getUser: GetSessionUser = async (request) => {
 *   const session = await mySessions.fromCookie(request.headers.get("cookie"));
 *   return session ? { appUserId: session.userId } : null;
 * };
 * ```
 */
export type GetSessionUser<Context = void> = (
  request: Request,
  context: Context,
) => SessionUser | null | undefined | Promise<SessionUser | null | undefined>;

/**
 * A Fetch-API handler: `POST` → `200 {token, expiresAt}`.
 *
 * @example
 * ```ts
 * const handler: SessionHandler = createSessionHandler(getUser);
 * const response = await handler(new Request("https://app.example/api/wattfare/session", { method: "POST" }));
 * ```
 */
export type SessionHandler<Context = void> = (request: Request, context: Context) => Promise<Response>;

/**
 * Options for `createSessionHandler`.
 *
 * @example
 * ```ts
 * const options: SessionHandlerOptions = { client: new Wattfare({ maxRetries: 1 }) };
 * ```
 */
export interface SessionHandlerOptions {
  /** The client that mints tokens. Default: `new Wattfare()`, configured from the environment. */
  client?: Wattfare | undefined;
}

/**
 * Creates the endpoint that gives the browser SDK a session token for the signed-in user.
 *
 * The user id comes only from `getUser`, never from the request body, so a browser can only ever get
 * a token for itself. Answers:
 * - `200 {token, expiresAt}` with `cache-control: no-store`;
 * - `401 auth` when `getUser` returns null;
 * - `405` for anything but `POST` (minting is not a safe, cacheable GET);
 * - `429 rate_limited` with `Retry-After` when Wattfare rate-limits your app;
 * - `503 unavailable` when Wattfare cannot be reached, `500 internal` for a configuration problem
 *   such as a wrong secret key. Both are logged through the client's logger; the browser sees no detail.
 *
 * Errors thrown by `getUser` propagate to your framework's error handling.
 *
 * @example
 * ```ts
 * // app/api/wattfare/session/route.ts (Next.js App Router)
 * import { createSessionHandler } from "@wattfare/sdk/server";
 * const handler = createSessionHandler(async (request) => {
 *   const user = await currentUser(request);
 *   return user ? { appUserId: user.id } : null;
 * });
 * export async function POST(request: Request) {
 *   return handler(request);
 * }
 * ```
 */
export function createSessionHandler<Context = void>(
  getUser: GetSessionUser<Context>,
  options: SessionHandlerOptions = {},
): SessionHandler<Context> {
  return mintingHandler(options, "session", async (client, request, context) => {
    const user = await getUser(request, context);
    if (user === null || user === undefined) return errorResponse(401, "auth", "Sign in first.");
    return client.sessions.create(
      user.monthlyUsd === undefined
        ? { appUserId: user.appUserId }
        : { appUserId: user.appUserId, requestLimit: { monthlyUsd: user.monthlyUsd } },
    );
  });
}

/**
 * The terms of the grants your page may ask for, fixed or decided per request (return null to refuse).
 *
 * @example
 * ```ts
 * const terms: GrantTermsSource = (request) =>
 *   request.headers.get("x-plan") === "pro" ? { maxUsd: 5 } : { maxUsd: 1, maxUses: 10 };
 * ```
 */
export type GrantTermsSource<Context = void> =
  | GrantTerms
  | ((
      request: Request,
      context: Context,
    ) => GrantTerms | null | undefined | Promise<GrantTerms | null | undefined>);

/**
 * Creates the endpoint that gives the browser SDK's `requestGrant()` a grant session token: the
 * payer approves these terms in the consent popup. For apps without user accounts. The terms come only
 * from your code, never from the request, so a page cannot ask for a bigger grant.
 *
 * Answers like `createSessionHandler`: `200 {token, expiresAt}` (`no-store`), `403 forbidden` when
 * the terms function returns null, `405` for anything but `POST`, `429`, `503`, `500`.
 *
 * @example
 * ```ts
 * // app/api/wattfare/grant-session/route.ts (Next.js App Router)
 * import { createGrantSessionHandler } from "@wattfare/sdk/server";
 * const handler = createGrantSessionHandler({ maxUsd: 1, maxUses: 10, expiresInSeconds: 3600 });
 * export async function POST(request: Request) {
 *   return handler(request);
 * }
 * ```
 */
export function createGrantSessionHandler<Context = void>(
  terms: GrantTermsSource<Context>,
  options: SessionHandlerOptions = {},
): SessionHandler<Context> {
  return mintingHandler(options, "grant session", async (client, request, context) => {
    const chosen = typeof terms === "function" ? await terms(request, context) : terms;
    if (chosen === null || chosen === undefined) {
      return errorResponse(403, "forbidden", "A grant cannot be requested here.");
    }
    return client.sessions.createGrant(chosen);
  });
}

/**
 * What both handlers share: POST only; `mint` either refuses with a response or mints a session, whose
 * failures become the answers documented on `createSessionHandler`.
 */
function mintingHandler<Context>(
  options: SessionHandlerOptions,
  noun: string,
  mint: (client: Wattfare, request: Request, context: Context) => Promise<Response | Session>,
): SessionHandler<Context> {
  // Created now, not per request: a missing WATTFARE_SECRET_KEY fails at start-up, not at first use.
  const client = options.client ?? new Wattfare();
  const logger = loggerOf(client);

  return async (request, context) => {
    if (request.method !== "POST") {
      return errorResponse(405, "invalid_request", `Use POST to create a Wattfare ${noun}.`, {
        allow: "POST",
      });
    }
    let minted: Response | Session;
    try {
      minted = await mint(client, request, context);
    } catch (error) {
      // Errors from your own code (getUser, the terms function) propagate to your framework.
      if (!isWattfareError(error)) throw error;
      return failure(error, logger);
    }
    if (minted instanceof Response) return minted;
    return new Response(JSON.stringify(minted), { status: 200, headers: jsonHeaders() });
  };
}

function failure(error: WattfareError, logger: ReturnType<typeof loggerOf>): Response {
  if (isWattfareError(error, "rate_limited")) {
    const seconds = error.retryAfterMs === undefined ? undefined : Math.ceil(error.retryAfterMs / 1000);
    return errorResponse(
      429,
      "rate_limited",
      "Too many sessions requested; retry later.",
      seconds === undefined ? {} : { "retry-after": String(seconds) },
    );
  }
  const requestId = error instanceof APIError ? error.requestId : undefined;
  logger.error("could not create a Wattfare session", {
    code: error.code,
    message: error.message,
    requestId,
  });
  const wattfareDown = !(error instanceof APIError) || error.status >= 500;
  return wattfareDown
    ? errorResponse(503, "unavailable", "Wattfare is unavailable; try again shortly.")
    : errorResponse(500, "internal", "Could not create a Wattfare session.");
}

function jsonHeaders(extra: Record<string, string> = {}): Headers {
  // Tokens are per user: no browser or proxy cache may keep or share one.
  return new Headers({ "content-type": "application/json", "cache-control": "no-store", ...extra });
}

/** Errors in Wattfare's own body shape, so the browser SDK handles both alike. */
function errorResponse(
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify({ error: { code, message } }), {
    status,
    headers: jsonHeaders(headers),
  });
}
