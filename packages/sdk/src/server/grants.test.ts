/**
 * One-time grants through the server entry, against a real Wattfare in front of the simulator: grant
 * sessions, chat billed to a grant, `grants.current`, `openaiOptions({grant})` and
 * `createGrantSessionHandler`. A grant is approved with the server's own `approveGrant`, as the consent
 * popup's Approve does (the popup itself is covered by the browser end-to-end tests).
 */
import { approveGrant, type ChatHarness, createChatHarness } from "@wattfare/server/testing";
import OpenAI from "openai";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { GrantInvalidError, InvalidRequestError } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import type { Session } from "../core/types.js";
import { Wattfare } from "./client.js";
import { createGrantSessionHandler } from "./session-handler.js";

let h: ChatHarness;
let wattfare: Wattfare;
let payerId: string;

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {} };
const hello = [{ role: "user" as const, content: "Hi" }];
const model = "openai/gpt-4o-mini";

beforeEach(async () => {
  h = await createChatHarness({ sim: { responseTokens: 12 } });
  wattfare = new Wattfare({ secretKey: h.secretKey, baseUrl: h.url, logger: silent, maxRetries: 0 });
  // A funded payer (connected elsewhere as "payer"), who approves the grants below.
  await h.connect("payer", 50);
  const account = await h.store.chatAccount(h.appId, "payer");
  if (!account) throw new Error("the payer's connection is missing");
  payerId = account.connection.payerId;
});
afterEach(async () => h.close());

/** Approves a grant as the popup's Approve does, and returns its token. */
async function approvedGrant(terms: { maxUsd: number; maxUses?: number; expiresInSeconds?: number }) {
  const approved = await approveGrant(
    h.deps,
    {
      appId: h.appId,
      payerId,
      terms,
      sessionJti: `jti_${++jti}`,
      sessionExpiresAt: Math.floor(h.clock.now() / 1000) + 600,
    },
    h.clock.now(),
  );
  return approved.grantToken;
}
let jti = 0;

function claimsOf(session: Session): Record<string, unknown> {
  const payload = session.token.split(".")[1] ?? "";
  return JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as Record<string, unknown>;
}

describe("sessions.createGrant", () => {
  it("mints a grant session carrying exactly the terms, with no user", async () => {
    const session = await wattfare.sessions.createGrant({ maxUsd: 2, maxUses: 3, expiresInSeconds: 3600 });
    const claims = claimsOf(session);
    expect(claims).toMatchObject({
      typ: "grant",
      app: h.appId,
      grant: { maxUsd: 2, maxUses: 3, expiresInSeconds: 3600 },
    });
    expect(claims.sub).toBeUndefined();
    expect(session.expiresAt).toBe(claims.exp);
  });

  it("leaves the optional terms to Wattfare's defaults", async () => {
    expect(claimsOf(await wattfare.sessions.createGrant({ maxUsd: 1 })).grant).toEqual({ maxUsd: 1 });
  });

  it("throws InvalidRequestError for terms above Wattfare's maximum", async () => {
    await expect(wattfare.sessions.createGrant({ maxUsd: 1_000_001 })).rejects.toBeInstanceOf(
      InvalidRequestError,
    );
  });
});

describe("chat.completions.create with { grant }", () => {
  it("bills the grant: its remaining dollars and uses go down", async () => {
    const grantToken = await approvedGrant({ maxUsd: 1, maxUses: 3 });
    const completion = await wattfare.chat.completions.create(
      { model, messages: hello },
      { grant: grantToken },
    );
    expect(completion.choices[0]?.message.content).toBeTruthy();
    await h.drain();
    const grant = await wattfare.grants.current(grantToken);
    expect(grant).toMatchObject({ status: "active", usesLeft: 2 });
    expect(grant.remainingUsd).toBeLessThan(1);
    expect(grant.remainingUsd).toBeGreaterThan(0.99);
  });

  it("streams on a grant like on a user's budget", async () => {
    const grantToken = await approvedGrant({ maxUsd: 1 });
    const stream = await wattfare.chat.completions.create(
      { model, messages: hello, stream: true },
      { grant: grantToken },
    );
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
    expect(text.length).toBeGreaterThan(0);
  });

  it("throws GrantInvalidError saying why once the grant's uses are spent", async () => {
    const grantToken = await approvedGrant({ maxUsd: 1, maxUses: 1 });
    await wattfare.chat.completions.create({ model, messages: hello }, { grant: grantToken });
    const error = await wattfare.chat.completions
      .create({ model, messages: hello }, { grant: grantToken })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GrantInvalidError);
    expect(error).toMatchObject({
      code: "grant_invalid",
      status: 402,
      message: "This grant has no uses left.",
    });
    expect(await wattfare.grants.current(grantToken)).toMatchObject({ status: "exhausted", usesLeft: 0 });
  });

  it("rejects both a user and a grant, or neither, with a TypeError before sending anything, never throwing synchronously", async () => {
    let sent = 0;
    const counting = new Wattfare({
      secretKey: h.secretKey,
      baseUrl: h.url,
      logger: silent,
      fetch: (input, init) => {
        sent++;
        return fetch(input, init);
      },
    });
    const both = { user: "alice", grant: "gt_x" } as unknown as { user: string };
    const neither = {} as unknown as { user: string };
    const missing = undefined as unknown as { user: string };
    for (const options of [both, neither, missing]) {
      let call: Promise<unknown> | undefined;
      expect(() => {
        call = counting.chat.completions.create({ model, messages: hello }, options);
      }).not.toThrow();
      await expect(call).rejects.toThrow(TypeError);
      await expect(call).rejects.toThrow(/Pass exactly one of \{ user \} or \{ grant \}/);
      await expect(call?.then(() => undefined)).rejects.toThrow(/exactly one/);
    }
    await expect(
      counting.chat.completions.create({ model, messages: hello, stream: true }, both).withResponse(),
    ).rejects.toThrow(/exactly one/);
    expect(sent).toBe(0);
  });

  it("gives openaiOptions the same rule: a grant key holding undefined is no grant", () => {
    const userAndEmptyGrant = { user: "alice", grant: undefined } as unknown as { user: string };
    expect(wattfare.openaiOptions(userAndEmptyGrant).defaultHeaders).toEqual({ "x-wattfare-user": "alice" });
    const both = { user: "alice", grant: "gt_x" } as unknown as { user: string };
    expect(() => wattfare.openaiOptions(both)).toThrow(/exactly one/);
    expect(() => wattfare.openaiOptions({} as unknown as { user: string })).toThrow(/exactly one/);
  });
});

describe("grants.current", () => {
  it("reports an unlimited grant's uses as null and its expiry in unix seconds", async () => {
    const grantToken = await approvedGrant({ maxUsd: 0.5, expiresInSeconds: 600 });
    expect(await wattfare.grants.current(grantToken)).toEqual({
      status: "active",
      remainingUsd: 0.5,
      usesLeft: null,
      expiresAt: Math.floor(h.clock.now() / 1000) + 600,
    });
  });

  it("throws GrantInvalidError for a token Wattfare does not know", async () => {
    await expect(wattfare.grants.current(`gt_${"a".repeat(43)}`)).rejects.toBeInstanceOf(GrantInvalidError);
  });
});

describe("createGrantSessionHandler", () => {
  const post = (headers: Record<string, string> = {}) =>
    new Request("http://app.example/api/grant-session", { method: "POST", headers });

  it("answers a POST with a no-store grant session carrying the fixed terms", async () => {
    const handler = createGrantSessionHandler({ maxUsd: 1, maxUses: 5 }, { client: wattfare });
    const response = await handler(post());
    expect(response.status).toBe(200);
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(claimsOf((await response.json()) as Session).grant).toEqual({ maxUsd: 1, maxUses: 5 });
  });

  it("takes the terms from a function of the request, and refuses with 403 when it returns null", async () => {
    const handler = createGrantSessionHandler(
      (request) => (request.headers.get("x-plan") === "pro" ? { maxUsd: 5 } : null),
      { client: wattfare },
    );
    const pro = await handler(post({ "x-plan": "pro" }));
    expect(claimsOf((await pro.json()) as Session).grant).toEqual({ maxUsd: 5 });
    const refused = await handler(post());
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ error: { code: "forbidden" } });
  });

  it("answers anything but POST with 405 and Allow: POST", async () => {
    const handler = createGrantSessionHandler({ maxUsd: 1 }, { client: wattfare });
    const response = await handler(new Request("http://app.example/api/grant-session"));
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("POST");
  });
});

describe("openaiOptions({ grant })", () => {
  it("lets the official openai client spend a grant", async () => {
    const grantToken = await approvedGrant({ maxUsd: 1, maxUses: 2 });
    const options = wattfare.openaiOptions({ grant: grantToken });
    expect(options.defaultHeaders).toEqual({ "x-wattfare-grant": grantToken });
    const openai = new OpenAI(options);
    const completion = await openai.chat.completions.create({ model, messages: hello });
    expect(completion.choices[0]?.message.content?.length).toBeGreaterThan(0);
    expect(await wattfare.grants.current(grantToken)).toMatchObject({ status: "active", usesLeft: 1 });
  });
});
