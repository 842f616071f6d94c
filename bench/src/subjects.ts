/**
 * Starting and stopping the subjects, each in a process of its own: the bare proxy, Wattfare (`wattfare
 * serve` against a temp data dir, set up through its CLI) and the Portkey gateway (installed on demand).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import Database from "better-sqlite3";
import { request } from "undici";
import type { Target } from "./load.js";
import type { SimProcess } from "./sim-control.js";

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(here, "../..");
/** The bin of the Wattfare under test: this tree's, or another build's (`--compare`). */
export const WATTFARE_BIN = path.join(REPO_ROOT, "packages/server/bin/wattfare.js");
const BARE_PROXY = path.join(here, "bare-proxy.js");
export const PEERS_DIR = path.join(REPO_ROOT, "bench/peers");
const PORTKEY_ENTRY = path.join(PEERS_DIR, "node_modules/@portkey-ai/gateway/build/start-server.js");

const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 10_000;
/** Enough upstream sockets for the 1,000-stream run (Wattfare's default pool is 256). */
const UPSTREAM_CONNECTIONS = 1100;

export interface RunningSubject {
  target: Target;
  /** The proxy process (for CPU and RSS). */
  pid: number;
  /** Where the subject's stdout/stderr went. */
  logFile: string;
  stop(): Promise<void>;
}

export interface RunningWattfare extends RunningSubject {
  databaseFile: string;
  /** The simulator key Wattfare's user pays with. */
  fundingKey: string;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (typeof address !== "object" || address === null) throw new Error("no free port");
  return address.port;
}

/**
 * Resolves once `url` answers anything at all. Rejects if the process exits first or time runs out, and
 * then stops the process, so a subject that failed to start leaves nothing running.
 */
async function waitForHttp(url: string, child: ChildProcess, logFile: string): Promise<void> {
  try {
    await pollHttp(url, child, logFile);
  } catch (error) {
    await stopProcess(child);
    throw error;
  }
}

async function pollHttp(url: string, child: ChildProcess, logFile: string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null)
      throw new Error(`exited with ${child.exitCode} before listening (see ${logFile})`);
    try {
      const res = await request(url, { headersTimeout: 1000, bodyTimeout: 1000 });
      await res.body.dump();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(`not listening after ${READY_TIMEOUT_MS} ms (see ${logFile})`);
}

function stopProcess(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const force = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
    child.once("exit", () => {
      clearTimeout(force);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

function spawnLogged(
  args: string[],
  logFile: string,
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): ChildProcess & { pid: number } {
  const log = openSync(logFile, "a");
  const child = spawn(process.execPath, args, { ...options, stdio: ["ignore", log, log] });
  if (child.pid === undefined) throw new Error(`could not start ${args.join(" ")}`);
  return child as ChildProcess & { pid: number };
}

export async function startBareProxy(
  sim: SimProcess,
  simKey: string,
  workDir: string,
  nodeArgs: string[] = [],
): Promise<RunningSubject> {
  const port = await freePort();
  const logFile = path.join(workDir, `bare-proxy-${port}.log`);
  const child = spawnLogged(
    [
      ...nodeArgs,
      BARE_PROXY,
      "--port",
      String(port),
      "--upstream",
      sim.apiUrl,
      "--connections",
      String(UPSTREAM_CONNECTIONS),
    ],
    logFile,
  );
  const base = `http://127.0.0.1:${port}`;
  await waitForHttp(`${base}/`, child, logFile);
  return {
    target: { chatUrl: `${base}/api/v1/chat/completions`, headers: { authorization: `Bearer ${simKey}` } },
    pid: child.pid,
    logFile,
    stop: () => stopProcess(child),
  };
}

/** The environment of every wattfare process: the caller's, minus any Wattfare setting, plus ours. */
function wattfareEnv(dataDir: string, upstreamUrl: string, port: number): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^(WATTFARE_|NODE_ENV$|PORT$|HOST$|LOG_LEVEL$)/.test(name)) env[name] = value;
  }
  return {
    ...env,
    HOST: "127.0.0.1",
    PORT: String(port),
    LOG_LEVEL: "info",
    WATTFARE_DATA_DIR: dataDir,
    WATTFARE_DATABASE_URL: `sqlite:${path.join(dataDir, "wattfare.db")}`,
    WATTFARE_UPSTREAM_URL: upstreamUrl,
    WATTFARE_UPSTREAM_CONNECTIONS: String(UPSTREAM_CONNECTIONS),
  };
}

async function wattfareCli(bin: string, env: NodeJS.ProcessEnv, args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [bin, ...args], { env, timeout: 30_000 });
  return stdout;
}

export const BENCH_USER = "bench-user";

/**
 * Wattfare with everything on, set up the way an operator would: `apps create`, a per-app chat rate
 * limit high enough for the load (an override through the CLI; the defaults are untouched), `dev
 * connect` of one user with the simulator key as funding, then `wattfare serve`.
 */
export async function startWattfare(
  sim: SimProcess,
  simKey: string,
  workDir: string,
  nodeArgs: string[] = [],
  bin = WATTFARE_BIN,
): Promise<RunningWattfare> {
  const dataDir = mkdtempSync(path.join(tmpdir(), "wattfare-bench-"));
  const port = await freePort();
  const env = wattfareEnv(dataDir, sim.apiUrl, port);
  try {
    return await setUpAndServe(bin, env, dataDir, port, simKey, workDir, nodeArgs);
  } catch (error) {
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
}

async function setUpAndServe(
  bin: string,
  env: NodeJS.ProcessEnv,
  dataDir: string,
  port: number,
  simKey: string,
  workDir: string,
  nodeArgs: string[],
): Promise<RunningWattfare> {
  const app = JSON.parse(
    await wattfareCli(bin, env, [
      "apps",
      "create",
      "--name",
      "Wattfare bench",
      "--origin",
      "http://localhost:3000",
      "--json",
    ]),
  ) as { appId: string; secretKey: string };
  await wattfareCli(bin, env, ["apps", "limits", app.appId, "--chat-per-minute", "1000000"]);
  await wattfareCli(bin, env, [
    "dev",
    "connect",
    "--app",
    app.appId,
    "--user",
    BENCH_USER,
    "--cap",
    "1000",
    "--funding-key",
    simKey,
    "--json",
  ]);
  const logFile = path.join(workDir, `wattfare-${port}.log`);
  const child = spawnLogged([...nodeArgs, bin, "serve"], logFile, { env });
  const base = `http://127.0.0.1:${port}`;
  await waitForHttp(`${base}/healthz`, child, logFile);
  return {
    target: {
      chatUrl: `${base}/api/v1/chat/completions`,
      headers: { authorization: `Bearer ${app.secretKey}`, "x-wattfare-user": BENCH_USER },
    },
    pid: child.pid,
    logFile,
    databaseFile: path.join(dataDir, "wattfare.db"),
    fundingKey: simKey,
    stop: async () => {
      await stopProcess(child);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface LedgerCheck {
  /** Which Wattfare process: "measured instance" or "memory instance". */
  instance: string;
  ledgerNano: string;
  simBilledNano: string;
  equal: boolean;
  ledgerEntries: number;
  unreconciled: number;
  openReservations: number;
  /** How long the check waited for in-flight settlements and reconciliation to finish, ms. */
  waitedMs: number;
}

/**
 * Waits until Wattfare has no open reservation (requests cut by the load generator's stop are settled
 * by the reconciler through /generation), then compares its ledger with what the simulator billed.
 */
export async function checkLedger(
  instance: string,
  wattfare: RunningWattfare,
  sim: SimProcess,
  timeoutMs: number,
): Promise<LedgerCheck> {
  const db = new Database(wattfare.databaseFile, { readonly: true, fileMustExist: true });
  db.defaultSafeIntegers(true);
  const startedAt = Date.now();
  try {
    const openCount = db.prepare("SELECT COUNT(*) AS n FROM reservations");
    let open = Number((openCount.get() as { n: bigint }).n);
    while (open > 0 && Date.now() - startedAt < timeoutMs) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      open = Number((openCount.get() as { n: bigint }).n);
    }
    const row = db
      .prepare(
        "SELECT COALESCE(SUM(amount_nano), 0) AS total, COUNT(*) AS n, COALESCE(SUM(unreconciled), 0) AS unreconciled FROM ledger",
      )
      .get() as { total: bigint; n: bigint; unreconciled: bigint };
    const billed = await sim.billedNano(wattfare.fundingKey);
    return {
      instance,
      ledgerNano: row.total.toString(),
      simBilledNano: billed.toString(),
      equal: row.total === billed,
      ledgerEntries: Number(row.n),
      unreconciled: Number(row.unreconciled),
      openReservations: open,
      waitedMs: Date.now() - startedAt,
    };
  } finally {
    db.close();
  }
}

export function portkeyInstalled(): boolean {
  return existsSync(PORTKEY_ENTRY);
}

/** `npm install --prefix bench/peers` (a separate, non-workspace package) when the gateway is absent. */
export async function installPeers(): Promise<void> {
  if (portkeyInstalled()) return;
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  await run(npm, ["install", "--prefix", PEERS_DIR, "--no-audit", "--no-fund"], {
    cwd: REPO_ROOT,
    timeout: 180_000,
  });
  if (!portkeyInstalled()) throw new Error("npm install finished but @portkey-ai/gateway is missing");
}

/**
 * The Portkey OSS gateway routing to the simulator: provider `openai` with `x-portkey-custom-host`
 * (loopback hosts are trusted by default in the 1.15 line).
 */
export async function startPortkey(
  sim: SimProcess,
  simKey: string,
  workDir: string,
): Promise<RunningSubject> {
  const port = await freePort();
  const logFile = path.join(workDir, `portkey-${port}.log`);
  const child = spawnLogged([PORTKEY_ENTRY, `--port=${port}`, "--headless"], logFile, { cwd: PEERS_DIR });
  const base = `http://127.0.0.1:${port}`;
  await waitForHttp(`${base}/`, child, logFile);
  return {
    target: {
      chatUrl: `${base}/v1/chat/completions`,
      headers: {
        authorization: `Bearer ${simKey}`,
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": sim.apiUrl,
      },
    },
    pid: child.pid,
    logFile,
    stop: () => stopProcess(child),
  };
}
