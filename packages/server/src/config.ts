/**
 * The one place the environment is read. One zod schema → a frozen `Config`.
 * Every knob is a `WATTFARE_*` variable (plus HOST, PORT, LOG_LEVEL, NODE_ENV) and is listed in
 * docs/self-hosting.md. Bad config fails at start naming its problems: every malformed value at once,
 * or, when all are well-formed, every rule they break (a secret too short, http in production, …).
 */
import { isIP } from "node:net";
import path from "node:path";
import { z } from "zod";

const DEFAULT_UPSTREAM_URL = "https://openrouter.ai/api/v1";
const DEFAULT_OPENROUTER_AUTH_URL = "https://openrouter.ai/auth";

/** Decimal digits only: `z.coerce` would also take "" (as 0), " " and "0x1f90". */
const intFrom = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d{1,15}$/, "must be a whole number")
    .transform(Number)
    .pipe(z.number().min(min).max(max));
/** A plain decimal amount in USD: `z.coerce` would read "" as 0, "0x10" as 16 and "1e3" as 1000. */
const usdFrom = (max: number) =>
  z
    .string()
    .regex(/^\d{1,9}(\.\d{1,9})?$/, "must be an amount in USD, e.g. 1000 or 2.50")
    .transform(Number)
    .pipe(z.number().positive().max(max));
const flag = z
  .enum(["0", "1", "true", "false"])
  .transform((v) => v === "1" || v === "true")
  .optional();

const urlString = z.string().refine((v) => {
  try {
    const u = new URL(v);
    return u.protocol === "http:" || u.protocol === "https:";
  } catch {
    return false;
  }
}, "must be an http(s) URL");

const envSchema = z.object({
  // Only exactly "production" turns production's rules on; a near miss would run a deployment on the
  // development ones (a generated secret, plain http, `dev connect`) without a word.
  NODE_ENV: z
    .string()
    .refine((v) => v === "production" || !/^\s*prod(uction)?\s*$/i.test(v), {
      message: 'must be exactly "production" for production\'s rules (they are off for any other value)',
    })
    .optional(),
  HOST: z.string().min(1).default("127.0.0.1"),
  PORT: intFrom(0, 65535).default(8787),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  WATTFARE_PUBLIC_URL: urlString.optional(),
  WATTFARE_DATA_DIR: z.string().min(1).optional(),
  WATTFARE_DATABASE_URL: z.string().min(1).optional(),
  WATTFARE_REDIS_URL: z.string().min(1).optional(),
  WATTFARE_ALLOW_LOCAL_RATE_LIMITS: flag,
  WATTFARE_SERVER_SECRET: z.string().optional(),
  WATTFARE_SERVER_SECRET_PREVIOUS: z.string().optional(),
  WATTFARE_UPSTREAM_URL: urlString.default(DEFAULT_UPSTREAM_URL),
  WATTFARE_OPENROUTER_AUTH_URL: urlString.default(DEFAULT_OPENROUTER_AUTH_URL),
  WATTFARE_METRICS_TOKEN: z.string().min(16).optional(),
  WATTFARE_TRUST_PROXY: z.string().min(1).optional(),
  WATTFARE_MAX_MONTHLY_USD: usdFrom(1_000_000).default(1000),
  WATTFARE_DEFAULT_MONTHLY_USD: usdFrom(1_000_000).default(10),
  WATTFARE_DEFAULT_MAX_TOKENS: intFrom(16, 1_000_000).default(4096),
  WATTFARE_CHAT_BODY_LIMIT_BYTES: intFrom(1024, 200 * 1024 * 1024).default(20 * 1024 * 1024),
  WATTFARE_NONSTREAM_BUFFER_BYTES: intFrom(1024, 64 * 1024 * 1024).default(1024 * 1024),
  WATTFARE_UPSTREAM_CONNECTIONS: intFrom(1, 4096).default(256),
  WATTFARE_UPSTREAM_HEADERS_TIMEOUT_MS: intFrom(100, 3_600_000).default(120_000),
  WATTFARE_UPSTREAM_READ_TIMEOUT_MS: intFrom(100, 3_600_000).default(120_000),
  WATTFARE_UPSTREAM_QUEUE_TIMEOUT_MS: intFrom(10, 3_600_000).default(10_000),
  WATTFARE_CLIENT_WRITE_STALL_MS: intFrom(100, 3_600_000).default(300_000),
  WATTFARE_RESERVATION_LEASE_MS: intFrom(1000, 3_600_000).default(15_000),
  WATTFARE_HEARTBEAT_MS: intFrom(100, 3_600_000).default(5_000),
  WATTFARE_RECONCILER_TICK_MS: intFrom(50, 3_600_000).default(1_000),
  WATTFARE_GENERATION_BACKOFF_MS: intFrom(10, 600_000).default(250),
  WATTFARE_RECONCILE_DEADLINE_MS: intFrom(1000, 7 * 24 * 3_600_000).default(15 * 60_000),
  WATTFARE_UNRECONCILED_RECHECK_MS: intFrom(1000, 7 * 24 * 3_600_000).default(3_600_000),
  WATTFARE_MODELS_CACHE_MS: intFrom(0, 24 * 3_600_000).default(5 * 60_000),
  WATTFARE_SHUTDOWN_GRACE_MS: intFrom(0, 3_600_000).default(30_000),
  WATTFARE_SMTP_URL: z
    .string()
    .regex(/^smtps?:\/\/./, "must be an smtp:// or smtps:// URL, e.g. smtps://user:pass@mail.example.com")
    .optional(),
  WATTFARE_MAIL_FROM: z
    .string()
    .min(3)
    .max(320)
    .regex(/^[^\r\n]+$/, "must be one line")
    .optional(),
});

export type Env = Record<string, string | undefined>;

export interface Config {
  readonly production: boolean;
  readonly host: string;
  readonly port: number;
  readonly logLevel: z.infer<typeof envSchema>["LOG_LEVEL"];
  /** Wattfare's own origin, used for cookies, CSRF origin checks, OAuth callbacks and printed hints. */
  readonly publicUrl: string;
  readonly dataDir: string;
  readonly database: { readonly kind: "sqlite"; readonly path: string };
  /** Raw secret text when given by env; undefined means "use the generated dev secret" (never in production). */
  readonly serverSecret: string | undefined;
  readonly serverSecretPrevious: string | undefined;
  readonly upstreamUrl: string;
  readonly openRouterAuthUrl: string;
  readonly metricsToken: string | undefined;
  /**
   * The reverse proxies whose `X-Forwarded-For` names the client (Fastify's `trustProxy`): addresses,
   * CIDRs or `loopback`/`linklocal`/`uniquelocal`, comma-separated; false = the socket's address.
   */
  readonly trustProxy: string | false;
  readonly limits: {
    readonly maxMonthlyUsd: number;
    readonly defaultMonthlyUsd: number;
    readonly defaultMaxTokens: number;
    readonly chatBodyBytes: number;
    readonly otherBodyBytes: number;
    readonly nonStreamBufferBytes: number;
  };
  readonly upstream: {
    readonly connections: number;
    readonly headersTimeoutMs: number;
    readonly readTimeoutMs: number;
    /** How long a chat request may wait for a free upstream connection; then 503, never sent. */
    readonly queueTimeoutMs: number;
    readonly clientWriteStallMs: number;
    readonly modelsCacheMs: number;
  };
  readonly reservations: {
    readonly leaseMs: number;
    readonly heartbeatMs: number;
    readonly reconcilerTickMs: number;
    readonly generationBackoffMs: number;
    readonly reconcileDeadlineMs: number;
    /** How often settlements charged at their reservation are re-checked (for 7 days). */
    readonly unreconciledRecheckMs: number;
  };
  readonly shutdownGraceMs: number;
  /** Payer emails (verification, password reset): SMTP when a URL is set, else the outbox table. */
  readonly mail: {
    /** nodemailer connection URL; undefined = messages go to the outbox (and the log, outside production). */
    readonly smtpUrl: string | undefined;
    /** The From header; default `Wattfare <no-reply@<public host>>`. */
    readonly from: string;
  };
}

export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

export const MIN_SECRET_BYTES = 32;

const PROXY_PRESETS = new Set(["loopback", "linklocal", "uniquelocal"]);

/** An address or CIDR: `10.0.0.1`, `10.0.0.0/8`, `::1`, `fd00::/8`. */
function isAddressOrCidr(text: string): boolean {
  const [address = "", prefix, extra] = text.split("/");
  const family = isIP(address);
  if (family === 0 || extra !== undefined) return false;
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
}

/**
 * WATTFARE_TRUST_PROXY: unset → false (per-client limits key on the socket's address); else a
 * comma-separated list of the proxies' addresses, CIDRs or presets, whose `X-Forwarded-For` then names
 * the client. Hop counts and "trust every peer" are refused: they cannot tell a proxy from a client,
 * so any client could choose the address its limits are counted under.
 */
function parseTrustProxy(value: string | undefined, problems: string[]): string | false {
  if (value === undefined) return false;
  const items = value.split(",").map((item) => item.trim());
  if (items.every((item) => PROXY_PRESETS.has(item) || isAddressOrCidr(item))) return items.join(",");
  problems.push(
    "WATTFARE_TRUST_PROXY: must list your reverse proxies' addresses or CIDRs, comma-separated (e.g. 10.0.0.0/8,loopback); hop counts and trusting every peer are refused because any client could then pick the address it is rate-limited under",
  );
  return false;
}

function isLoopbackHost(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

/** `WATTFARE_*` names the SDK reads: they may share the server's environment. */
const SDK_SETTINGS = new Set(["WATTFARE_SECRET_KEY", "WATTFARE_BASE_URL"]);

/**
 * `WATTFARE_*` variables neither the server nor the SDK reads — a misspelling, most likely (its value
 * silently left at the default otherwise). Warned about at start, not refused.
 */
export function unknownSettings(env: Env): string[] {
  return Object.keys(env)
    .filter((name) => name.startsWith("WATTFARE_") && !(name in envSchema.shape) && !SDK_SETTINGS.has(name))
    .sort();
}

/**
 * Validate `env` and build the frozen Config. `cwd` is where relative paths resolve: npm scripts pass
 * INIT_CWD (the directory the user ran npm from), so `./data` lands where the user expects.
 */
export function loadConfig(env: Env, cwd: string = env.INIT_CWD ?? process.cwd()): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join(".") || "env"}: ${i.message}`));
  }
  const e = parsed.data;
  const problems: string[] = [];
  const production = e.NODE_ENV === "production";

  const dataDir = path.resolve(cwd, e.WATTFARE_DATA_DIR ?? "data");
  let database: Config["database"] = { kind: "sqlite", path: path.join(dataDir, "wattfare.db") };
  if (e.WATTFARE_DATABASE_URL !== undefined) {
    const url = e.WATTFARE_DATABASE_URL;
    if (url.startsWith("sqlite:")) {
      const file = url.slice("sqlite:".length).replace(/^\/\/(?=\/)/, "");
      if (file === "")
        problems.push("WATTFARE_DATABASE_URL: sqlite: needs a file path, e.g. sqlite:./data/wattfare.db");
      else database = { kind: "sqlite", path: path.resolve(cwd, file) };
    } else if (/^postgres(ql)?:\/\//.test(url)) {
      problems.push("WATTFARE_DATABASE_URL: PostgreSQL is not supported yet (use sqlite:<path>)");
    } else {
      problems.push("WATTFARE_DATABASE_URL: must be sqlite:<path>");
    }
  }
  if (e.WATTFARE_REDIS_URL !== undefined) {
    problems.push("WATTFARE_REDIS_URL: Redis is not supported yet (rate limits are in-process)");
  }

  for (const [name, value] of [
    ["WATTFARE_SERVER_SECRET", e.WATTFARE_SERVER_SECRET],
    ["WATTFARE_SERVER_SECRET_PREVIOUS", e.WATTFARE_SERVER_SECRET_PREVIOUS],
  ] as const) {
    if (value === undefined) continue;
    if (Buffer.byteLength(value, "utf8") < MIN_SECRET_BYTES || value.trim() !== value) {
      problems.push(
        `${name}: must be at least ${MIN_SECRET_BYTES} bytes, with no whitespace at either end (generate one with: openssl rand -base64 48)`,
      );
    }
  }
  // Every payer's funding key travels to the upstream as a bearer token, and payers are sent to the
  // OAuth page: never in clear text in production, and never with a query that paths would follow.
  for (const [name, value] of [
    ["WATTFARE_UPSTREAM_URL", e.WATTFARE_UPSTREAM_URL],
    ["WATTFARE_OPENROUTER_AUTH_URL", e.WATTFARE_OPENROUTER_AUTH_URL],
  ] as const) {
    const url = new URL(value);
    if (url.search !== "" || url.hash !== "") problems.push(`${name}: must have no query or fragment`);
    // Requests go to its origin, so credentials in it would be dropped, yet printed at start (and the
    // OAuth page's sent to every payer's browser).
    if (url.username !== "" || url.password !== "") problems.push(`${name}: must have no user:password@`);
    if (production && url.protocol !== "https:" && !isLoopbackHost(url.hostname)) {
      problems.push(`${name}: must be https when NODE_ENV=production (plain http only to a loopback host)`);
    }
  }
  if (production && e.WATTFARE_SERVER_SECRET === undefined) {
    problems.push(
      "WATTFARE_SERVER_SECRET: required when NODE_ENV=production (the generated dev secret is refused)",
    );
  }
  if (e.WATTFARE_DEFAULT_MONTHLY_USD > e.WATTFARE_MAX_MONTHLY_USD) {
    problems.push("WATTFARE_DEFAULT_MONTHLY_USD: must not exceed WATTFARE_MAX_MONTHLY_USD");
  }

  const trustProxy = parseTrustProxy(e.WATTFARE_TRUST_PROXY, problems);

  const publicUrl = new URL(e.WATTFARE_PUBLIC_URL ?? `http://localhost:${e.PORT === 0 ? 8787 : e.PORT}`);
  if (
    publicUrl.pathname !== "/" ||
    publicUrl.search !== "" ||
    publicUrl.hash !== "" ||
    publicUrl.username !== "" ||
    publicUrl.password !== ""
  ) {
    problems.push("WATTFARE_PUBLIC_URL: must be an origin (scheme://host[:port]) without a path");
  }
  if (production && publicUrl.protocol !== "https:") {
    problems.push("WATTFARE_PUBLIC_URL: must be https when NODE_ENV=production");
  }
  if (problems.length > 0) throw new ConfigError(problems);

  return Object.freeze({
    production,
    host: e.HOST,
    port: e.PORT,
    logLevel: e.LOG_LEVEL,
    publicUrl: publicUrl.origin,
    dataDir,
    database: Object.freeze(database),
    serverSecret: e.WATTFARE_SERVER_SECRET,
    serverSecretPrevious: e.WATTFARE_SERVER_SECRET_PREVIOUS,
    upstreamUrl: e.WATTFARE_UPSTREAM_URL.replace(/\/+$/, ""),
    openRouterAuthUrl: e.WATTFARE_OPENROUTER_AUTH_URL,
    metricsToken: e.WATTFARE_METRICS_TOKEN,
    trustProxy,
    limits: Object.freeze({
      maxMonthlyUsd: e.WATTFARE_MAX_MONTHLY_USD,
      defaultMonthlyUsd: e.WATTFARE_DEFAULT_MONTHLY_USD,
      defaultMaxTokens: e.WATTFARE_DEFAULT_MAX_TOKENS,
      chatBodyBytes: e.WATTFARE_CHAT_BODY_LIMIT_BYTES,
      otherBodyBytes: 64 * 1024,
      nonStreamBufferBytes: e.WATTFARE_NONSTREAM_BUFFER_BYTES,
    }),
    upstream: Object.freeze({
      connections: e.WATTFARE_UPSTREAM_CONNECTIONS,
      headersTimeoutMs: e.WATTFARE_UPSTREAM_HEADERS_TIMEOUT_MS,
      readTimeoutMs: e.WATTFARE_UPSTREAM_READ_TIMEOUT_MS,
      queueTimeoutMs: e.WATTFARE_UPSTREAM_QUEUE_TIMEOUT_MS,
      clientWriteStallMs: e.WATTFARE_CLIENT_WRITE_STALL_MS,
      modelsCacheMs: e.WATTFARE_MODELS_CACHE_MS,
    }),
    reservations: Object.freeze({
      leaseMs: e.WATTFARE_RESERVATION_LEASE_MS,
      heartbeatMs: e.WATTFARE_HEARTBEAT_MS,
      reconcilerTickMs: e.WATTFARE_RECONCILER_TICK_MS,
      generationBackoffMs: e.WATTFARE_GENERATION_BACKOFF_MS,
      reconcileDeadlineMs: e.WATTFARE_RECONCILE_DEADLINE_MS,
      unreconciledRecheckMs: e.WATTFARE_UNRECONCILED_RECHECK_MS,
    }),
    shutdownGraceMs: e.WATTFARE_SHUTDOWN_GRACE_MS,
    mail: Object.freeze({
      smtpUrl: e.WATTFARE_SMTP_URL,
      from: e.WATTFARE_MAIL_FROM ?? `Wattfare <no-reply@${publicUrl.hostname}>`,
    }),
  });
}
