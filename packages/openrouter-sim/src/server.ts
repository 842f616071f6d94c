/** `startSimulator`: one node:http server, a hand-written router, no framework on the hot path. */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { handleCredits, handleGeneration, handleKey } from "./account-routes.js";
import { handleChatCompletions } from "./chat-route.js";
import { createControl } from "./control.js";
import { CORS_HEADERS, sendError, sendJson } from "./http-util.js";
import { modelsResponseJson } from "./models.js";
import {
  handleAuthorizeDecision,
  handleAuthorizePage,
  handleKeyExchange,
  OAuthStore,
} from "./oauth-routes.js";
import { SimState } from "./state.js";
import type { Simulator, SimulatorOptions } from "./types.js";

type Route = (req: IncomingMessage, res: ServerResponse, query: URLSearchParams) => void | Promise<void>;

const PREFLIGHT_HEADERS = {
  ...CORS_HEADERS,
  "access-control-allow-methods": "GET, POST, OPTIONS",
  "access-control-allow-headers": "authorization, content-type, http-referer, x-title, x-openrouter-title",
  "access-control-max-age": "86400",
};

function buildRoutes(sim: SimState): Map<string, Partial<Record<string, Route>>> {
  const oauth = new OAuthStore();
  const key: Route = (req, res) => handleKey(sim, req, res);
  const models: Route = (_req, res, query) =>
    sendJson(res, 200, modelsResponseJson(query.get("output_modalities")));
  return new Map<string, Partial<Record<string, Route>>>([
    ["/api/v1/chat/completions", { POST: (req, res) => handleChatCompletions(sim, req, res) }],
    ["/api/v1/models", { GET: models }],
    ["/api/v1/models/user", { GET: models }],
    ["/api/v1/generation", { GET: (req, res, query) => handleGeneration(sim, req, res, query) }],
    ["/api/v1/key", { GET: key }],
    ["/api/v1/auth/key", { GET: key }],
    ["/api/v1/credits", { GET: (req, res) => handleCredits(sim, req, res) }],
    ["/api/v1/auth/keys", { POST: (req, res) => handleKeyExchange(sim, oauth, req, res) }],
    [
      "/auth",
      {
        GET: (_req, res, query) => handleAuthorizePage(oauth, res, query),
        POST: (req, res) => handleAuthorizeDecision(sim, oauth, req, res),
      },
    ],
  ]);
}

/**
 * Starts a simulator. Listens on `options.port` (default 0: an ephemeral port) and resolves once ready.
 *
 * @example
 * const sim = await startSimulator();
 * const key = sim.control.createKey({ credits: 5 });
 * const client = new OpenAI({ apiKey: key, baseURL: sim.apiUrl });
 */
export async function startSimulator(options: SimulatorOptions = {}): Promise<Simulator> {
  const sim = new SimState(options);
  const routes = buildRoutes(sim);

  const server = createServer((req, res) => {
    const rawUrl = req.url ?? "/";
    const queryAt = rawUrl.indexOf("?");
    const path = queryAt === -1 ? rawUrl : rawUrl.slice(0, queryAt);
    const methods = routes.get(path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path);
    if (!methods) return sendError(res, 404, "Not Found");
    if (req.method === "OPTIONS") {
      res.writeHead(204, PREFLIGHT_HEADERS);
      res.end();
      return;
    }
    const route = methods[req.method ?? "GET"];
    if (!route)
      return sendError(res, 405, "Method Not Allowed", {
        headers: { allow: Object.keys(methods).join(", ") },
      });
    const query = new URLSearchParams(queryAt === -1 ? "" : rawUrl.slice(queryAt + 1));
    const result = route(req, res, query);
    if (result instanceof Promise) {
      result.catch((error: unknown) => {
        // A bug in the simulator must fail the test that hit it loudly, not hang it.
        console.error("openrouter-sim: internal error", error);
        if (!res.headersSent) sendError(res, 500, "Internal Server Error");
        else res.destroy();
      });
    }
  });
  // Benchmarks hold connections open between bursts; OpenRouter's edge keeps them far longer than 5 s.
  server.keepAliveTimeout = 65_000;

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;

  return {
    url,
    apiUrl: `${url}/api/v1`,
    control: createControl(sim),
    close: () =>
      new Promise<void>((resolve, reject) => {
        sim.clearAllTimers();
        server.close((error) => (error ? reject(error) : resolve()));
        // Hung and streaming requests would otherwise keep close() waiting forever.
        server.closeAllConnections();
      }),
  };
}
