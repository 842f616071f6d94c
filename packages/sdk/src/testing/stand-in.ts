/**
 * A stand-in Wattfare and a test app page for the browser SDK's tests in Chromium. The stand-in serves
 * a consent popup that speaks DESIGN.md's message protocol (with buttons instead of sign-up and
 * funding), `/api/v1/connections` and `/api/v1/grants/pending` with CORS for the app's origin, and
 * pages that forge messages. The app page loads the SDK straight from `dist/` with a plain
 * `<script type="module">`, exactly as a browser without a bundler would.
 */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import type { ConnectionStatus } from "../core/types.js";

/** Debian's Chromium with the flags DESIGN.md lists: the server package's one launcher. */
export { launchBrowser as launchChromium } from "@wattfare/server/testing";

const DIST = fileURLToPath(new URL("../../dist/", import.meta.url));

interface UserState {
  connected: boolean;
  capUsd: number;
  funding: ConnectionStatus["funding"];
  /** The payer paused all spending. */
  paused?: boolean;
}

/** What the stand-in Wattfare knows and counts; tests read and change it directly. */
export interface StandInState {
  users: Map<string, UserState>;
  /** Session tokens answered with 401 (as if expired or revoked). */
  refused: Set<string>;
  /** Answer every session token with 401. */
  refuseAll: boolean;
  /** Tokens minted by the app's session endpoint, oldest first. */
  minted: string[];
  /** Grant tokens waiting for `GET /grants/pending`, by grant-session token. */
  pendingGrants: Map<string, string>;
  /** Requests to the stand-in's API, as "METHOD /path". */
  apiCalls: string[];
  /** Lifetime of minted session tokens, in seconds. */
  tokenLifetimeSeconds: number;
  /** While set, `GET /connections` answers only once this settles (a slow status read). */
  statusGate?: Promise<void> | undefined;
  /** The funding an approval leaves: `insufficient` for a payer who approved without topping up. */
  fundingAfterApproval: ConnectionStatus["funding"];
  /**
   * How many of the next `GET /connections` fail as a network error would (answered without CORS
   * headers, so the page's fetch rejects and the browser does not retry it).
   */
  failStatusReads: number;
}

export interface StandIn {
  appUrl: string;
  wattfareUrl: string;
  state: StandInState;
  close(): Promise<void>;
}

export const STAND_IN_USER = "user_1";

function statusOf(user: UserState | undefined): ConnectionStatus {
  const connected = user?.connected === true;
  return {
    connected,
    limits: { monthlyUsd: connected ? (user?.capUsd ?? 0) : 0 },
    usage: { monthlyUsd: 0 },
    remainingUsd: connected ? (user?.capUsd ?? 0) : 0,
    period: { start: 1_793_491_200, end: 1_796_083_200 },
    funding: connected ? (user?.funding ?? "ok") : "missing",
    paused: user?.paused === true,
  };
}

function fakeJwt(claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${part({ alg: "HS256", typ: "JWT" })}.${part(claims)}.${randomBytes(16).toString("base64url")}`;
}

function claimsOf(token: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8")) as Record<
      string,
      unknown
    >;
  } catch {
    return undefined;
  }
}

async function readBody(req: IncomingMessage): Promise<string> {
  let body = "";
  for await (const chunk of req) body += String(chunk);
  return body;
}

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "text/html; charset=utf-8", ...headers });
  res.end(body);
}

function json(
  res: ServerResponse,
  status: number,
  value: unknown,
  headers: Record<string, string> = {},
): void {
  send(res, status, JSON.stringify(value), { "content-type": "application/json", ...headers });
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** The stand-in popup: DESIGN.md's handshake, with buttons for the payer's answers. */
const POPUP_PAGE = `<!doctype html><title>Stand-in consent</title>
<h1>Stand-in consent</h1>
<p id="received">Waiting for the app…</p>
<button id="approve">Approve</button>
<button id="approve-resume">Approve and resume spending</button>
<button id="approve-unsaved">Approve without saving</button>
<button id="deny">Deny</button>
<button id="fail">Fail</button>
<button id="lose">Lose the link</button>
<script>
let session;
let origin;
window.addEventListener("message", (event) => {
  if (event.source !== window.opener || event.data?.type !== "wattfare:session") return;
  session = event.data;
  origin = event.origin;
  document.getElementById("received").textContent = JSON.stringify({ ...event.data, origin });
});
const save = async (extra) =>
  (await fetch("/standin/approve", { method: "POST", body: JSON.stringify({ ...session, ...extra }) })).json();
const answer = (message) => {
  window.opener.postMessage({ type: "wattfare:result", ...message }, origin);
  window.close();
};
document.getElementById("approve").onclick = async () => answer({ status: "approved", ...(await save()) });
document.getElementById("approve-resume").onclick = async () =>
  answer({ status: "approved", ...(await save({ resumeSpending: true })) });
document.getElementById("approve-unsaved").onclick = () => answer({ status: "approved" });
document.getElementById("deny").onclick = () => answer({ status: "denied" });
document.getElementById("fail").onclick = () => answer({ status: "error", message: "This request expired. Start again from the app." });
document.getElementById("lose").onclick = () => {
  location.href = "/standin/severed?session=" + encodeURIComponent(JSON.stringify(session));
};
window.opener.postMessage({ type: "wattfare:ready" }, "*");
</script>`;

/** Served with Cross-Origin-Opener-Policy, which severs the popup from its opener. */
const SEVERED_PAGE = `<!doctype html><title>Severed</title>
<h1>Somewhere with COOP</h1>
<button id="approve">Approve</button>
<script>
const session = new URLSearchParams(location.search).get("session");
document.getElementById("approve").onclick = async () => {
  await fetch("/standin/approve", { method: "POST", body: session });
  document.title = "approved";
};
</script>`;

/** A frame that forges the popup's messages to the page that embeds it. */
const FORGE_PAGE = `<!doctype html><title>Forge</title><script>
const connection = { connected: true, limits: { monthlyUsd: 999 }, usage: { monthlyUsd: 0 }, remainingUsd: 999,
  period: { start: 0, end: 1 }, funding: "ok", paused: false };
window.parent.postMessage({ type: "wattfare:result", status: "approved", connection, grantToken: "gt_forged" }, "*");
window.parent.postMessage({ type: "wattfare:result", status: "denied" }, "*");
window.parent.postMessage({ type: "wattfare:ready" }, "*");
document.title = "forged";
</script>`;

function appPage(wattfareUrl: string): string {
  return `<!doctype html><title>Test app</title>
<h1>Test app</h1>
<button id="connect">Connect</button>
<button id="connect-again">Connect again</button>
<button id="connect-other">Connect with another client</button>
<label for="error">Relayed error</label><input id="error" value="">
<button id="recover">Fix it</button>
<button id="grant">Request a grant</button>
<button id="grant-throwing">Request a grant, signed out</button>
<script type="module">
import { createWattfare, sessionEndpoint } from "/sdk/browser/index.js";
window.events = [];
const open = window.open.bind(window);
window.open = (...args) => {
  window.events.push("open");
  return window.blockPopups ? null : open(...args);
};
const realFetch = window.fetch.bind(window);
window.fetch = (input, init) => {
  window.events.push("fetch " + new URL(String(input), location.href).pathname);
  return realFetch(input, init);
};
const wattfare = createWattfare({
  baseUrl: ${JSON.stringify(wattfareUrl)},
  getSessionToken: sessionEndpoint("/session"),
  getGrantSessionToken: sessionEndpoint("/grant-session"),
  pollIntervalMs: 50,
  maxRetries: 0,
});
window.wattfare = wattfare;
window.statusEvents = [];
wattfare.on("status", (status) => window.statusEvents.push(status));
window.outcomes = [];
const track = (window.track = (promise) => {
  const outcome = { state: "pending" };
  window.outcomes.push(outcome);
  promise.then(
    (value) => Object.assign(outcome, { state: "resolved", value }),
    (error) => Object.assign(outcome, { state: "rejected", name: error.name, code: error.code, message: error.message }),
  );
});
document.getElementById("connect").onclick = () => track(wattfare.connect({ monthlyUsd: 5 }));
document.getElementById("connect-again").onclick = () => track(wattfare.connect({ monthlyUsd: 7 }));
// A second client on the same page (a re-rendered component, a widget): it opens the same window.
const other = createWattfare({
  baseUrl: ${JSON.stringify(wattfareUrl)},
  getSessionToken: sessionEndpoint("/session"),
  pollIntervalMs: 50,
  maxRetries: 0,
});
document.getElementById("connect-other").onclick = () => track(other.connect({ monthlyUsd: 9 }));
document.getElementById("recover").onclick = () =>
  track(wattfare.recover(JSON.parse(document.getElementById("error").value)));
document.getElementById("grant").onclick = () => track(wattfare.requestGrant());
document.getElementById("grant-throwing").onclick = () =>
  track(wattfare.requestGrant({ getSessionToken: () => { throw new Error("signed out"); } }));
window.sdkReady = true;
</script>`;
}

/** Starts the stand-in Wattfare and the test app, each on its own port (so its own origin). */
export async function startStandIn(): Promise<StandIn> {
  const state: StandInState = {
    users: new Map(),
    refused: new Set(),
    refuseAll: false,
    minted: [],
    pendingGrants: new Map(),
    apiCalls: [],
    tokenLifetimeSeconds: 600,
    fundingAfterApproval: "ok",
    failStatusReads: 0,
  };
  const wattfare = createServer();
  const app = createServer();
  const wattfareUrl = await listen(wattfare);
  const appUrl = await listen(app);
  const cors = { "access-control-allow-origin": appUrl, vary: "Origin" };

  const mint = (typ: "user" | "grant") => {
    const iat = Math.floor(Date.now() / 1000);
    const claims = {
      typ,
      ...(typ === "user" ? { sub: STAND_IN_USER } : {}),
      jti: randomBytes(8).toString("hex"),
    };
    const token = fakeJwt({ ...claims, iat, exp: iat + state.tokenLifetimeSeconds });
    state.minted.push(token);
    return { token, expiresAt: iat + state.tokenLifetimeSeconds };
  };
  const bearer = (req: IncomingMessage, typ: "user" | "grant") => {
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
    if (token === undefined || state.refuseAll || state.refused.has(token)) return undefined;
    if (!state.minted.includes(token)) return undefined;
    return claimsOf(token)?.typ === typ ? token : undefined;
  };

  wattfare.on("request", async (req, res) => {
    const url = new URL(req.url ?? "/", wattfareUrl);
    if (url.pathname.startsWith("/api/")) {
      if (req.method === "OPTIONS") {
        res.writeHead(204, {
          ...cors,
          "access-control-allow-methods": "GET, POST, DELETE",
          "access-control-allow-headers": "authorization, content-type",
        });
        return res.end();
      }
      state.apiCalls.push(`${req.method} ${url.pathname}`);
      if (req.headers.origin !== appUrl)
        return json(res, 403, { error: { code: "forbidden", message: "origin" } });
      const unauthorized = () =>
        json(res, 401, { error: { code: "auth", message: "Invalid session token." } }, cors);
      if (url.pathname === "/api/v1/connections") {
        if (bearer(req, "user") === undefined) return unauthorized();
        if (req.method === "DELETE") {
          state.users.delete(STAND_IN_USER);
          res.writeHead(204, cors);
          return res.end();
        }
        if (req.method === "POST") {
          // Like Wattfare: only lowers; raising needs the payer in the popup.
          const { monthlyUsd } = JSON.parse((await readBody(req)) || "{}") as { monthlyUsd?: number };
          const user = state.users.get(STAND_IN_USER);
          if (user === undefined || (monthlyUsd !== undefined && monthlyUsd > user.capUsd)) {
            return json(
              res,
              403,
              { error: { code: "forbidden", message: "Needs the payer's consent." } },
              cors,
            );
          }
          if (monthlyUsd !== undefined) user.capUsd = monthlyUsd;
        }
        if (req.method === "GET") await state.statusGate;
        if (req.method === "GET" && state.failStatusReads > 0) {
          state.failStatusReads -= 1;
          return json(res, 200, statusOf(state.users.get(STAND_IN_USER)));
        }
        return json(res, 200, statusOf(state.users.get(STAND_IN_USER)), cors);
      }
      if (url.pathname === "/api/v1/grants/pending") {
        const token = bearer(req, "grant");
        if (token === undefined) return unauthorized();
        const grantToken = state.pendingGrants.get(token);
        state.pendingGrants.delete(token);
        return grantToken === undefined
          ? json(res, 404, { error: { code: "not_found", message: "No approved grant." } }, cors)
          : json(res, 200, { grantToken }, cors);
      }
      return json(res, 404, { error: { code: "not_found", message: "Not found." } }, cors);
    }
    if (url.pathname === "/connect") return send(res, 200, POPUP_PAGE);
    if (url.pathname === "/standin/severed") {
      return send(res, 200, SEVERED_PAGE, { "cross-origin-opener-policy": "same-origin" });
    }
    if (url.pathname === "/forge") return send(res, 200, FORGE_PAGE);
    if (url.pathname === "/standin/approve" && req.method === "POST") {
      const session = JSON.parse(await readBody(req)) as {
        token: string;
        intent: string;
        monthlyUsd?: number;
        resumeSpending?: boolean;
      };
      if (session.intent === "grant") {
        const grantToken = `gt_${randomBytes(16).toString("hex")}`;
        state.pendingGrants.set(session.token, grantToken);
        return json(res, 200, { grantToken });
      }
      const previous = state.users.get(STAND_IN_USER);
      state.users.set(STAND_IN_USER, {
        connected: true,
        capUsd: session.monthlyUsd ?? previous?.capUsd ?? 10,
        funding: state.fundingAfterApproval,
        paused: session.resumeSpending === true ? false : previous?.paused === true,
      });
      return json(res, 200, { connection: statusOf(state.users.get(STAND_IN_USER)) });
    }
    return send(res, 404, "not found");
  });

  app.on("request", async (req, res) => {
    const url = new URL(req.url ?? "/", appUrl);
    if (url.pathname === "/") return send(res, 200, appPage(wattfareUrl));
    if (url.pathname === "/forge") return send(res, 200, FORGE_PAGE);
    if (url.pathname === "/session" && req.method === "POST") return json(res, 200, mint("user"));
    if (url.pathname === "/grant-session" && req.method === "POST") return json(res, 200, mint("grant"));
    const sdk = /^\/sdk\/((?:browser|core)\/[a-z-]+\.js)$/.exec(url.pathname)?.[1];
    if (sdk !== undefined) {
      const source = await readFile(`${DIST}${sdk}`, "utf8").catch(() => undefined);
      if (source !== undefined) return send(res, 200, source, { "content-type": "text/javascript" });
    }
    return send(res, 404, "not found");
  });

  return {
    appUrl,
    wattfareUrl,
    state,
    async close() {
      for (const server of [wattfare, app]) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    },
  };
}
