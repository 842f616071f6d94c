/**
 * `createSessionHandler` mounted in Hono, node:http and Fastify in front of a real Wattfare. The app's
 * own sign-in is faked with a `uid` cookie (or a framework's request context).
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server } from "node:http";
import { type ChatHarness, createChatHarness } from "@wattfare/server/testing";
import Fastify, { type FastifyRequest } from "fastify";
import { Hono } from "hono";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Logger } from "../core/logger.js";
import type { Session } from "../core/types.js";
import { Wattfare } from "./client.js";
import { toFetchRequest, toNodeHandler } from "./node.js";
import { createSessionHandler, type SessionUser } from "./session-handler.js";

let h: ChatHarness;
let wattfare: Wattfare;
let logged: { message: string; fields: Record<string, unknown> | undefined }[];

beforeEach(async () => {
  h = await createChatHarness();
  logged = [];
  const logger: Logger = {
    debug() {},
    info() {},
    warn() {},
    error: (message, fields) => logged.push({ message, fields }),
  };
  wattfare = new Wattfare({ secretKey: h.secretKey, baseUrl: h.url, logger, maxRetries: 0 });
});
afterEach(async () => {
  vi.unstubAllEnvs();
  await h.close();
});

/** The app's sign-in, faked: the `uid` cookie names the signed-in user. */
function userFromCookie(request: Request): SessionUser | null {
  const uid = /(?:^|;\s*)uid=([^;]+)/.exec(request.headers.get("cookie") ?? "")?.[1];
  return uid ? { appUserId: uid, monthlyUsd: 25 } : null;
}

function claimsOf(session: Session): Record<string, unknown> {
  return JSON.parse(Buffer.from(session.token.split(".")[1] ?? "", "base64url").toString("utf8")) as Record<
    string,
    unknown
  >;
}

const post = (headers: Record<string, string> = {}, body?: string): RequestInit => ({
  method: "POST",
  headers,
  ...(body === undefined ? {} : { body }),
});

describe("in Hono", () => {
  function app() {
    const handler = createSessionHandler(userFromCookie, { client: wattfare });
    const hono = new Hono();
    hono.post("/api/wattfare/session", (c) => handler(c.req.raw));
    hono.get("/api/wattfare/session", (c) => handler(c.req.raw));
    return hono;
  }

  it("mints a token for the signed-in user, with their limit, uncacheable", async () => {
    const res = await app().request("/api/wattfare/session", post({ cookie: "uid=alice" }));
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.headers.get("content-type")).toBe("application/json");
    const session = (await res.json()) as Session;
    expect(claimsOf(session)).toMatchObject({ sub: "alice", app: h.appId, lim: 25 });
    expect(session.expiresAt).toBeGreaterThan(0);
  });

  it("ignores any user id the browser puts in the body", async () => {
    const res = await app().request(
      "/api/wattfare/session",
      post(
        { cookie: "uid=alice", "content-type": "application/json" },
        JSON.stringify({ appUserId: "mallory" }),
      ),
    );
    expect(claimsOf((await res.json()) as Session).sub).toBe("alice");
  });

  it("answers 401 auth when nobody is signed in", async () => {
    const res = await app().request("/api/wattfare/session", post());
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: { code: "auth", message: "Sign in first." } });
  });

  it("answers 405 to a GET, since minting is not a safe request", async () => {
    const res = await app().request("/api/wattfare/session", { headers: { cookie: "uid=alice" } });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("POST");
  });

  it("lets getUser read the user from Hono's context", async () => {
    const handler = createSessionHandler<{ userId: string | undefined }>(
      (_request, context) => (context.userId ? { appUserId: context.userId } : null),
      { client: wattfare },
    );
    const hono = new Hono<{ Variables: { userId: string } }>();
    hono.use(async (c, next) => {
      c.set("userId", "carol");
      await next();
    });
    hono.post("/session", (c) => handler(c.req.raw, { userId: c.get("userId") }));
    const res = await hono.request("/session", post());
    expect(claimsOf((await res.json()) as Session).sub).toBe("carol");
  });

  it("configures its own client from the environment, failing at creation without a key", async () => {
    vi.stubEnv("WATTFARE_SECRET_KEY", undefined);
    expect(() => createSessionHandler(userFromCookie)).toThrow(/WATTFARE_SECRET_KEY/);
    vi.stubEnv("WATTFARE_SECRET_KEY", h.secretKey);
    vi.stubEnv("WATTFARE_BASE_URL", h.url);
    const handler = createSessionHandler(userFromCookie);
    const res = await handler(new Request("http://app.test/session", post({ cookie: "uid=frank" })));
    expect(claimsOf((await res.json()) as Session).sub).toBe("frank");
  });

  it("passes Wattfare's 429 on with Retry-After", async () => {
    await h.store.setAppLimits(h.appId, { sessionsPerMinute: 1 });
    expect((await app().request("/api/wattfare/session", post({ cookie: "uid=alice" }))).status).toBe(200);
    const res = await app().request("/api/wattfare/session", post({ cookie: "uid=alice" }));
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("60");
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("rate_limited");
  });

  it("answers 500 without detail for a wrong secret key, and logs why", async () => {
    const wrong = new Wattfare({
      secretKey: `sk_live_${h.appId}_${"x".repeat(43)}`,
      baseUrl: h.url,
      logger: {
        debug() {},
        info() {},
        warn() {},
        error: (message, fields) => logged.push({ message, fields }),
      },
    });
    const handler = createSessionHandler(userFromCookie, { client: wrong });
    const res = await handler(new Request("http://app.test/session", post({ cookie: "uid=alice" })));
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({
      error: { code: "internal", message: "Could not create a Wattfare session." },
    });
    expect(logged).toHaveLength(1);
    expect(logged[0]?.fields).toMatchObject({ code: "auth" });
    expect(String(logged[0]?.fields?.requestId)).toMatch(/^req_/);
  });

  it("answers 503 when Wattfare cannot be reached", async () => {
    const unreachable = new Wattfare({
      secretKey: h.secretKey,
      baseUrl: "http://127.0.0.1:9",
      maxRetries: 0,
      logger: {
        debug() {},
        info() {},
        warn() {},
        error: (message, fields) => logged.push({ message, fields }),
      },
    });
    const handler = createSessionHandler(userFromCookie, { client: unreachable });
    const res = await handler(new Request("http://app.test/session", post({ cookie: "uid=alice" })));
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("unavailable");
    expect(logged[0]?.fields).toMatchObject({ code: "connection_error" });
  });

  it("lets an error thrown by getUser reach the framework", async () => {
    const handler = createSessionHandler(
      () => {
        throw new Error("session store down");
      },
      { client: wattfare },
    );
    await expect(handler(new Request("http://app.test/session", post()))).rejects.toThrow(
      "session store down",
    );
  });
});

describe("in node:http", () => {
  let server: Server;
  afterEach(async () => new Promise<void>((resolve) => server.close(() => resolve())));

  async function listen(listener: Parameters<typeof createServer>[1]): Promise<string> {
    server = createServer(listener);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    return `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  }

  it("mints a token through toNodeHandler, reading the user from the Node request", async () => {
    const handler = createSessionHandler<IncomingMessage>(
      (_request, req) =>
        req.headers["x-test-user"] ? { appUserId: String(req.headers["x-test-user"]) } : null,
      { client: wattfare },
    );
    const url = await listen(toNodeHandler(handler));
    const res = await fetch(`${url}/api/wattfare/session`, post({ "x-test-user": "dave" }));
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(claimsOf((await res.json()) as Session).sub).toBe("dave");
    expect((await fetch(`${url}/api/wattfare/session`, post())).status).toBe(401);
  });

  it("hands the handler the method, URL, headers and an unread body", async () => {
    let seen: { method: string; url: string; cookie: string | null; body: string } | undefined;
    const url = await listen(
      toNodeHandler(async (request) => {
        seen = {
          method: request.method,
          url: request.url,
          cookie: request.headers.get("cookie"),
          body: await request.text(),
        };
        return new Response(null, { status: 204, headers: { "set-cookie": "a=1" } });
      }),
    );
    const res = await fetch(`${url}/path?q=1`, post({ cookie: "uid=x" }, "hello"));
    expect(res.status).toBe(204);
    expect(res.headers.get("set-cookie")).toBe("a=1");
    expect(seen).toEqual({ method: "POST", url: `${url}/path?q=1`, cookie: "uid=x", body: "hello" });
  });

  it("answers 400 to a request a Fetch Request cannot hold (TRACE), and goes on serving", async () => {
    const url = new URL(await listen(toNodeHandler(async () => new Response("ok"))));
    const traced = await new Promise<number | undefined>((resolve, reject) => {
      const req = httpRequest({ host: url.hostname, port: url.port, method: "TRACE", path: "/" }, (res) => {
        res.resume();
        resolve(res.statusCode);
      });
      req.on("error", reject);
      req.end();
    });
    expect(traced).toBe(400);
    expect(await (await fetch(url)).text()).toBe("ok");
  });

  it("answers a bare 500 and reports the error when the handler throws", async () => {
    const errors: unknown[] = [];
    const url = await listen(
      toNodeHandler(
        async () => {
          throw new Error("boom");
        },
        { onError: (error) => errors.push(error) },
      ),
    );
    const res = await fetch(url, post());
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({ error: { code: "internal", message: "Internal error." } });
    expect(errors).toHaveLength(1);
  });
});

describe("in Fastify", () => {
  it("mints a token, with the user taken from Fastify's request", async () => {
    const fastify = Fastify();
    fastify.decorateRequest("userId", null);
    fastify.addHook("onRequest", async (request) => {
      (request as FastifyRequest & { userId: string | null }).userId = request.headers.cookie?.includes(
        "uid=erin",
      )
        ? "erin"
        : null;
    });
    const handler = createSessionHandler<FastifyRequest>(
      (_request, request) => {
        const userId = (request as FastifyRequest & { userId: string | null }).userId;
        return userId ? { appUserId: userId } : null;
      },
      { client: wattfare },
    );
    fastify.post("/api/wattfare/session", async (request, reply) =>
      reply.send(await handler(toFetchRequest(request.raw, reply.raw), request)),
    );
    try {
      // A parsed JSON body must not trouble the handler: Fastify has already read the stream.
      const ok = await fastify.inject({
        method: "POST",
        url: "/api/wattfare/session",
        headers: { cookie: "uid=erin", "content-type": "application/json" },
        payload: { ignored: true },
      });
      expect(ok.statusCode).toBe(200);
      expect(ok.headers["cache-control"]).toBe("no-store");
      expect(claimsOf(ok.json<Session>()).sub).toBe("erin");
      const anonymous = await fastify.inject({ method: "POST", url: "/api/wattfare/session" });
      expect(anonymous.statusCode).toBe(401);
    } finally {
      await fastify.close();
    }
  });
});
