import { decodeJwt, decodeProtectedHeader } from "jose";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createHarness, type Harness } from "../../testing/harness.js";

let h: Harness;
let app: { appId: string; secretKey: string };

beforeEach(async () => {
  h = await createHarness();
  app = await h.createApp();
});
afterEach(async () => h.close());

const post = (body: unknown, key = app.secretKey, contentType = "application/json") =>
  h.app.inject({
    method: "POST",
    url: "/api/v1/sessions",
    headers: { authorization: `Bearer ${key}`, "content-type": contentType },
    payload: typeof body === "string" ? body : JSON.stringify(body),
  });

describe("POST /api/v1/sessions", () => {
  it("mints an HS256 session token for the app's user that expires in 10 minutes", async () => {
    const res = await post({ appUserId: "user_123", requestLimit: { monthlyUsd: 20 } });
    expect(res.statusCode).toBe(200);
    const { token, expiresAt } = res.json() as { token: string; expiresAt: number };
    const nowSeconds = Math.floor(h.clock.now() / 1000);
    expect(expiresAt).toBe(nowSeconds + 600);
    expect(decodeProtectedHeader(token).alg).toBe("HS256");
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({
      typ: "user",
      sub: "user_123",
      app: app.appId,
      lim: 20,
      iat: nowSeconds,
      exp: expiresAt,
    });
    expect(typeof claims.jti).toBe("string");
    expect(res.headers["x-request-id"]).toMatch(/^req_[0-9a-f]{32}$/);
  });

  it.each(["bearer", "BEARER"])(
    "accepts the authorization scheme spelled %s, as HTTP allows",
    async (scheme) => {
      const res = await h.app.inject({
        method: "POST",
        url: "/api/v1/sessions",
        headers: { authorization: `${scheme} ${app.secretKey}`, "content-type": "application/json" },
        payload: JSON.stringify({ appUserId: "user_123" }),
      });
      expect(res.statusCode).toBe(200);
    },
  );

  it("omits the limit claim when no requestLimit is asked for", async () => {
    const res = await post({ appUserId: "user_123" });
    expect(res.statusCode).toBe(200);
    expect(decodeJwt((res.json() as { token: string }).token).lim).toBeUndefined();
  });

  it.each([
    ["a missing appUserId", {}],
    ["an empty appUserId", { appUserId: "" }],
    ["an appUserId with a space", { appUserId: "a b" }],
    ["an appUserId of 257 characters", { appUserId: "x".repeat(257) }],
    ["a negative monthlyUsd", { appUserId: "u", requestLimit: { monthlyUsd: -1 } }],
    ["a zero monthlyUsd", { appUserId: "u", requestLimit: { monthlyUsd: 0 } }],
    ["a monthlyUsd above the server maximum", { appUserId: "u", requestLimit: { monthlyUsd: 1_000_001 } }],
    ["a string monthlyUsd", { appUserId: "u", requestLimit: { monthlyUsd: "5" } }],
    ["an unknown field", { appUserId: "u", extra: true }],
  ])("rejects %s with 400 invalid_request naming the field", async (_name, body) => {
    const res = await post(body);
    expect(res.statusCode).toBe(400);
    const error = (res.json() as { error: { code: string; message: string } }).error;
    expect(error.code).toBe("invalid_request");
    expect(error.message.length).toBeGreaterThan(5);
  });

  it.each([
    ["requestLimit.monthlyUsd", { appUserId: "u", requestLimit: { monthlyUsd: 1e-10 } }],
    ["grant.maxUsd", { grant: { maxUsd: 1e-10 } }],
  ])(
    "rejects %s below one nano-dollar (stored in nano-USD, it would be zero) with 400 naming the field",
    async (param, body) => {
      const res = await post(body);
      expect(res.statusCode).toBe(400);
      expect((res.json() as { error: unknown }).error).toEqual({
        code: "invalid_request",
        message: `${param}: must be at least 0.000000001`,
        param,
        type: "invalid_request_error",
      });
      const smallest = JSON.parse(JSON.stringify(body).replace("1e-10", "1e-9")) as unknown;
      expect((await post(smallest)).statusCode).toBe(200);
    },
  );

  it.each([
    [
      "a top-level field",
      { userId: "u" },
      "userId",
      "userId: unknown field; accepted here: appUserId, requestLimit, grant",
    ],
    [
      "several fields",
      { appUserId: "u", userId: "u", user: "u" },
      "userId",
      "userId: unknown field (also unknown: user); accepted here: appUserId, requestLimit, grant",
    ],
    [
      "a nested field",
      { appUserId: "u", requestLimit: { monthlyUsd: 5, usd: 5 } },
      "requestLimit.usd",
      "requestLimit.usd: unknown field; accepted here: monthlyUsd",
    ],
    [
      "a field of the grant",
      { grant: { maxUsd: 1, uses: 3 } },
      "grant.uses",
      "grant.uses: unknown field; accepted here: maxUsd, maxUses, expiresInSeconds",
    ],
  ])(
    "names an unknown field, %s, in param and in the message, with the accepted ones",
    async (_name, body, param, message) => {
      const res = await post(body);
      expect(res.statusCode).toBe(400);
      expect((res.json() as { error: unknown }).error).toEqual({
        code: "invalid_request",
        message,
        param,
        type: "invalid_request_error",
      });
    },
  );

  it.each([
    ["no body at all", undefined],
    ["a JSON array", "[]"],
    ["JSON null", "null"],
  ])("says plainly that a JSON object body is required for %s", async (_name, payload) => {
    const res = await h.app.inject({
      method: "POST",
      url: "/api/v1/sessions",
      headers: {
        authorization: `Bearer ${app.secretKey}`,
        ...(payload === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(payload === undefined ? {} : { payload }),
    });
    expect(res.statusCode).toBe(400);
    expect((res.json() as { error: unknown }).error).toEqual({
      code: "invalid_request",
      message: "The request body must be a JSON object (Content-Type: application/json).",
      param: "body",
      type: "invalid_request_error",
    });
  });

  it("rejects malformed JSON with 400 and a clear message, never a 500", async () => {
    const res = await post("{not json");
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({
      error: {
        code: "invalid_request",
        message: "The request body is not valid JSON.",
        type: "invalid_request_error",
      },
    });
  });

  it("rejects a non-JSON content type with 400", async () => {
    const res = await post("appUserId=u", app.secretKey, "application/x-www-form-urlencoded");
    expect(res.statusCode).toBe(400);
    expect((res.json() as { error: { code: string } }).error.code).toBe("invalid_request");
  });

  it("rejects a body over 64 KiB with 413 payload_too_large naming the limit", async () => {
    const res = await post({ appUserId: "u", pad: "x".repeat(70 * 1024) });
    expect(res.statusCode).toBe(413);
    expect((res.json() as { error: { code: string; message: string } }).error).toMatchObject({
      code: "payload_too_large",
      message: "The request body is larger than this endpoint accepts (at most 64 KiB).",
    });
  });

  it.each([
    ["no Authorization header", undefined],
    ["a malformed key", "Bearer sk_live_nope"],
    ["a key with a wrong secret", "WRONG"],
    ["a basic auth header", "Basic dXNlcjpwYXNz"],
    ["a well-formed key of an app that does not exist", `Bearer sk_live_appnotthere_${"A".repeat(43)}`],
  ])("answers 401 auth for %s without saying why", async (_name, header) => {
    const authorization = header === "WRONG" ? `Bearer ${app.secretKey.slice(0, -4)}AAAA` : header;
    const res = await h.app.inject({
      method: "POST",
      url: "/api/v1/sessions",
      headers: { "content-type": "application/json", ...(authorization ? { authorization } : {}) },
      payload: JSON.stringify({ appUserId: "u" }),
    });
    expect(res.statusCode).toBe(401);
    expect((res.json() as { error: { code: string; message: string } }).error).toMatchObject({
      code: "auth",
      message:
        "Missing or invalid secret key. Send Authorization: Bearer sk_live_… (your app's secret key, printed by `wattfare apps create`).",
    });
    expect(res.body).not.toContain(app.secretKey.slice(20));
  });

  it.each([
    [
      "an OpenRouter key",
      `sk-or-v1-${"0".repeat(64)}`,
      /^That is an OpenRouter API key, not a Wattfare secret key/,
    ],
    ["a session token", "SESSION", /^That is a session token \(a JWT from POST \/api\/v1\/sessions\)/],
    [
      "a grant token",
      `gt_${"a".repeat(43)}`,
      /^That is a grant token: send it in the x-wattfare-grant header/,
    ],
    [
      "an OpenAI key",
      `sk-proj-${"x".repeat(40)}`,
      /^That looks like a model provider's API key .*OPENAI_API_KEY/,
    ],
  ])(
    "answers 401 auth for %s as the secret key saying what it is and what to send instead",
    async (_name, token, message) => {
      const bearer =
        token === "SESSION" ? ((await post({ appUserId: "u" })).json() as { token: string }).token : token;
      const res = await post({ appUserId: "u" }, bearer);
      expect(res.statusCode).toBe(401);
      const error = (res.json() as { error: { code: string; message: string } }).error;
      expect(error.code).toBe("auth");
      expect(error.message).toMatch(message);
      expect(error.message).toContain("Send Authorization: Bearer sk_live_…");
    },
  );

  it("rejects the 121st session request in a minute with 429 and Retry-After, then admits after the window", async () => {
    for (let i = 0; i < 120; i++) {
      h.clock.advance(100);
      expect((await post({ appUserId: `u${i}` })).statusCode).toBe(200);
    }
    const limited = await post({ appUserId: "u" });
    expect(limited.statusCode).toBe(429);
    expect((limited.json() as { error: { code: string } }).error.code).toBe("rate_limited");
    // The oldest counted request is 11.9 s old, so it leaves the window in 48.1 s: rounded up to 49.
    expect(limited.headers["retry-after"]).toBe("49");
    h.clock.advance(49_000);
    expect((await post({ appUserId: "u" })).statusCode).toBe(200);
  });

  it("honours a per-app override of the session rate limit", async () => {
    await h.store.setAppLimits(app.appId, { sessionsPerMinute: 2 });
    expect((await post({ appUserId: "a" })).statusCode).toBe(200);
    expect((await post({ appUserId: "b" })).statusCode).toBe(200);
    expect((await post({ appUserId: "c" })).statusCode).toBe(429);
  });

  it("counts an authenticated request whose body is refused toward RL_SESSIONS, as any other answer", async () => {
    await h.store.setAppLimits(app.appId, { sessionsPerMinute: 2 });
    expect((await post("{not json")).statusCode).toBe(400);
    expect((await post("appUserId=u", app.secretKey, "text/csv")).statusCode).toBe(400);
    const limited = await post({ appUserId: "u" });
    expect(limited.statusCode).toBe(429);
    expect(limited.headers["retry-after"]).toBe("60");
  });

  it("names the Bearer scheme in WWW-Authenticate on a 401, as RFC 9110 requires", async () => {
    const res = await post({ appUserId: "u" }, "sk_live_nope");
    expect(res.statusCode).toBe(401);
    expect(res.headers["www-authenticate"]).toBe('Bearer realm="wattfare"');
    expect((await post({ appUserId: "u" })).headers["www-authenticate"]).toBeUndefined();
  });

  it("answers a request without a valid key 401 before judging its body", async () => {
    const res = await post("{not json", "sk_live_nope");
    expect(res.statusCode).toBe(401);
    expect((res.json() as { error: { code: string } }).error.code).toBe("auth");
    const large = await post({ appUserId: "u", pad: "x".repeat(70 * 1024) }, "sk_live_nope");
    expect(large.statusCode).toBe(401);
  });

  it("keeps an app's rate limit separate from another app's", async () => {
    await h.store.setAppLimits(app.appId, { sessionsPerMinute: 1 });
    const other = await h.createApp("Other");
    expect((await post({ appUserId: "a" })).statusCode).toBe(200);
    expect((await post({ appUserId: "a" })).statusCode).toBe(429);
    expect((await post({ appUserId: "a" }, other.secretKey)).statusCode).toBe(200);
  });
});
