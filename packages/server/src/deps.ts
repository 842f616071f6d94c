/**
 * Everything buildApp() needs, injected: no module reads env, the wall clock or globals directly, so
 * tests can swap any of them (an in-memory store, a fake clock, a simulator upstream).
 */
import type { Logger } from "pino";
import type { Config } from "./config.js";
import type { MailPort } from "./mail/index.js";
import type { RateLimitStore } from "./ratelimit/index.js";
import type { KeyRing } from "./security/index.js";
import type { Store } from "./store/port.js";

export interface Clock {
  /** Unix milliseconds. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

export interface AppDeps {
  config: Config;
  store: Store;
  keyRing: KeyRing;
  clock: Clock;
  rateLimits: RateLimitStore;
  /** Unique per process; owns this process's reservations (leases). */
  instanceId: string;
  logger: Logger;
  /** Payer emails; default: SMTP when WATTFARE_SMTP_URL is set, else the outbox (createMailPort). */
  mail?: MailPort;
}
