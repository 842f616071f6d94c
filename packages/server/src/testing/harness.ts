/**
 * Test harness: a real app on a real SQLite database (in memory unless a file is given), a manual
 * clock, in-process rate limits and a silent logger. Each call is isolated.
 */
import type { FastifyInstance } from "fastify";
import pino, { type Logger } from "pino";
import { buildApp } from "../app.js";
import { type Config, loadConfig } from "../config.js";
import type { AppDeps, Clock } from "../deps.js";
import { createApp } from "../modules/apps/index.js";
import { MemoryRateLimitStore } from "../ratelimit/index.js";
import { createKeyRing } from "../security/index.js";
import { openSqliteStore, type SqliteStore } from "../store/sqlite/sqlite-store.js";

/**
 * POST /api/v1/chat/completions as an app's backend would, with its secret key. `body` is sent as is
 * when it is a string, else as JSON.
 */
export function postChat(
  url: string,
  secretKey: string,
  body: unknown,
  options: { headers?: Record<string, string>; signal?: AbortSignal } = {},
): Promise<Response> {
  return fetch(`${url}/api/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${secretKey}`, "content-type": "application/json", ...options.headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
    ...(options.signal ? { signal: options.signal } : {}),
  });
}

export const TEST_SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";

export class ManualClock implements Clock {
  constructor(public ms: number = Date.UTC(2026, 10, 15, 12, 0, 0)) {}
  now(): number {
    return this.ms;
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}

export interface Harness {
  app: FastifyInstance;
  deps: AppDeps;
  store: SqliteStore;
  clock: ManualClock;
  config: Config;
  close(): Promise<void>;
  /** Creates an app and returns its id and secret key. */
  createApp(name?: string, origins?: string[]): Promise<{ appId: string; secretKey: string }>;
}

export async function createHarness(
  options: {
    env?: Record<string, string>;
    file?: string;
    clock?: ManualClock;
    /** Default: silent. Tests that prove what is (not) logged pass a logger writing to a buffer. */
    logger?: Logger;
  } = {},
): Promise<Harness> {
  const config = loadConfig(
    { WATTFARE_SERVER_SECRET: TEST_SECRET, LOG_LEVEL: "silent", ...options.env },
    "/tmp",
  );
  const store = await openSqliteStore(options.file ?? ":memory:");
  const clock = options.clock ?? new ManualClock();
  const rateLimits = new MemoryRateLimitStore();
  const deps: AppDeps = {
    config,
    store,
    keyRing: createKeyRing(Buffer.from(TEST_SECRET)),
    clock,
    rateLimits,
    instanceId: "inst_test",
    logger: options.logger ?? pino({ level: "silent" }),
  };
  const app = await buildApp(deps);
  return {
    app,
    deps,
    store,
    clock,
    config,
    async close() {
      await app.close();
      await rateLimits.close();
      await store.close();
    },
    async createApp(name = "Test app", origins = ["http://localhost:5173"]) {
      const created = await createApp(store, { name, origins }, clock.now());
      return { appId: created.appId, secretKey: created.secretKey };
    },
  };
}
