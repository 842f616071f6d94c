/** Wire types of Wattfare's own endpoints, shared by both entries. */

/**
 * A user's connection to your app, as `GET /api/v1/status` answers it. USD amounts have 6 decimals;
 * `remainingUsd` already subtracts requests in flight, so it never promises more than Wattfare admits.
 *
 * @example
 * ```ts
 * const status: ConnectionStatus = await wattfare.status("user_123");
 * if (!status.connected) showConnectButton();
 * else if (status.remainingUsd < 0.01) showRaiseCapButton();
 * ```
 */
export interface ConnectionStatus {
  /** Whether the user has approved a budget for your app. */
  connected: boolean;
  /** The monthly cap the payer approved; 0 when not connected. */
  limits: { monthlyUsd: number };
  /** Settled spend this period (rounded up); 0 when not connected. */
  usage: { monthlyUsd: number };
  /** What is left this period: cap − settled − reserved, rounded down, never below 0. */
  remainingUsd: number;
  /** The current period (calendar month, UTC) as unix seconds; `end` is exclusive. */
  period: { start: number; end: number };
  /** The payer's funding source: `missing` when not connected, `insufficient`/`invalid` need the payer. */
  funding: "ok" | "insufficient" | "invalid" | "missing";
  /** Whether the payer paused all spending (chat then answers 402 `budget_exceeded`). */
  paused: boolean;
}

/**
 * A short-lived session token for the browser SDK.
 *
 * @example
 * ```ts
 * const session: Session = await wattfare.sessions.create({ appUserId: "user_123" });
 * new Date(session.expiresAt * 1000); // about ten minutes from now
 * ```
 */
export interface Session {
  /** A JWT for the browser SDK; it carries your app id, the user id and the requested limit. */
  token: string;
  /** Expiry as unix seconds (10 minutes after minting). */
  expiresAt: number;
}

/**
 * What a one-time grant allows: a dollar cap for its whole life, an optional number of requests, and
 * how long it lasts after the payer approves it.
 *
 * @example
 * ```ts
 * const terms: GrantTerms = { maxUsd: 2, maxUses: 10, expiresInSeconds: 3600 };
 * ```
 */
export interface GrantTerms {
  /** The most the grant may spend in total, in USD (at most Wattfare's `WATTFARE_MAX_MONTHLY_USD`). */
  maxUsd: number;
  /** How many chat requests it allows; omit for no limit. */
  maxUses?: number | undefined;
  /** Its lifetime after approval, in seconds; default 24 h, at most 30 days. */
  expiresInSeconds?: number | undefined;
}

/**
 * A one-time grant's state, as `GET /api/v1/grants/current` answers it.
 *
 * @example
 * ```ts
 * const grant: GrantStatus = await wattfare.grants.current(grantToken);
 * if (grant.status !== "active") askForANewGrant();
 * ```
 */
export interface GrantStatus {
  /** `active`, or why it can no longer be used. */
  status: "active" | "exhausted" | "expired" | "revoked";
  /** USD left: cap − settled − reserved, rounded down. */
  remainingUsd: number;
  /** Requests left; null when the grant has no use limit. */
  usesLeft: number | null;
  /** When it expires, as unix seconds. */
  expiresAt: number;
}
