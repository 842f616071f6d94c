/**
 * Apps and their secret keys: creation, authentication, rotation, origins and per-app limits.
 * Keys are shown once and stored only as SHA-256 of the whole key, compared in constant time.
 */
import { ApiError } from "../../errors.js";
import {
  GRANT_TOKEN_PATTERN,
  generateAppId,
  generateSecretKey,
  hashSecretKey,
  parseOrigin,
  safeEqualHash,
  secretKeyAppId,
} from "../../security/index.js";
import type { AppWithOrigins, Store } from "../../store/port.js";

export const DEFAULT_ROTATION_GRACE_MS = 24 * 3600_000;

export class AppInputError extends Error {}

export function normalizeOrigins(inputs: readonly string[]): string[] {
  return inputs.map((input) => {
    const parsed = parseOrigin(input);
    if (!parsed.ok) throw new AppInputError(`invalid origin ${JSON.stringify(input)}: ${parsed.reason}`);
    return parsed.origin;
  });
}

export interface CreatedApp {
  appId: string;
  secretKey: string;
  app: AppWithOrigins;
}

export async function createApp(
  store: Store,
  input: { name: string; origins: readonly string[] },
  now: number,
): Promise<CreatedApp> {
  const name = input.name.trim();
  if (name.length === 0 || name.length > 100) throw new AppInputError("app name must be 1-100 characters");
  const origins = normalizeOrigins(input.origins);
  const appId = generateAppId();
  const secretKey = generateSecretKey(appId);
  await store.createApp({ id: appId, name, keyHash: hashSecretKey(secretKey), origins, createdAt: now });
  const app = await store.getApp(appId);
  if (!app) throw new Error("app vanished after creation");
  return { appId, secretKey, app };
}

export async function requireApp(store: Store, appId: string): Promise<AppWithOrigins> {
  const app = await store.getApp(appId);
  if (!app) throw new AppInputError(`no app with id ${JSON.stringify(appId)}`);
  return app;
}

export async function rotateAppKey(
  store: Store,
  appId: string,
  options: { expireOldInMs?: number; compromised?: boolean },
  now: number,
): Promise<string> {
  await requireApp(store, appId);
  const compromised = options.compromised === true;
  const grace = compromised ? 0 : (options.expireOldInMs ?? DEFAULT_ROTATION_GRACE_MS);
  const secretKey = generateSecretKey(appId);
  await store.rotateAppKey(appId, hashSecretKey(secretKey), now, now + grace, compromised);
  return secretKey;
}

/** The scheme is case-insensitive (RFC 9110 §11.1); the token is one run of non-space characters. */
const BEARER = /^Bearer +(\S+)$/i;

/** The bearer token of an Authorization header, or null. */
export function bearerToken(header: string | undefined): string | null {
  if (header === undefined) return null;
  const match = BEARER.exec(header);
  return match?.[1] ?? null;
}

const SEND_SECRET_KEY =
  "Send Authorization: Bearer sk_live_… (your app's secret key, printed by `wattfare apps create`).";
const INVALID_SECRET_KEY = `Missing or invalid secret key. ${SEND_SECRET_KEY}`;

/**
 * The 401 message for a token that is not a secret key at all: another kind of credential, recognised
 * by its format alone (nothing is looked up), is told what to send instead. Only on the failure path.
 */
function notASecretKey(token: string | null): string {
  if (token === null) return INVALID_SECRET_KEY;
  if (token.startsWith("sk-or-"))
    return `That is an OpenRouter API key, not a Wattfare secret key: Wattfare spends each user's own OpenRouter key, which they connect in the consent popup. ${SEND_SECRET_KEY}`;
  if (token.startsWith("eyJ"))
    return `That is a session token (a JWT from POST /api/v1/sessions), which the browser SDK sends to /api/v1/connections; your backend authenticates with the secret key. ${SEND_SECRET_KEY}`;
  if (GRANT_TOKEN_PATTERN.test(token))
    return `That is a grant token: send it in the x-wattfare-grant header, next to the secret key. ${SEND_SECRET_KEY}`;
  if (token.startsWith("sk-"))
    return `That looks like a model provider's API key (such as the OPENAI_API_KEY an OpenAI client sends when given no apiKey), not a Wattfare secret key. ${SEND_SECRET_KEY}`;
  return INVALID_SECRET_KEY;
}

/**
 * Authenticates `Authorization: Bearer sk_live_{appId}_{secret}`. Every failure of a secret-key-shaped
 * token is the same 401, so a caller learns nothing about which apps exist; a token of another kind is
 * told so, from its format alone, before any lookup.
 */
export async function authenticateSecretKey(
  store: Store,
  authorization: string | undefined,
  now: number,
): Promise<AppWithOrigins> {
  const token = bearerToken(authorization);
  const appId = token === null ? null : secretKeyAppId(token);
  if (token === null || appId === null) throw new ApiError("auth", notASecretKey(token));
  const keys = await store.activeAppKeys(appId, now);
  const hash = keyHash(token);
  let match = false;
  for (const key of keys) match = safeEqualHash(key.keyHash, hash) || match;
  const app = match ? await store.getApp(appId) : undefined;
  if (!app) throw new ApiError("auth", INVALID_SECRET_KEY);
  return app;
}

/**
 * SHA-256 of recently seen keys: an app sends the same key on every request. Only the hash is compared
 * (in constant time) against the stored ones, so a cached entry never grants anything by itself.
 */
const hashCache = new Map<string, Buffer>();
const HASH_CACHE_SIZE = 1000;

function keyHash(token: string): Buffer {
  let hash = hashCache.get(token);
  if (!hash) {
    hash = hashSecretKey(token);
    if (hashCache.size >= HASH_CACHE_SIZE) hashCache.clear();
    hashCache.set(token, hash);
  }
  return hash;
}
