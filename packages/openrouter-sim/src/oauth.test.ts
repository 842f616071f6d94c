import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CODE_LIFETIME_MS, s256Challenge } from "./oauth-routes.js";
import { startSimulator } from "./server.js";
import { getJson, HI, openai } from "./test-support.js";
import type { Simulator } from "./types.js";

let sim: Simulator;
let clock = 1_700_000_000_000;
let callback: Server;
let callbackUrl: string;
const callbacks: URLSearchParams[] = [];

beforeAll(async () => {
  sim = await startSimulator({ now: () => clock, oauthCredits: 4 });
  // The app's own callback endpoint, which the browser reaches after approval.
  callback = createServer((req, res) => {
    callbacks.push(new URL(req.url ?? "/", "http://localhost").searchParams);
    res.end("connected");
  });
  await new Promise<void>((resolve) => callback.listen(0, "127.0.0.1", resolve));
  callbackUrl = `http://127.0.0.1:${(callback.address() as AddressInfo).port}/oauth/callback`;
});
afterAll(async () => {
  await sim.close();
  await new Promise((resolve) => callback.close(resolve));
});

interface ConsentForm {
  action: string;
  method: string;
  fields: Record<string, string>;
  buttons: { name: string; value: string; label: string }[];
}

/** Reads the consent page the way a browser would see it. */
function parseForm(html: string): ConsentForm {
  const form = /<form method="(\w+)" action="([^"]+)"[^>]*>/.exec(html);
  expect(form).not.toBeNull();
  const fields: Record<string, string> = {};
  for (const [, name, value] of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) {
    fields[name!] = value!;
  }
  const buttons = [
    ...html.matchAll(/<button type="submit" name="([^"]+)" value="([^"]+)">([^<]+)<\/button>/g),
  ].map(([, name, value, label]) => ({ name: name!, value: value!, label: label! }));
  return { method: form![1]!, action: form![2]!, fields, buttons };
}

async function authorize(params: Record<string, string>, decision: "approve" | "deny"): Promise<Response> {
  const page = await fetch(`${sim.url}/auth?${new URLSearchParams(params)}`);
  expect(page.status).toBe(200);
  const form = parseForm(await page.text());
  const button = form.buttons.find((b) => b.value === decision)!;
  return fetch(new URL(form.action, sim.url), {
    method: form.method,
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ ...form.fields, [button.name]: button.value }),
    redirect: "manual",
  });
}

function exchange(body: Record<string, unknown>): Promise<Response> {
  return fetch(`${sim.apiUrl}/auth/keys`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

function pkce(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString("base64url");
  return { verifier, challenge: s256Challenge(verifier) };
}

async function approvedCode(challenge: string, extra: Record<string, string> = {}): Promise<string> {
  const response = await authorize(
    { callback_url: callbackUrl, code_challenge: challenge, code_challenge_method: "S256", ...extra },
    "approve",
  );
  return new URL(response.headers.get("location")!).searchParams.get("code")!;
}

describe("OAuth PKCE", () => {
  it("renders a consent form with Authorize and Deny buttons naming the local app", async () => {
    const { challenge } = pkce();
    const page = await fetch(
      `${sim.url}/auth?${new URLSearchParams({ callback_url: callbackUrl, code_challenge: challenge, code_challenge_method: "S256", limit: "3" })}`,
    );
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const html = await page.text();
    const form = parseForm(html);
    expect(form.method).toBe("post");
    expect(form.buttons.map((b) => b.label)).toEqual(["Authorize", "Deny"]);
    expect(html).toContain(`Authorize localhost:${new URL(callbackUrl).port}`);
    expect(html).toContain("$3");
  });

  it("completes the round trip: approve, redirect with code and state, exchange for a funded key", async () => {
    const { verifier, challenge } = pkce();
    const approved = await authorize(
      {
        callback_url: callbackUrl,
        code_challenge: challenge,
        code_challenge_method: "S256",
        state: "st-42",
        limit: "3",
      },
      "approve",
    );
    expect(approved.status).toBe(302);
    // Follow the redirect to the app's callback, as the browser would.
    expect(await (await fetch(approved.headers.get("location")!)).text()).toBe("connected");
    const received = callbacks.at(-1)!;
    expect(received.get("state")).toBe("st-42");
    const code = received.get("code")!;
    expect(code).toMatch(/^[\w-]{20,}$/);

    const response = await exchange({ code, code_verifier: verifier, code_challenge_method: "S256" });
    expect(response.status).toBe(200);
    const { key, user_id } = (await response.json()) as { key: string; user_id: string };
    expect(key).toMatch(/^sk-or-v1-[0-9a-f]{64}$/);
    expect(user_id).toMatch(/^user_/);

    expect(sim.control.credits(key)).toBe(4);
    expect((await getJson(sim, "/key", key)).body.data).toMatchObject({ limit: 3, limit_remaining: 3 });
    const completion = await openai(sim, key).chat.completions.create({
      model: "openai/gpt-4o-mini",
      messages: HI,
    });
    expect(completion.choices).toHaveLength(1);
  });

  it("redirects a denial with error=access_denied and neither code nor state", async () => {
    const { challenge } = pkce();
    const denied = await authorize(
      { callback_url: callbackUrl, code_challenge: challenge, code_challenge_method: "S256", state: "st-1" },
      "deny",
    );
    expect(denied.status).toBe(302);
    const location = new URL(denied.headers.get("location")!);
    expect(`${location.origin}${location.pathname}`).toBe(callbackUrl);
    expect([...location.searchParams]).toEqual([["error", "access_denied"]]);
  });

  it.each([
    ["a plain-http callback off localhost", "http://example.com/cb"],
    ["a non-URL callback", "not a url"],
  ])("answers 400 with an error page for %s", async (_, url) => {
    const page = await fetch(
      `${sim.url}/auth?${new URLSearchParams({ callback_url: url, code_challenge: "x" })}`,
    );
    expect(page.status).toBe(400);
    expect(await page.text()).toContain('role="alert"');
  });

  it("accepts https callbacks anywhere", async () => {
    const page = await fetch(
      `${sim.url}/auth?${new URLSearchParams({ callback_url: "https://app.example/cb" })}`,
    );
    expect(page.status).toBe(200);
  });

  it("answers 403 'Invalid code or code_verifier' for a wrong verifier", async () => {
    const { challenge } = pkce();
    const code = await approvedCode(challenge);
    const response = await exchange({ code, code_verifier: pkce().verifier, code_challenge_method: "S256" });
    expect(response.status).toBe(403);
    expect(await response.json()).toEqual({ error: { code: 403, message: "Invalid code or code_verifier" } });
  });

  it("answers 400 'Invalid code_challenge_method' when the method differs from the authorize step", async () => {
    const { verifier, challenge } = pkce();
    const code = await approvedCode(challenge);
    const response = await exchange({ code, code_verifier: verifier, code_challenge_method: "plain" });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ error: { code: 400, message: "Invalid code_challenge_method" } });
  });

  it("accepts an exchange naming no method when the authorize step named none, comparing the verifier as given", async () => {
    const verifier = randomBytes(32).toString("base64url");
    const code = await approvedCode(verifier, { code_challenge_method: "" });
    const response = await exchange({ code, code_verifier: verifier });
    expect(response.status).toBe(200);
  });

  it("answers 400 'Invalid code_challenge_method' when the authorize step named no method and the exchange names plain", async () => {
    const verifier = randomBytes(32).toString("base64url");
    const code = await approvedCode(verifier, { code_challenge_method: "" });
    const response = await exchange({ code, code_verifier: verifier, code_challenge_method: "plain" });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ error: { code: 400, message: "Invalid code_challenge_method" } });
  });

  it("answers 403 'Invalid code or code_verifier' when no method was named and the verifier is not the challenge", async () => {
    const { verifier, challenge } = pkce();
    const code = await approvedCode(challenge, { code_challenge_method: "" });
    const response = await exchange({ code, code_verifier: verifier });
    expect(response.status).toBe(403);
  });

  it("accepts a code once: a replay answers 403", async () => {
    const { verifier, challenge } = pkce();
    const code = await approvedCode(challenge);
    const body = { code, code_verifier: verifier, code_challenge_method: "S256" };
    expect((await exchange(body)).status).toBe(200);
    const replay = await exchange(body);
    expect(replay.status).toBe(403);
  });

  it("expires a code after 10 minutes with 403 'Authorization code expired'", async () => {
    const { verifier, challenge } = pkce();
    const code = await approvedCode(challenge);
    clock += CODE_LIFETIME_MS + 1;
    const response = await exchange({ code, code_verifier: verifier, code_challenge_method: "S256" });
    expect(response.status).toBe(403);
    expect(await response.json()).toEqual({ error: { code: 403, message: "Authorization code expired" } });
  });

  it("still accepts a code exactly 10 minutes old", async () => {
    const { verifier, challenge } = pkce();
    const code = await approvedCode(challenge);
    clock += CODE_LIFETIME_MS;
    expect((await exchange({ code, code_verifier: verifier, code_challenge_method: "S256" })).status).toBe(
      200,
    );
  });

  it("shows the code on the page in headless mode (no callback_url)", async () => {
    const { verifier, challenge } = pkce();
    const approved = await authorize({ code_challenge: challenge, code_challenge_method: "S256" }, "approve");
    expect(approved.status).toBe(200);
    const code = /<code id="authorization-code">([^<]+)<\/code>/.exec(await approved.text())![1]!;
    expect((await exchange({ code, code_verifier: verifier, code_challenge_method: "S256" })).status).toBe(
      200,
    );
  });

  it("answers 400 for an exchange without a code and 405 for a GET", async () => {
    expect((await exchange({})).status).toBe(400);
    expect((await fetch(`${sim.apiUrl}/auth/keys`)).status).toBe(405);
  });
});
