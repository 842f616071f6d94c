/**
 * Verifying a session token presented by a browser: the signature and claims strictly (security/tokens),
 * then what only the database knows — the app still exists and the token was not issued before a
 * compromise rotation of its key.
 */
import type { AppDeps } from "../../deps.js";
import { ApiError } from "../../errors.js";
import {
  type GrantSessionClaims,
  issuedBeforeCompromise,
  type UserSessionClaims,
  verifySession,
} from "../../security/index.js";
import type { AppWithOrigins } from "../../store/port.js";
import { bearerToken } from "../apps/index.js";
import { tokenConfig } from "./service.js";

export interface VerifiedSession<C> {
  claims: C;
  app: AppWithOrigins;
}

export async function verifySessionToken(
  deps: AppDeps,
  authorization: string | undefined,
  typ: "user",
): Promise<VerifiedSession<UserSessionClaims>>;
export async function verifySessionToken(
  deps: AppDeps,
  authorization: string | undefined,
  typ: "grant",
): Promise<VerifiedSession<GrantSessionClaims>>;
export async function verifySessionToken(
  deps: AppDeps,
  authorization: string | undefined,
  typ: "user" | "grant",
): Promise<VerifiedSession<UserSessionClaims | GrantSessionClaims>> {
  const token = bearerToken(authorization);
  if (token === null) throw new ApiError("auth", "Send the session token as Authorization: Bearer <token>.");
  const claims = await verifySession(
    deps.keyRing,
    tokenConfig(deps.config),
    token,
    typ,
    Math.floor(deps.clock.now() / 1000),
  );
  const app = await deps.store.getApp(claims.app);
  if (!app || issuedBeforeCompromise(claims.iat, app.compromisedAt)) {
    throw new ApiError("auth", "Invalid session token.");
  }
  return { claims, app };
}
