/**
 * Process entry for `wattfare serve`: config → store → app → listen; graceful drain on SIGTERM/SIGINT.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type Config, ConfigError, loadConfig, unknownSettings } from "./config.js";
import { createLogger } from "./logger.js";
import { type RunningServer, startServer } from "./server.js";
import { BUSY_TIMEOUT_MS, isLockContention } from "./store/sqlite/database.js";
import { ServerLockError } from "./store/sqlite/server-lock.js";

export async function serve(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  const logger = createLogger(config.logLevel);
  for (const name of unknownSettings(process.env)) {
    logger.warn({ setting: name }, "unknown WATTFARE_ setting ignored (misspelt?); see docs/self-hosting.md");
  }
  const starting = startServer(config, logger);
  // Signal handlers before the server is up: a SIGTERM that arrives while it starts, or just after it
  // printed that it listens, still drains it (Node's default would kill the process on the spot).
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "draining");
    const force = setTimeout(() => {
      logger.error("drain timed out; exiting");
      process.exit(1);
    }, config.shutdownGraceMs);
    force.unref();
    starting
      .then((running) => running.close())
      .then(
        () => process.exit(0),
        (error: unknown) => {
          logger.error({ err: error }, "shutdown failed");
          process.exit(1);
        },
      );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  let server: RunningServer;
  try {
    server = await starting;
  } catch (error) {
    if (error instanceof ServerLockError) {
      process.stderr.write(`error: ${error.message}\n`);
      process.exit(1);
    }
    const problem = startupProblem(error, config);
    if (problem !== undefined) {
      process.stderr.write(`error: ${problem}\n`);
      process.exit(1);
    }
    throw error;
  }
  // This installation's own CLI by path: `npx wattfare` outside the repository would ask the npm registry
  // for a package of that name (someone else's, or none).
  const cli = `node ${shellWord(fileURLToPath(new URL("../bin/wattfare.js", import.meta.url)))}`;
  const cliEnv = cliEnvironment(config);
  process.stdout.write(
    [
      ``,
      `Wattfare is listening on ${server.url} (database ${config.database.path})`,
      `Its public URL is ${config.publicUrl} (WATTFARE_PUBLIC_URL): give exactly this origin to the browser`,
      `  SDK; the consent popup's cookies and OpenRouter's callback live on it, and to a browser`,
      `  http://localhost and http://127.0.0.1 are different origins.`,
      `Model provider: ${config.upstreamUrl} (WATTFARE_UPSTREAM_URL)`,
      ``,
      `Next: create an app (its secret key is shown once):`,
      `  ${cliEnv} ${cli} apps create --name "My app" --origin http://localhost:3000`,
      `Then mint a session token for one of your users:`,
      `  curl -s ${server.url}/api/v1/sessions -H "Authorization: Bearer <secret key>" \\`,
      `    -H "Content-Type: application/json" -d '{"appUserId":"user_123"}'`,
      `Check a user's budget:`,
      `  curl -s "${server.url}/api/v1/status?appUserId=user_123" -H "Authorization: Bearer <secret key>"`,
      ``,
    ].join("\n"),
  );
}

/** Error codes of a data directory or database file this process cannot use (rights, a file in the way). */
const STORAGE_CODES =
  /^(EACCES|EPERM|EROFS|EEXIST|ENOTDIR|EISDIR|ELOOP|SQLITE_(CANTOPEN|READONLY|PERM|NOTADB))/;

/**
 * A start-up failure that is the operator's to fix — an address this process cannot listen on, a data
 * directory or database it cannot use — as one line naming the setting; undefined for anything else.
 */
export function startupProblem(error: unknown, config: Config): string | undefined {
  const { code, syscall, message } = error as { code?: unknown; syscall?: unknown; message?: unknown };
  if (code === "EADDRINUSE") {
    return `${config.host}:${config.port} is in use by another program; set PORT to another port (PORT=0 picks a free one)`;
  }
  if (syscall === "listen" || syscall === "getaddrinfo") {
    return `cannot listen on ${config.host}:${config.port} (${String(message)}); set HOST to an address of this machine (127.0.0.1, or 0.0.0.0 for every interface) and PORT to one this user may open`;
  }
  return storageProblem(error, config);
}

/**
 * The database or its directory cannot be used by this process, or another connection held its lock
 * past the busy timeout, as one line; undefined otherwise.
 */
export function storageProblem(error: unknown, config: Config): string | undefined {
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (isLockContention(error)) {
    // Every other Wattfare process holds the lock only for moments (database.ts: writeTransaction).
    return `cannot use the database ${config.database.path}: another connection held its write lock for more than ${BUSY_TIMEOUT_MS / 1000} s (${String(message)}); try again, and if it persists, look for a process keeping a transaction open on it`;
  }
  if (typeof code !== "string" || !STORAGE_CODES.test(code)) return undefined;
  return `cannot use the database ${config.database.path} (${String(message)}); WATTFARE_DATA_DIR (${config.dataDir}) and the database's directory must be directories this user can write, and the database file writable by it`;
}

/** A shell word: as it is when that is safe, else single-quoted. */
const shellWord = (value: string): string =>
  /^[\w./:@%+=,-]+$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`;

/**
 * The environment the printed CLI commands need to reach this server's state from any directory: the
 * data directory (where the generated server secret is; `dev connect` elsewhere would otherwise
 * encrypt with a secret of its own), the database when it is elsewhere, and the server secret when it
 * comes from the environment — by reference, never printed.
 */
export function cliEnvironment(config: Config): string {
  const words = [`WATTFARE_DATA_DIR=${shellWord(config.dataDir)}`];
  if (config.database.path !== path.join(config.dataDir, "wattfare.db")) {
    words.push(`WATTFARE_DATABASE_URL=${shellWord(`sqlite:${config.database.path}`)}`);
  }
  if (config.serverSecret !== undefined) words.push(`WATTFARE_SERVER_SECRET="$WATTFARE_SERVER_SECRET"`);
  return words.join(" ");
}
