/**
 * The `wattfare` CLI. Works alongside a running server on the same SQLite file (it takes no server
 * lock); the server reads apps, keys, origins and limits on every request, so changes apply at once.
 */
import { randomBytes } from "node:crypto";
import { Command, InvalidArgumentError, Option } from "commander";
import { type Config, ConfigError, loadConfig, unknownSettings } from "../config.js";
import { serve, storageProblem } from "../main.js";
import {
  AppInputError,
  createApp,
  normalizeOrigins,
  requireApp,
  rotateAppKey,
} from "../modules/apps/index.js";
import { normalizeEmail } from "../modules/payers/index.js";
import { usdToNano } from "../money.js";
import {
  encryptFundingKey,
  fundingKeyFingerprint,
  isFundingKeyShaped,
  OPENROUTER_KEY_PREFIX,
} from "../security/index.js";
import { loadKeyRing } from "../server-secret.js";
import type { AppWithOrigins } from "../store/port.js";
import { ServerLockError } from "../store/sqlite/server-lock.js";
import { openSqliteStore, SqliteStore } from "../store/sqlite/sqlite-store.js";
import { parseDuration } from "./duration.js";

class CliError extends Error {}

function positiveInt(value: string): number {
  const n = /^\d{1,7}$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isInteger(n) || n < 1 || n > 1_000_000)
    throw new InvalidArgumentError("must be an integer from 1 to 1000000");
  return n;
}

/** A plain decimal amount of at least a cent (no exponent: 1e-12 would be a $0 cap). */
function positiveUsd(value: string): number {
  const n = /^\d{1,9}(\.\d{1,9})?$/.test(value) ? Number(value) : Number.NaN;
  if (!(n >= 0.01))
    throw new InvalidArgumentError("must be an amount in USD of at least 0.01, e.g. 5 or 2.50");
  return n;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/**
 * The configuration a command runs with. A `WATTFARE_*` variable no one reads is named on stderr, as
 * `serve` does: a misspelt WATTFARE_DATA_DIR would otherwise send the command to another database.
 */
function cliConfig(): Config {
  for (const name of unknownSettings(process.env)) {
    process.stderr.write(
      `warning: ${name} is not a Wattfare setting (misspelt?) and is ignored; see docs/self-hosting.md\n`,
    );
  }
  return loadConfig(process.env);
}

/**
 * Runs `fn` on the database, closed afterwards; opened migrated unless `open` says otherwise. A database
 * this user cannot use is one line naming the setting, not a stack trace.
 */
async function withStore<T>(
  fn: (store: SqliteStore, config: Config) => Promise<T>,
  open: (file: string) => Promise<SqliteStore> = openSqliteStore,
): Promise<T> {
  const config = cliConfig();
  try {
    const store = await open(config.database.path);
    try {
      return await fn(store, config);
    } finally {
      await store.close();
    }
  } catch (error) {
    const problem = storageProblem(error, config);
    throw problem === undefined ? error : new CliError(problem);
  }
}

const out = (text: string) => process.stdout.write(`${text}\n`);

function describeApp(app: AppWithOrigins): string {
  const limits = [
    app.sessionsPerMinute === null ? null : `sessions ${app.sessionsPerMinute}/min`,
    app.chatPerMinute === null ? null : `chat ${app.chatPerMinute}/min`,
  ].filter(Boolean);
  return `${app.id}  ${app.name}  origins: ${app.origins.join(", ") || "(none)"}${limits.length ? `  limits: ${limits.join(", ")}` : ""}`;
}

/** An app as `apps list --json` prints it: its times as ISO 8601 (the record keeps ms and, for the compromise, s). */
function appJson(app: AppWithOrigins) {
  return {
    id: app.id,
    name: app.name,
    origins: app.origins,
    createdAt: new Date(app.createdAt).toISOString(),
    sessionsPerMinute: app.sessionsPerMinute,
    chatPerMinute: app.chatPerMinute,
    compromisedAt: app.compromisedAt === null ? null : new Date(app.compromisedAt * 1000).toISOString(),
  };
}

export function buildCli(): Command {
  const program = new Command("wattfare")
    .description("Wattfare: let your users pay for their own AI use.")
    .showHelpAfterError();

  program
    .command("serve")
    .description("run the broker (SQLite under ./data by default)")
    .action(async () => serve());

  program
    .command("migrate")
    .description("apply pending database migrations")
    .action(async () =>
      withStore(
        async (store) => {
          const applied = await store.migrate();
          out(applied.length ? `applied: ${applied.join(", ")}` : "already up to date");
        },
        // Opened as it is, so that what migrate applies can be named.
        async (file) => new SqliteStore({ file }),
      ),
    );

  const apps = program.command("apps").description("manage apps, keys, origins and limits");

  apps
    .command("create")
    .description("create an app; prints its secret key once")
    .requiredOption("--name <name>", "display name shown to payers")
    .option("--origin <url>", "allowed browser origin (repeatable)", collect, [])
    .option("--json", "print JSON")
    .action(async (opts: { name: string; origin: string[]; json?: boolean }) =>
      withStore(async (store) => {
        const created = await createApp(store, { name: opts.name, origins: opts.origin }, Date.now());
        if (opts.json) {
          out(
            JSON.stringify({
              appId: created.appId,
              secretKey: created.secretKey,
              name: created.app.name,
              origins: created.app.origins,
            }),
          );
        } else {
          out(`Created app ${created.appId} (${created.app.name})`);
          out(`Secret key (shown once, keep it on your server): ${created.secretKey}`);
        }
      }),
    );

  apps
    .command("list")
    .description("list apps")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }) =>
      withStore(async (store) => {
        const list = await store.listApps();
        if (opts.json) out(JSON.stringify(list.map(appJson)));
        else if (list.length === 0)
          out("no apps yet; create one with: wattfare apps create --name <name> --origin <url>");
        else for (const app of list) out(describeApp(app));
      }),
    );

  apps
    .command("rotate-key <appId>")
    .description("issue a new secret key; the old one keeps working for a grace period")
    .addOption(
      new Option("--expire-old-in <duration>", "grace period for the old key, with a unit (e.g. 24h, 30m)")
        .argParser(parseDuration)
        .default(parseDuration("24h"), "24h"),
    )
    .option(
      "--compromised",
      "end the old key now (whatever --expire-old-in says) and refuse session tokens issued before",
    )
    .option("--json", "print JSON")
    .action(async (appId: string, opts: { expireOldIn: number; compromised?: boolean; json?: boolean }) =>
      withStore(async (store) => {
        const now = Date.now();
        const secretKey = await rotateAppKey(
          store,
          appId,
          { expireOldInMs: opts.expireOldIn, compromised: opts.compromised === true },
          now,
        );
        if (opts.json) out(JSON.stringify({ appId, secretKey }));
        else {
          out(`New secret key for ${appId} (shown once): ${secretKey}`);
          out(
            opts.compromised
              ? "The old key stopped working now."
              : `The old key keeps working until ${new Date(now + opts.expireOldIn).toISOString()}.`,
          );
        }
      }),
    );

  const origins = apps.command("origins").description("allowed browser origins of an app");
  origins.command("add <appId> <origin>").action(async (appId: string, origin: string) =>
    withStore(async (store) => {
      await requireApp(store, appId);
      const [normalized] = normalizeOrigins([origin]);
      const added = await store.addOrigin(appId, normalized as string, Date.now());
      out(added ? `added ${normalized}` : `${normalized} was already allowed`);
    }),
  );
  origins.command("remove <appId> <origin>").action(async (appId: string, origin: string) =>
    withStore(async (store) => {
      await requireApp(store, appId);
      const [normalized] = normalizeOrigins([origin]);
      const removed = await store.removeOrigin(appId, normalized as string);
      if (!removed) throw new CliError(`${normalized} is not an origin of ${appId}`);
      out(`removed ${normalized}`);
    }),
  );

  apps
    .command("limits <appId>")
    .description("per-app rate-limit overrides (requests per minute)")
    .option("--sessions-per-minute <n>", "RL_SESSIONS for this app", positiveInt)
    .option("--chat-per-minute <n>", "RL_CHAT per user or grant for this app", positiveInt)
    .option("--reset", "back to the defaults (120 and 30)")
    .action(
      async (appId: string, opts: { sessionsPerMinute?: number; chatPerMinute?: number; reset?: boolean }) =>
        withStore(async (store) => {
          if (opts.reset && (opts.sessionsPerMinute !== undefined || opts.chatPerMinute !== undefined)) {
            throw new CliError(
              "give --reset alone, or --sessions-per-minute and --chat-per-minute without it",
            );
          }
          await requireApp(store, appId);
          if (opts.reset) await store.setAppLimits(appId, { sessionsPerMinute: null, chatPerMinute: null });
          else {
            if (opts.sessionsPerMinute === undefined && opts.chatPerMinute === undefined) {
              throw new CliError("give --sessions-per-minute, --chat-per-minute or --reset");
            }
            const limits: { sessionsPerMinute?: number; chatPerMinute?: number } = {};
            if (opts.sessionsPerMinute !== undefined) limits.sessionsPerMinute = opts.sessionsPerMinute;
            if (opts.chatPerMinute !== undefined) limits.chatPerMinute = opts.chatPerMinute;
            await store.setAppLimits(appId, limits);
          }
          out(describeApp(await requireApp(store, appId)));
        }),
    );

  const dev = program.command("dev").description("development shortcuts (refused when NODE_ENV=production)");
  dev
    .command("connect")
    .description("connect a user with a funding key and a cap, without the consent popup")
    .requiredOption("--app <appId>", "the app")
    .requiredOption("--user <appUserId>", "the app's user id")
    .requiredOption("--cap <usd>", "monthly cap in USD", positiveUsd)
    .requiredOption("--funding-key <key>", "an OpenRouter key (sk-or-v1-…)")
    .option("--email <email>", "payer email (default dev+<user>@wattfare.invalid)")
    .option("--json", "print JSON")
    .action(
      async (opts: {
        app: string;
        user: string;
        cap: number;
        fundingKey: string;
        email?: string;
        json?: boolean;
      }) =>
        withStore(async (store, config) => {
          if (config.production) throw new CliError("dev connect is refused when NODE_ENV=production");
          await requireApp(store, opts.app);
          if (!/^[\x21-\x7E]{1,256}$/.test(opts.user))
            throw new CliError("--user must be 1-256 printable ASCII characters");
          if (opts.cap > config.limits.maxMonthlyUsd)
            throw new CliError(
              `--cap must be at most WATTFARE_MAX_MONTHLY_USD (${config.limits.maxMonthlyUsd})`,
            );
          // Checked here, not left to the first chat request, which would blame the payer's funding.
          if (!isFundingKeyShaped(opts.fundingKey, true))
            throw new CliError(
              `--funding-key must be an OpenRouter API key (${OPENROUTER_KEY_PREFIX}…, no spaces): create one at https://openrouter.ai/settings/keys, or use the demo key the simulator (npx openrouter-sim) prints`,
            );
          // As sign-in and password resets look it up, or the payer could never sign in to this account.
          const payerEmail =
            opts.email === undefined
              ? `dev+${encodeURIComponent(opts.user)}@wattfare.invalid`
              : normalizeEmail(opts.email);
          if (payerEmail === undefined)
            throw new CliError("--email must be an email address, e.g. ann@example.com");
          const ring = loadKeyRing(config);
          const fundingId = `fnd_${randomBytes(12).toString("hex")}`;
          const connection = await store.devConnect({
            appId: opts.app,
            appUserId: opts.user,
            capNano: usdToNano(opts.cap, "down"),
            payerEmail,
            funding: {
              id: fundingId,
              keyBlob: encryptFundingKey(ring, opts.fundingKey, fundingId),
              fingerprint: fundingKeyFingerprint(opts.fundingKey),
              source: "dev",
            },
            now: Date.now(),
          });
          const result = {
            appId: opts.app,
            appUserId: opts.user,
            connectionId: connection.id,
            capUsd: opts.cap,
          };
          out(
            opts.json
              ? JSON.stringify(result)
              : `connected ${opts.user} to ${opts.app} with a cap of $${opts.cap}/month`,
          );
        }),
    );

  return program;
}

export async function runCli(argv: string[]): Promise<void> {
  try {
    await buildCli().parseAsync(argv);
  } catch (error) {
    if (
      error instanceof ConfigError ||
      error instanceof CliError ||
      error instanceof AppInputError ||
      error instanceof ServerLockError
    ) {
      process.stderr.write(`error: ${error.message}\n`);
      process.exitCode = 1;
      return;
    }
    throw error;
  }
}
