/**
 * The example app's server: plain node:http with Fetch-API handlers (mounted by the SDK's
 * `toNodeHandler`). It signs users in with a name, gives the browser SDK session tokens, streams chat
 * completions billed to each user's own budget, and relays Wattfare's 402s so the page can fix them.
 * The grants page needs no sign-in: its chat is billed to a one-time grant the visitor got approved.
 */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import {
  APIError,
  type ChatCompletionMessageParam,
  type ConnectionStatus,
  createGrantSessionHandler,
  createSessionHandler,
  type GrantTerms,
  isWattfareError,
  toNodeHandler,
  type Wattfare,
} from "@wattfare/sdk/server";
import { Sessions } from "./auth.js";
import { chatPage, grantsPage, MODELS, type PageContext, STYLESHEET, signInPage } from "./pages.js";

/**
 * What `startChatApp` needs.
 *
 * @example
 * ```ts
 * const options: ChatAppOptions = { wattfare: new Wattfare(), port: 3000 };
 * ```
 */
export interface ChatAppOptions {
  /** The server SDK client, holding the app's secret key. */
  wattfare: Wattfare;
  /** Wattfare's URL as browsers reach it. Default: the client's `baseUrl`. */
  browserWattfareUrl?: string | undefined;
  /** Default: 0 (any free port). */
  port?: number | undefined;
  /** Default: 127.0.0.1. */
  host?: string | undefined;
  /** The monthly cap the consent popup suggests, in USD. Default: 1. */
  monthlyUsd?: number | undefined;
  /** The grants page's grant. Default: $0.25, 3 requests, valid 1 hour. */
  grantTerms?: GrantTerms | undefined;
}

/**
 * A running example app.
 *
 * @example
 * ```ts
 * const app: RunningChatApp = await startChatApp({ wattfare });
 * console.log(app.url);
 * ```
 */
export interface RunningChatApp {
  /** e.g. `http://localhost:3000`. */
  url: string;
  server: Server;
  close(): Promise<void>;
}

const DEFAULT_GRANT: GrantTerms = { maxUsd: 0.25, maxUses: 3, expiresInSeconds: 3600 };
/** Only the latest messages go to the model: a long history would make every request costly. */
const HISTORY = 12;
const MAX_CONTENT = 4000;

/** The compiled page scripts; the same path from src/ (tests) and from dist/. */
const PUBLIC_DIR = fileURLToPath(new URL("../dist/public/", import.meta.url));
const SDK_DIST = dirname(dirname(fileURLToPath(import.meta.resolve("@wattfare/sdk/browser"))));

/**
 * Starts the example app.
 *
 * @example
 * ```ts
 * import { Wattfare } from "@wattfare/sdk/server";
 * const app = await startChatApp({ wattfare: new Wattfare(), port: 3000 });
 * ```
 */
export async function startChatApp(options: ChatAppOptions): Promise<RunningChatApp> {
  const { wattfare } = options;
  const sessions = new Sessions();
  const wattfareUrl = options.browserWattfareUrl ?? wattfare.baseUrl;
  const grantTerms = options.grantTerms ?? DEFAULT_GRANT;
  const monthlyUsd = options.monthlyUsd ?? 1;
  const userOf = (request: Request) => sessions.current(request.headers.get("cookie"));

  const sessionHandler = createSessionHandler(
    (request) => {
      const user = userOf(request);
      return user ? { appUserId: user.appUserId, monthlyUsd } : null;
    },
    { client: wattfare },
  );
  const grantSessionHandler = createGrantSessionHandler(grantTerms, { client: wattfare });

  async function route(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const { pathname } = url;
    if (request.method === "GET") {
      if (pathname === "/") return home(request);
      if (pathname === "/grants") return html(grantsPage, describeTerms(grantTerms));
      if (pathname === "/assets/app.css") return text(STYLESHEET, "text/css");
      const asset = /^\/assets\/([a-z-]+\.js)$/.exec(pathname)?.[1];
      if (asset !== undefined) return file(`${PUBLIC_DIR}${asset}`);
      // The browser SDK, straight from its dist: only the browser entry and the core it imports.
      const sdk = /^\/sdk\/((?:browser|core)\/[a-z-]+\.js)$/.exec(pathname)?.[1];
      if (sdk !== undefined) return file(`${SDK_DIST}/${sdk}`);
      return notFound();
    }
    if (request.method !== "POST") return notFound();
    // Same-origin POSTs only (with SameSite=Lax cookies, this keeps other sites from using ours).
    if (request.headers.get("origin") !== url.origin) {
      return errorJson(403, "forbidden", "Cross-origin requests are not allowed.");
    }
    switch (pathname) {
      case "/login":
        return login(request);
      case "/logout":
        return redirect("/", sessions.signOut(request.headers.get("cookie")));
      case "/api/wattfare/session":
        return sessionHandler(request);
      case "/api/chat": {
        const user = userOf(request);
        if (!user) return errorJson(401, "auth", "Sign in first.");
        const body = await chatBody(request);
        return "error" in body ? body.error : streamChat(wattfare, body, { user: user.appUserId });
      }
      case "/api/grant/session":
        return grantSessionHandler(request);
      case "/api/grant/chat": {
        const body = await chatBody(request);
        if ("error" in body) return body.error;
        if (body.grantToken === undefined)
          return errorJson(400, "invalid_request", "grantToken is required.");
        return streamChat(wattfare, body, { grant: body.grantToken });
      }
      case "/api/grant/status": {
        const grantToken = ((await request.json().catch(() => ({}))) as { grantToken?: unknown }).grantToken;
        if (typeof grantToken !== "string")
          return errorJson(400, "invalid_request", "grantToken is required.");
        try {
          return Response.json(await wattfare.grants.current(grantToken));
        } catch (error) {
          return relayError(error);
        }
      }
      default:
        return notFound();
    }
  }

  async function home(request: Request): Promise<Response> {
    const user = userOf(request);
    if (!user) return html(signInPage);
    // A first view of the budget from the server; the page keeps it current with the browser SDK.
    const status: ConnectionStatus | undefined = await wattfare.status(user.appUserId).catch(() => undefined);
    return html((ctx) => chatPage(ctx, user, status));
  }

  async function login(request: Request): Promise<Response> {
    const form = new URLSearchParams(await request.text());
    const cookie = sessions.signIn(form.get("name") ?? "", form.get("password") ?? "");
    return cookie === undefined ? redirect("/") : redirect("/", cookie);
  }

  function html<A extends unknown[]>(render: (ctx: PageContext, ...args: A) => string, ...args: A): Response {
    const nonce = randomBytes(16).toString("base64");
    const body = render({ nonce, wattfareUrl }, ...args);
    return new Response(body, {
      headers: {
        "content-type": "text/html; charset=utf-8",
        "cache-control": "no-store",
        "content-security-policy": [
          "default-src 'self'",
          `script-src 'self' 'nonce-${nonce}'`,
          `connect-src 'self' ${new URL(wattfareUrl).origin}`,
          "frame-ancestors 'none'",
          "base-uri 'none'",
          "form-action 'self'",
        ].join("; "),
        "referrer-policy": "same-origin",
        "x-content-type-options": "nosniff",
        // No Cross-Origin-Opener-Policy: it would cut the consent popup off from this page.
      },
    });
  }

  const server = createServer(toNodeHandler((request) => route(request)));
  await new Promise<void>((resolve) =>
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", resolve),
  );
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://localhost:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

interface ChatBody {
  model: string;
  messages: ChatCompletionMessageParam[];
  grantToken: string | undefined;
}

/** The page's chat request, checked: a known model and a short, well-formed history. */
async function chatBody(request: Request): Promise<ChatBody | { error: Response }> {
  const invalid = (message: string) => ({ error: errorJson(400, "invalid_request", message) });
  const body = (await request.json().catch(() => undefined)) as
    | { model?: unknown; messages?: unknown; grantToken?: unknown }
    | undefined;
  const model = MODELS.find((m) => m.id === body?.model)?.id;
  if (model === undefined) return invalid("Choose one of the offered models.");
  if (!Array.isArray(body?.messages) || body.messages.length === 0)
    return invalid("Send at least one message.");
  const messages: ChatCompletionMessageParam[] = [];
  for (const message of body.messages.slice(-HISTORY) as unknown[]) {
    const { role, content } = (message ?? {}) as { role?: unknown; content?: unknown };
    if (
      (role !== "user" && role !== "assistant") ||
      typeof content !== "string" ||
      content.length > MAX_CONTENT
    ) {
      return invalid("Each message needs a role (user or assistant) and text of at most 4000 characters.");
    }
    messages.push({ role, content });
  }
  return { model, messages, grantToken: typeof body.grantToken === "string" ? body.grantToken : undefined };
}

/** Streams the completion to the browser as SSE; Wattfare's refusals become JSON errors the page can fix. */
async function streamChat(
  wattfare: Wattfare,
  body: ChatBody,
  payer: { user: string } | { grant: string },
): Promise<Response> {
  try {
    const stream = await wattfare.chat.completions.create(
      { model: body.model, messages: body.messages, stream: true },
      payer,
    );
    return new Response(stream.toReadableStream(), {
      headers: {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        "x-accel-buffering": "no",
      },
    });
  } catch (error) {
    return relayError(error);
  }
}

/** What the page may see of a Wattfare error: the code and message of anything the user can act on. */
function relayError(error: unknown): Response {
  if (!isWattfareError(error)) throw error;
  if (error instanceof APIError && [400, 402, 429].includes(error.status)) {
    const headers: Record<string, string> = {};
    const retryAfter = error.headers.get("retry-after");
    if (retryAfter !== null) headers["retry-after"] = retryAfter;
    return errorJson(error.status, error.code, error.message, headers);
  }
  console.error("[chat-app] Wattfare failed", { code: error.code, message: error.message });
  return errorJson(503, "unavailable", "The AI service is unavailable right now; try again shortly.");
}

function describeTerms(terms: GrantTerms): string {
  const parts = [`up to $${terms.maxUsd.toFixed(2)}`];
  if (terms.maxUses !== undefined) parts.push(`${terms.maxUses} messages`);
  if (terms.expiresInSeconds !== undefined)
    parts.push(`valid ${Math.round(terms.expiresInSeconds / 60)} minutes`);
  return parts.join(", ");
}

function errorJson(
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): Response {
  return Response.json({ error: { code, message } }, { status, headers });
}

function redirect(location: string, cookie?: string): Response {
  const headers = new Headers({ location });
  if (cookie !== undefined) headers.set("set-cookie", cookie);
  return new Response(null, { status: 303, headers });
}

function text(body: string, type: string): Response {
  return new Response(body, {
    headers: { "content-type": `${type}; charset=utf-8`, "cache-control": "no-cache" },
  });
}

async function file(path: string): Promise<Response> {
  const source = await readFile(path, "utf8").catch(() => undefined);
  return source === undefined ? notFound() : text(source, "text/javascript");
}

function notFound(): Response {
  return new Response("Not found", { status: 404, headers: { "content-type": "text/plain; charset=utf-8" } });
}
