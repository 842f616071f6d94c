/**
 * Apps and their secret keys: creation, authentication, rotation, origins and per-app limits.
 * Keys are shown once and stored only as SHA-256 of the whole key, compared in constant time.
 */
import { ApiError } from "../../errors.js";
import {
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

/**
 * Authenticates `Authorization: Bearer sk_live_{appId}_{secret}`. Every failure is the same 401 so a
 * caller learns nothing about which apps exist.
 */
export async function authenticateSecretKey(
  store: Store,
  authorization: string | undefined,
  now: number,
): Promise<AppWithOrigins> {
  const token = bearerToken(authorization);
  const appId = token === null ? null : secretKeyAppId(token);
  if (token === null || appId === null) {
    throw new ApiError("auth", "Missing or invalid secret key. Send Authorization: Bearer sk_live_….");
  }
  const keys = await store.activeAppKeys(appId, now);
  const hash = keyHash(token);
  let match = false;
  for (const key of keys) match = safeEqualHash(key.keyHash, hash) || match;
  const app = match ? await store.getApp(appId) : undefined;
  if (!app)
    throw new ApiError("auth", "Missing or invalid secret key. Send Authorization: Bearer sk_live_….");
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
