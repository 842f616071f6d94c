/**
 * OAuth PKCE as OpenRouter runs it: `GET /auth` shows a consent form, approval redirects to
 * `callback_url?code=` (and `state`), `POST /api/v1/auth/keys` trades code + verifier for a new key.
 */
import { createHash, randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { BodyTooLargeError, readBody, sendError, sendJson } from "./http-util.js";
import { isRecord } from "./json.js";
import { codePage, consentPage, deniedPage, errorPage } from "./oauth-page.js";
import type { SimState } from "./state.js";

type ChallengeMethod = "S256" | "plain";
const isChallengeMethod = (value: string): value is ChallengeMethod => value === "S256" || value === "plain";

interface AuthorizationRequest {
  callbackUrl: URL | null;
  challenge: string | null;
  method: ChallengeMethod | null;
  state: string | null;
  limitUsd: number | null;
  keyLabel: string | null;
}

interface AuthorizationCode {
  challenge: string | null;
  method: ChallengeMethod | null;
  limitUsd: number | null;
  keyLabel: string | null;
  issuedAt: number;
}

/** OpenRouter: a code is valid for 10 minutes and can be used once. */
export const CODE_LIFETIME_MS = 10 * 60 * 1000;
const LOCAL_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);
const INVALID_CODE = "Invalid code or code_verifier";

export const s256Challenge = (verifier: string): string =>
  createHash("sha256").update(verifier).digest("base64url");

export class OAuthStore {
  readonly pending = new Map<string, AuthorizationRequest>();
  readonly codes = new Map<string, AuthorizationCode>();
}

function sendHtml(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, {
    "content-type": "text/html; charset=utf-8",
    "content-length": Buffer.byteLength(html),
    "cache-control": "no-store",
    "x-frame-options": "DENY",
  });
  res.end(html);
}

type Checked<T> = { ok: true; value: T } | { ok: false; message: string };

function parseAuthorizationQuery(query: URLSearchParams): Checked<AuthorizationRequest> {
  const rawCallback = query.get("callback_url");
  let callbackUrl: URL | null = null;
  if (rawCallback !== null && rawCallback !== "") {
    try {
      callbackUrl = new URL(rawCallback);
    } catch {
      return { ok: false, message: "callback_url is not a valid URL." };
    }
    const local = callbackUrl.protocol === "http:" && LOCAL_HOSTS.has(callbackUrl.hostname);
    if (callbackUrl.protocol !== "https:" && !local) {
      return { ok: false, message: "callback_url must be an https URL, or http on localhost or 127.0.0.1." };
    }
  }
  const challenge = query.get("code_challenge") || null;
  const rawMethod = query.get("code_challenge_method") || null;
  if (rawMethod !== null && !isChallengeMethod(rawMethod)) {
    return { ok: false, message: "code_challenge_method must be S256 or plain." };
  }
  // Kept as given: OpenRouter stores a null method and only asks the exchange to name the same one.
  const method: ChallengeMethod | null = challenge === null ? null : rawMethod;
  if (callbackUrl === null && method !== "S256") {
    return {
      ok: false,
      message: "Without callback_url (headless mode) a code_challenge with S256 is required.",
    };
  }
  const rawLimit = query.get("limit");
  let limitUsd: number | null = null;
  if (rawLimit !== null && rawLimit !== "") {
    limitUsd = Number(rawLimit);
    if (!Number.isFinite(limitUsd) || limitUsd <= 0)
      return { ok: false, message: "limit must be a positive number." };
  }
  return {
    ok: true,
    value: {
      callbackUrl,
      challenge,
      method,
      state: query.get("state"),
      limitUsd,
      keyLabel: query.get("key_label"),
    },
  };
}

export function handleAuthorizePage(oauth: OAuthStore, res: ServerResponse, query: URLSearchParams): void {
  const parsed = parseAuthorizationQuery(query);
  if (!parsed.ok) {
    sendHtml(res, 400, errorPage(parsed.message));
    return;
  }
  const request = parsed.value;
  const requestId = randomBytes(16).toString("base64url");
  oauth.pending.set(requestId, request);
  const appName =
    request.callbackUrl === null
      ? (request.keyLabel ?? "A command-line app")
      : LOCAL_HOSTS.has(request.callbackUrl.hostname)
        ? `localhost:${request.callbackUrl.port || "80"}`
        : request.callbackUrl.hostname;
  sendHtml(
    res,
    200,
    consentPage({ requestId, appName, limitUsd: request.limitUsd, keyLabel: request.keyLabel }),
  );
}

export async function handleAuthorizeDecision(
  sim: SimState,
  oauth: OAuthStore,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const form = new URLSearchParams(await readBody(req));
  const requestId = form.get("request") ?? "";
  const request = oauth.pending.get(requestId);
  if (!request)
    return sendHtml(res, 400, errorPage("This authorization request has expired or was already answered."));
  oauth.pending.delete(requestId);

  if (form.get("decision") !== "approve") {
    if (request.callbackUrl === null) return sendHtml(res, 200, deniedPage());
    // As upstream: a denial carries no code and no state.
    const target = new URL(request.callbackUrl);
    target.searchParams.set("error", "access_denied");
    res.writeHead(302, { location: target.toString() });
    res.end();
    return;
  }

  const code = randomBytes(24).toString("base64url");
  oauth.codes.set(code, {
    challenge: request.challenge,
    method: request.method,
    limitUsd: request.limitUsd,
    keyLabel: request.keyLabel,
    issuedAt: sim.now(),
  });
  if (request.callbackUrl === null) return sendHtml(res, 200, codePage(code));
  const target = new URL(request.callbackUrl);
  target.searchParams.set("code", code);
  if (request.state !== null) target.searchParams.set("state", request.state);
  res.writeHead(302, { location: target.toString() });
  res.end();
}

export async function handleKeyExchange(
  sim: SimState,
  oauth: OAuthStore,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  let body: unknown;
  try {
    body = JSON.parse(await readBody(req));
  } catch (error) {
    if (error instanceof BodyTooLargeError) return sendError(res, 413, "Request body too large");
    return sendError(res, 400, "Invalid JSON in request body");
  }
  if (!isRecord(body) || typeof body.code !== "string" || body.code === "") {
    return sendError(res, 400, "code is required");
  }
  const code = oauth.codes.get(body.code);
  if (!code) return sendError(res, 403, INVALID_CODE);
  if (sim.now() - code.issuedAt > CODE_LIFETIME_MS) {
    oauth.codes.delete(body.code);
    return sendError(res, 403, "Authorization code expired");
  }
  if (code.challenge !== null) {
    if ((body.code_challenge_method ?? null) !== code.method)
      return sendError(res, 400, "Invalid code_challenge_method");
    const verifier = body.code_verifier;
    if (typeof verifier !== "string") return sendError(res, 403, INVALID_CODE);
    // A null method compares the verifier as is, RFC 7636's default; OpenRouter does not say otherwise.
    const derived = code.method === "S256" ? s256Challenge(verifier) : verifier;
    if (derived !== code.challenge) return sendError(res, 403, INVALID_CODE);
  }
  // Single use: a replayed code is unknown from here on.
  oauth.codes.delete(body.code);
  const account = sim.accounts.create({
    credits: sim.settings.oauthCredits,
    limit: code.limitUsd,
    ...(code.keyLabel === null ? {} : { label: code.keyLabel }),
  });
  sendJson(res, 200, JSON.stringify({ key: account.key, user_id: account.userId }));
}
