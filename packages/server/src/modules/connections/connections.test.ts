import { SignJWT } from "jose";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { usdToNano } from "../../money.js";
import { type ChatHarness, createChatHarness } from "../../testing/chat-harness.js";

const ORIGIN = "http://localhost:5173";
let h: ChatHarness;

beforeEach(async () => {
  h = await createChatHarness();
  await h.store.addOrigin(h.appId, ORIGIN, h.clock.now());
});
afterEach(async () => h.close());

async function sessionToken(appUserId = "alice", secretKey = h.secretKey): Promise<string> {
  const res = await h.app.inject({
    method: "POST",
    url: "/api/v1/sessions",
    headers: { authorization: `Bearer ${secretKey}`, "content-type": "application/json" },
    payload: { appUserId },
  });
  return (res.json() as { token: string }).token;
}

const call = (
  method: "GET" | "POST" | "DELETE" | "OPTIONS",
  token: string | null,
  origin: string | null = ORIGIN,
  body?: unknown,
) =>
  h.app.inject({
    method,
    url: "/api/v1/connections",
    headers: {
      ...(token === null ? {} : { authorization: `Bearer ${token}` }),
      ...(origin === null ? {} : { origin }),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
  });

describe("/api/v1/connections", () => {
  it("reads the token's own user's status from a registered origin, readable cross-origin without credentials", async () => {
    await h.connect("alice", 10);
    const res = await call("GET", await sessionToken());
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ connected: true, limits: { monthlyUsd: 10 }, funding: "ok" });
    expect(res.headers["access-control-allow-origin"]).toBe(ORIGIN);
    expect(res.headers["access-control-allow-credentials"]).toBeUndefined();
    // What the browser SDK reads of an answer: its request id and whether (and when) to retry.
    expect(String(res.headers["access-control-expose-headers"]).split(", ").sort()).toEqual([
      "retry-after",
      "www-authenticate",
      "x-request-id",
      "x-should-retry",
    ]);
  });

  it("answers a preflight for a registered origin and refuses an unregistered one", async () => {
    const ok = await call("OPTIONS", null);
    expect(ok.statusCode).toBe(204);
    expect(ok.headers["access-control-allow-origin"]).toBe(ORIGIN);
    expect(ok.headers["access-control-allow-methods"]).toContain("DELETE");
    expect(ok.headers["access-control-allow-headers"]).toContain("authorization");
    const bad = await call("OPTIONS", null, "https://evil.example");
    expect(bad.statusCode).toBe(403);
    expect(bad.headers["access-control-allow-origin"]).toBeUndefined();
  });

  it.each([
    ["no Origin", null],
    ["Origin: null", "null"],
  ])(
    "refuses a real request with %s with 403 saying the endpoint is for the browser SDK on a registered origin",
    async (_name, origin) => {
      const res = await call("GET", await sessionToken(), origin);
      expect(res.statusCode).toBe(403);
      const error = (res.json() as { error: { code: string; message: string } }).error;
      expect(error.code).toBe("forbidden");
      expect(error.message).toMatch(
        /^No Origin header .*browser SDK.*origin registered for the session's app/,
      );
    },
  );

  it("refuses an unregistered origin with 403 naming it and the command that registers it, never echoing it in a header", async () => {
    const res = await call("GET", await sessionToken(), "https://evil.example");
    expect(res.statusCode).toBe(403);
    const error = (res.json() as { error: { code: string; message: string } }).error;
    expect(error.code).toBe("forbidden");
    expect(error.message).toBe(
      `Origin "https://evil.example" is not registered for the session's app; register it with: wattfare apps origins add ${h.appId} https://evil.example`,
    );
    expect(JSON.stringify(res.headers)).not.toContain("evil.example");
  });

  it.each(["GET", "OPTIONS"])(
    "refuses a %s request whose Origin header came twice with 403 saying so, not that the origin is unregistered",
    async (method) => {
      const token = await sessionToken();
      // Over the wire: node:http joins the two headers into one value, as it does for a real client.
      const { request } = await import("node:http");
      const { host } = new URL(h.url);
      const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request(`${h.url}/api/v1/connections`, {
          method,
          headers: ["host", host, "authorization", `Bearer ${token}`, "origin", ORIGIN, "origin", ORIGIN],
        });
        req.on("response", (response) => {
          let body = "";
          response.setEncoding("utf8");
          response.on("data", (chunk: string) => {
            body += chunk;
          });
          response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
        });
        req.on("error", reject);
        req.end();
      });
      expect(res.status).toBe(403);
      expect((JSON.parse(res.body) as { error: { message: string } }).error.message).toBe(
        `The Origin header names more than one origin ("${ORIGIN}, ${ORIGIN}"): it was sent more than once, or as a list, where a browser sends exactly one, its page's.`,
      );
    },
  );

  it("says an origin that could never be registered cannot be, and why", async () => {
    const res = await call("GET", await sessionToken(), "http://app.example");
    expect(res.statusCode).toBe(403);
    expect((res.json() as { error: { message: string } }).error.message).toBe(
      `Origin "http://app.example" is not registered for the session's app, and cannot be (http is only allowed for localhost and 127.0.0.1; use https).`,
    );
  });

  it("lets the browser read an error raised before the handler, such as a body that is not JSON", async () => {
    const res = await h.app.inject({
      method: "POST",
      url: "/api/v1/connections",
      headers: {
        authorization: `Bearer ${await sessionToken()}`,
        origin: ORIGIN,
        "content-type": "application/json",
      },
      payload: "{bad",
    });
    expect(res.statusCode).toBe(400);
    expect((res.json() as { error: { code: string } }).error.code).toBe("invalid_request");
    expect(res.headers["access-control-allow-origin"]).toBe(ORIGIN);
  });

  it.each(["POST", "DELETE"] as const)(
    "answers a %s with an invalid session token 401 before reading its body, malformed or too large",
    async (method) => {
      const send = (payload: string) =>
        h.app.inject({
          method,
          url: "/api/v1/connections",
          headers: {
            authorization: "Bearer eyJnot.a.token",
            origin: ORIGIN,
            "content-type": "application/json",
          },
          payload,
        });
      for (const res of [await send("{bad"), await send(`{"pad":"${"x".repeat(70 * 1024)}"}`)]) {
        expect(res.statusCode).toBe(401);
        expect((res.json() as { error: { code: string } }).error.code).toBe("auth");
        expect(res.headers["access-control-allow-origin"]).toBe(ORIGIN);
      }
    },
  );

  it("closes the connection after refusing a request whose body it did not read, and keeps it otherwise", async () => {
    // Headers promise a 10 MiB body of which one byte comes: the refusal must neither wait for nor drain it.
    const { request } = await import("node:http");
    const refuse = (headers: Record<string, string>, body: string | undefined) =>
      new Promise<{ status: number; connection: string | undefined }>((resolve, reject) => {
        const req = request(`${h.url}/api/v1/connections`, {
          method: body === undefined ? "GET" : "POST",
          headers: { authorization: "Bearer eyJnot.a.token", origin: ORIGIN, ...headers },
        });
        req.on("response", (res) => {
          resolve({ status: res.statusCode ?? 0, connection: res.headers.connection });
          res.resume();
          req.destroy();
        });
        req.on("error", reject);
        if (body === undefined) req.end();
        else req.write(body);
      });
    const promised = { "content-type": "application/json", "content-length": String(10 * 1024 * 1024) };
    expect(await refuse(promised, "{")).toEqual({ status: 401, connection: "close" });
    expect(await refuse({}, undefined)).toEqual({ status: 401, connection: "keep-alive" });
  });

  it.each(["POST", "DELETE"] as const)(
    "answers a %s from an unregistered origin 403 before reading its body",
    async (method) => {
      const res = await h.app.inject({
        method,
        url: "/api/v1/connections",
        headers: {
          authorization: `Bearer ${await sessionToken()}`,
          origin: "https://evil.example",
          "content-type": "application/json",
        },
        payload: "{bad",
      });
      expect(res.statusCode).toBe(403);
      expect((res.json() as { error: { message: string } }).error.message).toMatch(
        /^Origin "https:\/\/evil.example" is not registered/,
      );
    },
  );

  it.each([
    ["DELETE", "application/json", 204],
    ["POST", "application/json", 200],
    ["DELETE", "text/plain;charset=UTF-8", 204],
    ["POST", "text/plain;charset=UTF-8", 200],
    ["POST", "application/x-www-form-urlencoded", 200],
  ] as const)(
    "takes a %s with an empty body as one without a body, whatever its Content-Type (%s)",
    async (method, contentType, status) => {
      await h.connect("alice", 10);
      const res = await h.app.inject({
        method,
        url: "/api/v1/connections",
        headers: {
          authorization: `Bearer ${await sessionToken()}`,
          origin: ORIGIN,
          "content-type": contentType,
        },
        payload: "",
      });
      expect(res.statusCode).toBe(status);
    },
  );

  it.each(["text/plain;charset=UTF-8", "application/x-www-form-urlencoded"])(
    "refuses a body sent as %s with 400 saying Content-Type must be application/json, as the chat route does",
    async (contentType) => {
      await h.connect("alice", 10);
      const res = await h.app.inject({
        method: "POST",
        url: "/api/v1/connections",
        headers: {
          authorization: `Bearer ${await sessionToken()}`,
          origin: ORIGIN,
          "content-type": contentType,
        },
        payload: '{"monthlyUsd":2}',
      });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toEqual({
        error: {
          code: "invalid_request",
          message: "Content-Type must be application/json.",
          type: "invalid_request_error",
        },
      });
      expect(res.headers["access-control-allow-origin"]).toBe(ORIGIN);
      expect((await h.store.chatAccount(h.appId, "alice"))?.connection.capNano).toBe(usdToNano(10, "down"));
    },
  );

  it("refuses an origin registered only for another app", async () => {
    const other = await h.createApp("Other", ["https://other.example"]);
    void other;
    const res = await call("GET", await sessionToken(), "https://other.example");
    expect(res.statusCode).toBe(403);
  });

  it("takes only a bearer session token: a cookie or the secret key gets 401", async () => {
    const cookieOnly = await h.app.inject({
      method: "GET",
      url: "/api/v1/connections",
      headers: { origin: ORIGIN, cookie: "wf_session=abc" },
    });
    expect(cookieOnly.statusCode).toBe(401);
    expect((await call("GET", h.secretKey)).statusCode).toBe(401);
  });

  it("names the Bearer scheme in WWW-Authenticate on a 401, readable by the page's script", async () => {
    const res = await call("GET", "not-a-token");
    expect(res.statusCode).toBe(401);
    expect(res.headers["www-authenticate"]).toBe('Bearer realm="wattfare"');
    expect(res.headers["access-control-allow-origin"]).toBe(ORIGIN);
    expect(String(res.headers["access-control-expose-headers"]).split(", ")).toContain("www-authenticate");
  });

  it("refuses an expired token, a forged one and one signed with another secret", async () => {
    const token = await sessionToken();
    h.clock.advance(601_000);
    expect((await call("GET", token)).statusCode).toBe(401);
    h.clock.advance(-601_000);
    const [head, payload] = token.split(".");
    const forgedPayload = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(payload ?? "", "base64url").toString()), sub: "mallory" }),
    ).toString("base64url");
    expect((await call("GET", `${head}.${forgedPayload}.${token.split(".")[2]}`)).statusCode).toBe(401);
    const foreign = await new SignJWT({ typ: "user", app: h.appId, jti: "x" })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setSubject("alice")
      .setIssuedAt(Math.floor(h.clock.now() / 1000))
      .setExpirationTime(Math.floor(h.clock.now() / 1000) + 600)
      .setIssuer(h.config.publicUrl)
      .setAudience("wattfare-session")
      .sign(new TextEncoder().encode("another-secret-another-secret-another-secret"));
    expect((await call("GET", foreign)).statusCode).toBe(401);
  });

  it("refuses tokens issued before the app's key was rotated as compromised", async () => {
    const token = await sessionToken();
    await h.store.rotateAppKey(h.appId, Buffer.alloc(32, 9), h.clock.now(), h.clock.now(), true);
    h.clock.advance(1000);
    expect((await call("GET", token)).statusCode).toBe(401);
  });

  it("answers 403 for a first approval or a raise, and never changes the cap", async () => {
    const token = await sessionToken();
    const first = await call("POST", token, ORIGIN, { monthlyUsd: 5 });
    expect(first.statusCode).toBe(403);
    expect((first.json() as { error: { message: string } }).error.message).toBe(
      "payer consent required — open the consent popup",
    );
    await h.connect("alice", 10);
    expect((await call("POST", token, ORIGIN, { monthlyUsd: 11 })).statusCode).toBe(403);
    expect((await h.store.chatAccount(h.appId, "alice"))?.connection.capNano).toBe(usdToNano(10, "down"));
  });

  it("lowers the cap, and treats an empty body on an existing connection as a no-op", async () => {
    await h.connect("alice", 10);
    const token = await sessionToken();
    const noop = await call("POST", token, ORIGIN, {});
    expect(noop.statusCode).toBe(200);
    expect((noop.json() as { limits: { monthlyUsd: number } }).limits.monthlyUsd).toBe(10);
    const lowered = await call("POST", token, ORIGIN, { monthlyUsd: 2.5 });
    expect(lowered.statusCode).toBe(200);
    expect((lowered.json() as { limits: { monthlyUsd: number } }).limits.monthlyUsd).toBe(2.5);
    expect((await call("POST", token, ORIGIN, { monthlyUsd: -1 })).statusCode).toBe(400);
    expect((await call("POST", token, ORIGIN, { monthlyUsd: 1, extra: 1 })).statusCode).toBe(400);
  });

  it("revokes with 204, after which chat answers 402 not_connected at once", async () => {
    await h.connect("alice", 10);
    const ok = await h.post(
      { model: "openai/gpt-4o-mini", messages: [{ role: "user", content: "hi" }] },
      { "x-wattfare-user": "alice" },
    );
    expect(ok.status).toBe(200);
    await ok.arrayBuffer();
    const res = await call("DELETE", await sessionToken());
    expect(res.statusCode).toBe(204);
    const after = await h.post(
      { model: "openai/gpt-4o-mini", messages: [{ role: "user", content: "hi" }] },
      { "x-wattfare-user": "alice" },
    );
    expect(after.status).toBe(402);
    expect(((await after.json()) as { error: { code: string } }).error.code).toBe("not_connected");
    expect(((await call("GET", await sessionToken())).json() as { connected: boolean }).connected).toBe(
      false,
    );
  });

  it("only ever touches the token's own user", async () => {
    await h.connect("alice", 10);
    await h.connect("bob", 10);
    await call("DELETE", await sessionToken("alice"));
    expect((await h.store.chatAccount(h.appId, "bob"))?.connection.revokedAt).toBeNull();
  });
});
