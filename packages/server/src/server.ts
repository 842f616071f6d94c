/**
 * startServer(config): the lock → store → deps → app → listen sequence, and an orderly close
 * (stop accepting, let in-flight requests finish, flush the ledger, release the lock).
 */
import { randomUUID } from "node:crypto";
import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import { buildApp } from "./app.js";
import type { Config } from "./config.js";
import { type AppDeps, type Clock, systemClock } from "./deps.js";
import type { MailPort } from "./mail/index.js";
import { MemoryRateLimitStore } from "./ratelimit/index.js";
import { reencryptFundingKeys } from "./security/index.js";
import { loadKeyRing } from "./server-secret.js";
import { acquireServerLock } from "./store/sqlite/server-lock.js";
import { openSqliteStore } from "./store/sqlite/sqlite-store.js";

export interface RunningServer {
  app: FastifyInstance;
  deps: AppDeps;
  /** e.g. http://127.0.0.1:8787 */
  url: string;
  close(): Promise<void>;
}

/** What an embedding process may put in place of the defaults. */
export interface StartOptions {
  /** Default: the system clock. */
  clock?: Clock;
  /** Where payer emails go. Default: SMTP when configured, else the outbox (see mail.ts). */
  mail?: MailPort;
}

export async function startServer(
  config: Config,
  logger: Logger,
  { clock = systemClock, mail }: StartOptions = {},
): Promise<RunningServer> {
  const lock = acquireServerLock(config.database.path);
  try {
    const store = await openSqliteStore(config.database.path, { backgroundCheckpoints: true });
    const rateLimits = new MemoryRateLimitStore({ sweepIntervalMs: 60_000 });
    const keyRing = loadKeyRing(config);
    if (keyRing.previous !== undefined) {
      const { reencrypted, unreadable } = await reencryptFundingKeys(store, keyRing);
      logger.info(
        { reencrypted, unreadable },
        "funding keys re-encrypted under the current server secret; WATTFARE_SERVER_SECRET_PREVIOUS can be removed once no server runs without this one",
      );
    }
    const deps: AppDeps = {
      config,
      store,
      keyRing,
      clock,
      rateLimits,
      instanceId: `inst_${randomUUID()}`,
      logger,
    };
    if (mail !== undefined) deps.mail = mail;
    const app = await buildApp(deps);
    await app.listen({ host: config.host, port: config.port });
    const address = app.server.address();
    const port = typeof address === "object" && address ? address.port : config.port;
    const host = config.host.includes(":") ? `[${config.host}]` : config.host;
    let closing: Promise<void> | undefined;
    return {
      app,
      deps,
      url: `http://${host === "0.0.0.0" ? "127.0.0.1" : host}:${port}`,
      close() {
        closing ??= (async () => {
          // close() stops accepting and lets in-flight requests finish; a keep-alive socket that goes
          // idle once its stream ends would hold it open until its timeout, so sweep those as we wait.
          const sweep = setInterval(() => app.server.closeIdleConnections(), 100);
          try {
            await app.close();
          } finally {
            clearInterval(sweep);
          }
          await rateLimits.close();
          await store.close();
          lock.release();
        })();
        return closing;
      },
    };
  } catch (error) {
    lock.release();
    throw error;
  }
}
