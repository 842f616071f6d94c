/**
 * The real binary, in real processes: first run with no config, the single-server lock, the CLI beside
 * a running server, graceful drain, and a kill -9 — in the middle of a stream, or under concurrent
 * load — that loses nothing.
 */
import { execFile } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { promisify } from "node:util";
import { startSimulator } from "@wattfare/openrouter-sim";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import {
  runCli,
  type ServerProcess,
  spawnServer,
  spawnServerExpectingFailure,
  stopProcess,
  tempDataDir,
  WATTFARE_BIN,
} from "../testing/processes.js";

const running: ServerProcess[] = [];
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const s of running.splice(0)) await stopProcess(s, "SIGKILL");
  for (const c of cleanups.splice(0)) await c();
});

async function serve(env: Record<string, string>): Promise<ServerProcess> {
  const s = await spawnServer(env);
  running.push(s);
  return s;
}

const json = <T>(text: string): T => JSON.parse(text) as T;

describe("wattfare serve", () => {
  it("starts with no configuration, creates its data directory and secret, and prints what to do next", async () => {
    const dir = tempDataDir();
    const s = await serve({ INIT_CWD: dir });
    expect(s.output()).toContain("apps create --name");
    expect(s.output()).toContain("curl");
    expect(s.output()).toContain(path.join(dir, "data", "wattfare.db"));
    expect(s.output()).toContain("Its public URL is http://localhost:8787 (WATTFARE_PUBLIC_URL)");
    expect(s.output()).toContain("Model provider: https://openrouter.ai/api/v1 (WATTFARE_UPSTREAM_URL)");
    const secret = fs.statSync(path.join(dir, "data", "server-secret"));
    expect(secret.mode & 0o777).toBe(0o600);
    expect((await fetch(`${s.url}/readyz`)).status).toBe(200);
    expect(await stopProcess(s)).toBe(0);
  });

  it("creates its data directory for its own user only (0700), whether serve or the CLI runs first: payers' emails and password hashes live there", async () => {
    const forServe = path.join(tempDataDir(), "data");
    expect(await stopProcess(await serve({ WATTFARE_DATA_DIR: forServe }))).toBe(0);
    const forCli = path.join(tempDataDir(), "data");
    await runCli(["apps", "list"], { WATTFARE_DATA_DIR: forCli });
    for (const dir of [forServe, forCli]) expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
  });

  it("warns of a WATTFARE_ setting it does not know (a misspelling), naming it, and starts all the same", async () => {
    const s = await serve({ WATTFARE_DATA_DIR: tempDataDir(), WATTFARE_PUBLC_URL: "https://pay.example" });
    expect(s.output()).toMatch(
      /unknown WATTFARE_ setting ignored.*"setting":"WATTFARE_PUBLC_URL"|"setting":"WATTFARE_PUBLC_URL".*unknown WATTFARE_ setting ignored/,
    );
    expect(await stopProcess(s)).toBe(0);
  });

  it("has the CLI name a WATTFARE_ setting it does not know on stderr, and run the command all the same", async () => {
    const dir = tempDataDir();
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [WATTFARE_BIN, "apps", "list"], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, INIT_CWD: dir, WATTFARE_DATA_DRI: "/elsewhere" },
    });
    expect(stderr).toBe(
      "warning: WATTFARE_DATA_DRI is not a Wattfare setting (misspelt?) and is ignored; see docs/self-hosting.md\n",
    );
    expect(stdout).toContain("no apps yet");
  });

  it("prints CLI commands that reach its data directory, and so its secret, from any directory", async () => {
    const dir = tempDataDir();
    const s = await serve({ INIT_CWD: dir });
    const printed = /^ +(.+) apps create --name "My app"/m.exec(s.output())?.[1] ?? "";
    expect(printed).toMatch(/^WATTFARE_DATA_DIR=\S+ node \S+wattfare\.js$/);
    expect(printed).toContain(`WATTFARE_DATA_DIR=${path.join(dir, "data")} `);
    // Run as printed, by a shell in another directory (no npm registry lookup: the CLI is named by path).
    const elsewhere = tempDataDir();
    const run = async (args: string) =>
      (
        await promisify(execFile)("sh", ["-c", `${printed} ${args}`], {
          cwd: elsewhere,
          env: { PATH: process.env.PATH, HOME: process.env.HOME, INIT_CWD: elsewhere },
        })
      ).stdout;
    const app = json<{ appId: string }>(await run("apps create --name A --json"));
    await run(`dev connect --app ${app.appId} --user u --cap 1 --funding-key sk-or-v1-x`);
    expect(fs.existsSync(path.join(elsewhere, "data"))).toBe(false);
    expect(await stopProcess(s)).toBe(0);
  });

  it("says which port is taken, and how to choose another, when its port is in use", async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
    const { port } = holder.address() as net.AddressInfo;
    try {
      const failed = await spawnServerExpectingFailure({
        WATTFARE_DATA_DIR: tempDataDir(),
        PORT: String(port),
      });
      expect(failed.code).toBe(1);
      expect(failed.output).toBe(
        `error: 127.0.0.1:${port} is in use by another program; set PORT to another port (PORT=0 picks a free one)\n`,
      );
    } finally {
      holder.close();
    }
  });

  it("fails at start in one line naming the database, not with a stack trace, when its data directory cannot be used", async () => {
    const file = path.join(tempDataDir(), "not-a-directory");
    fs.writeFileSync(file, "");
    const failed = await spawnServerExpectingFailure({ WATTFARE_DATA_DIR: file });
    expect(failed.code).toBe(1);
    expect(failed.output).toMatch(
      new RegExp(`^error: cannot use the database ${file}/wattfare\\.db \\(.*\\); WATTFARE_DATA_DIR .*\n$`),
    );
    await expect(runCli(["apps", "list"], { WATTFARE_DATA_DIR: file })).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringMatching(
        /^error: cannot use the database \S+ \(.*\); WATTFARE_DATA_DIR [^\n]*\n$/,
      ),
    });
  });

  it("fails at start in one line naming HOST, not with a stack trace, when it cannot listen on that address", async () => {
    // 192.0.2.1 (TEST-NET-1) is no address of this machine: EADDRNOTAVAIL.
    const failed = await spawnServerExpectingFailure({ WATTFARE_DATA_DIR: tempDataDir(), HOST: "192.0.2.1" });
    expect(failed.code).toBe(1);
    expect(failed.output).toMatch(
      /^error: cannot listen on 192\.0\.2\.1:0 \(.*\); set HOST to an address of this machine[^\n]*\n$/,
    );
  });

  it("refuses to start a second server on the same database file", async () => {
    const dir = tempDataDir();
    await serve({ WATTFARE_DATA_DIR: dir });
    const second = await spawnServerExpectingFailure({ WATTFARE_DATA_DIR: dir });
    expect(second.code).toBe(1);
    expect(second.output).toContain("another Wattfare server");
  });

  it("starts after a previous server was killed with -9 (the stale lock is taken over)", async () => {
    const dir = tempDataDir();
    const first = await serve({ WATTFARE_DATA_DIR: dir });
    await stopProcess(first, "SIGKILL");
    const second = await serve({ WATTFARE_DATA_DIR: dir });
    expect((await fetch(`${second.url}/healthz`)).status).toBe(200);
  });

  it("fails at start naming every configuration problem", async () => {
    const result = await spawnServerExpectingFailure({
      NODE_ENV: "production",
      PORT: "99999",
      WATTFARE_DATABASE_URL: "postgres://localhost/x",
    });
    expect(result.code).toBe(1);
    expect(result.output).toContain("PORT");
    expect(result.output).not.toContain("    at ");
  });
});

describe("the CLI beside a running server", () => {
  it("creates an app whose key works on the very next request, and applies new limits at once", async () => {
    const dir = tempDataDir();
    const env = { WATTFARE_DATA_DIR: dir };
    const s = await serve(env);
    const app = json<{ appId: string; secretKey: string }>(
      await runCli(["apps", "create", "--name", "Live", "--origin", "http://localhost:3000", "--json"], env),
    );
    const session = () =>
      fetch(`${s.url}/api/v1/sessions`, {
        method: "POST",
        headers: { authorization: `Bearer ${app.secretKey}`, "content-type": "application/json" },
        body: JSON.stringify({ appUserId: "u1" }),
      });
    expect((await session()).status).toBe(200);
    await runCli(["apps", "limits", app.appId, "--sessions-per-minute", "1"], env);
    expect((await session()).status).toBe(429);
    const list = json<Array<{ id: string; sessionsPerMinute: number }>>(
      await runCli(["apps", "list", "--json"], env),
    );
    expect(list.find((a) => a.id === app.appId)?.sessionsPerMinute).toBe(1);
  });

  it("refuses, in one line and with exit code 1, to migrate a database that a server on an older schema still serves", async () => {
    const dir = tempDataDir();
    const env = { WATTFARE_DATA_DIR: dir };
    await serve(env);
    // As if this CLI were a newer version than the running server: its last migration is pending.
    const db = new Database(path.join(dir, "wattfare.db"));
    db.prepare("DELETE FROM kysely_migration WHERE name = (SELECT max(name) FROM kysely_migration)").run();
    db.close();
    for (const args of [["apps", "list"], ["migrate"]]) {
      const failed = await runCli(args, env).then(
        () => undefined,
        (error: { code?: number; stderr?: string }) => error,
      );
      expect(failed?.code).toBe(1);
      expect(failed?.stderr).toMatch(
        /^error: a Wattfare server \(pid \d+\) is serving \S+ on an older schema; stop it before migrating \(\S+ pending\)\n$/,
      );
    }
  });

  it("waits for the write lock while another connection holds it, and past the busy timeout fails in one line with exit code 1", async () => {
    const dir = tempDataDir();
    const env = { WATTFARE_DATA_DIR: dir };
    const app = json<{ appId: string }>(await runCli(["apps", "create", "--name", "A", "--json"], env));
    const holder = new Database(path.join(dir, "wattfare.db"));
    cleanups.push(async () => {
      holder.close();
    });
    const connect = (user: string) =>
      runCli(
        ["dev", "connect", "--app", app.appId, "--user", user, "--cap", "1", "--funding-key", "sk-or-v1-x"],
        env,
      );
    // Held for a moment, as a server's commit holds it: the command waits, then goes through.
    holder.exec("BEGIN IMMEDIATE");
    setTimeout(() => holder.exec("ROLLBACK"), 500);
    expect(await connect("u1")).toContain("connected u1");
    // Held past the 5 s busy timeout: one line saying so, not a stack trace.
    holder.exec("BEGIN IMMEDIATE");
    const failed = await connect("u2").then(
      () => undefined,
      (error: { code?: number; stderr?: string }) => error,
    );
    holder.exec("ROLLBACK");
    expect(failed?.code).toBe(1);
    expect(failed?.stderr).toBe(
      `error: cannot use the database ${path.join(dir, "wattfare.db")}: another connection held its write lock for more than 5 s (database is locked); try again, and if it persists, look for a process keeping a transaction open on it\n`,
    );
  });

  it("rotates a key with a grace period, and ends the old key at once when compromised", async () => {
    const dir = tempDataDir();
    const env = { WATTFARE_DATA_DIR: dir };
    const s = await serve(env);
    const app = json<{ appId: string; secretKey: string }>(
      await runCli(["apps", "create", "--name", "R", "--json"], env),
    );
    const status = (key: string) =>
      fetch(`${s.url}/api/v1/status?appUserId=u`, { headers: { authorization: `Bearer ${key}` } }).then(
        (r) => r.status,
      );
    const rotated = json<{ secretKey: string }>(
      await runCli(["apps", "rotate-key", app.appId, "--json"], env),
    );
    expect(await status(app.secretKey)).toBe(200);
    expect(await status(rotated.secretKey)).toBe(200);
    const again = json<{ secretKey: string }>(
      await runCli(["apps", "rotate-key", app.appId, "--compromised", "--json"], env),
    );
    expect(await status(app.secretKey)).toBe(401);
    expect(await status(rotated.secretKey)).toBe(401);
    expect(await status(again.secretKey)).toBe(200);
    // Listed with both times in one unit, ISO 8601, the compromise no earlier than the app's creation.
    const [listed] = json<Array<{ createdAt: string; compromisedAt: string }>>(
      await runCli(["apps", "list", "--json"], env),
    );
    const iso = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
    expect(listed?.createdAt).toMatch(iso);
    expect(listed?.compromisedAt).toMatch(iso);
    const created = Date.parse(listed?.createdAt ?? "");
    const compromised = Date.parse(listed?.compromisedAt ?? "");
    expect(compromised).toBeGreaterThanOrEqual(Math.floor(created / 1000) * 1000);
    expect(compromised - created).toBeLessThan(60_000);
  });
});

/**
 * A data directory with an app and a user connected to a fresh simulator key, ready to `serve`;
 * `stream(url)` starts a streaming chat as that user and returns its reader.
 */
async function connectedSetup(
  sim: Parameters<typeof startSimulator>[0],
  extraEnv: Record<string, string> = {},
  { cap = "5", chatPerMinute }: { cap?: string; chatPerMinute?: number } = {},
) {
  const simulator = await startSimulator(sim);
  cleanups.push(() => simulator.close());
  const dir = tempDataDir();
  const env = { WATTFARE_DATA_DIR: dir, WATTFARE_UPSTREAM_URL: simulator.apiUrl, ...extraEnv };
  const app = json<{ appId: string; secretKey: string }>(
    await runCli(["apps", "create", "--name", "S", "--json"], env),
  );
  if (chatPerMinute !== undefined) {
    await runCli(["apps", "limits", app.appId, "--chat-per-minute", String(chatPerMinute)], env);
  }
  const key = simulator.control.createKey({ credits: 10 });
  await runCli(
    ["dev", "connect", "--app", app.appId, "--user", "alice", "--cap", cap, "--funding-key", key],
    env,
  );
  const chat = (url: string, stream: boolean) =>
    fetch(`${url}/api/v1/chat/completions`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${app.secretKey}`,
        "content-type": "application/json",
        "x-wattfare-user": "alice",
      },
      body: JSON.stringify({
        model: "openai/gpt-4o-mini",
        messages: [{ role: "user", content: "hi" }],
        stream,
      }),
    });
  const stream = async (url: string) =>
    ((await chat(url, true)).body as ReadableStream<Uint8Array>).getReader();
  /** The database, read-only: open reservations (and how many know their generation id), the ledger total. */
  const ledger = () => {
    const db = new Database(path.join(dir, "wattfare.db"), { readonly: true });
    db.defaultSafeIntegers(true);
    try {
      const total = (
        db.prepare("SELECT COALESCE(SUM(amount_nano), 0) AS t FROM ledger").get() as { t: bigint }
      ).t;
      const open = (db.prepare("SELECT COUNT(*) AS n FROM reservations").get() as { n: bigint }).n;
      const identified = (
        db.prepare("SELECT COUNT(*) AS n FROM reservations WHERE generation_id IS NOT NULL").get() as {
          n: bigint;
        }
      ).n;
      return { total, open: Number(open), identified: Number(identified) };
    } finally {
      db.close();
    }
  };
  return { sim: simulator, env, key, app, dir, chat, stream, ledger };
}

describe("shutdown", () => {
  it("drains on SIGTERM: an in-flight stream completes, is settled, and the process exits 0", async () => {
    const setup = await connectedSetup({ interTokenMs: 10, responseTokens: 60 });
    const s = await serve(setup.env);
    const reader = await setup.stream(s.url);
    let text = new TextDecoder().decode((await reader.read()).value);
    s.child.kill("SIGTERM");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    expect(text.trim().endsWith("data: [DONE]")).toBe(true);
    expect(await s.exited).toBe(0);
    expect(setup.ledger()).toMatchObject({ open: 0, total: setup.sim.control.billedNano(setup.key) });
  });

  it("refuses dev connect in production", async () => {
    const dir = tempDataDir();
    const prod = {
      WATTFARE_DATA_DIR: dir,
      NODE_ENV: "production",
      WATTFARE_SERVER_SECRET: "p".repeat(48),
      WATTFARE_PUBLIC_URL: "https://wattfare.example",
    };
    const app = json<{ appId: string }>(await runCli(["apps", "create", "--name", "P", "--json"], prod));
    await expect(
      runCli(
        ["dev", "connect", "--app", app.appId, "--user", "u", "--cap", "1", "--funding-key", "sk-or-v1-x"],
        prod,
      ),
    ).rejects.toThrow(/refused when NODE_ENV=production/);
  });

  it("dev connect files the payer under --email as sign-in looks it up (trimmed, lower-cased), and refuses one that is no address", async () => {
    const dir = tempDataDir();
    const env = { WATTFARE_DATA_DIR: dir };
    const app = json<{ appId: string }>(await runCli(["apps", "create", "--name", "E", "--json"], env));
    const connect = (user: string, email: string) =>
      runCli(
        [
          "dev",
          "connect",
          "--app",
          app.appId,
          "--user",
          user,
          "--cap",
          "1",
          "--funding-key",
          "sk-or-v1-x",
        ].concat(["--email", email]),
        env,
      );
    await connect("u1", " Ann@Example.COM ");
    for (const bad of ["", "not-an-address", "a b@example.com"]) {
      await expect(connect("u2", bad)).rejects.toMatchObject({
        code: 1,
        stderr: "error: --email must be an email address, e.g. ann@example.com\n",
      });
    }
    const db = new Database(path.join(dir, "wattfare.db"), { readonly: true });
    try {
      expect(db.prepare("SELECT email FROM payers").pluck().all()).toEqual(["ann@example.com"]);
    } finally {
      db.close();
    }
  });

  it.each(["notakey", "sk-or-v1-", "sk-or-v1-abc def", `sk-proj-${"0".repeat(40)}`])(
    "refuses dev connect with a funding key %j that is not an OpenRouter key, saying where to get one",
    async (key) => {
      const env = { WATTFARE_DATA_DIR: tempDataDir() };
      const app = json<{ appId: string }>(await runCli(["apps", "create", "--name", "K", "--json"], env));
      const connect = [
        "dev",
        "connect",
        "--app",
        app.appId,
        "--user",
        "u",
        "--cap",
        "1",
        "--funding-key",
        key,
      ];
      await expect(runCli(connect, env)).rejects.toThrow(
        /--funding-key must be an OpenRouter API key \(sk-or-v1-…, no spaces\): create one at https:\/\/openrouter\.ai\/settings\/keys, or use the demo key the simulator/,
      );
    },
  );

  it("apps limits refuses --reset together with a limit, instead of resetting and dropping that limit", async () => {
    const env = { WATTFARE_DATA_DIR: tempDataDir() };
    const app = json<{ appId: string }>(await runCli(["apps", "create", "--name", "L", "--json"], env));
    await runCli(["apps", "limits", app.appId, "--chat-per-minute", "7"], env);
    await expect(
      runCli(["apps", "limits", app.appId, "--reset", "--sessions-per-minute", "5"], env),
    ).rejects.toMatchObject({
      code: 1,
      stderr: "error: give --reset alone, or --sessions-per-minute and --chat-per-minute without it\n",
    });
    const [listed] = json<Array<{ sessionsPerMinute: number | null; chatPerMinute: number | null }>>(
      await runCli(["apps", "list", "--json"], env),
    );
    expect(listed).toMatchObject({ sessionsPerMinute: null, chatPerMinute: 7 });
  });

  it.each([
    [["apps", "limits", "APP", "--chat-per-minute", "0x10"], /must be an integer/],
    [["apps", "limits", "APP", "--chat-per-minute", "1e3"], /must be an integer/],
    [
      ["dev", "connect", "--app", "APP", "--user", "u", "--funding-key", "k", "--cap", "1e-12"],
      /at least 0.01/,
    ],
    [["dev", "connect", "--app", "APP", "--user", "u", "--funding-key", "k", "--cap", "1000.01"], /at most/],
  ])("refuses the numbers in %j", async (args, message) => {
    const env = { WATTFARE_DATA_DIR: tempDataDir() };
    const app = json<{ appId: string }>(await runCli(["apps", "create", "--name", "N", "--json"], env));
    await expect(
      runCli(
        args.map((a) => (a === "APP" ? app.appId : a)),
        env,
      ),
    ).rejects.toThrow(message);
  });
});

describe("server secret rotation", () => {
  it("re-encrypts stored funding keys when started with a new secret and the previous one, so the previous one can go", async () => {
    const setup = await connectedSetup({ interTokenMs: 0, responseTokens: 4 });
    // dev connect stored the funding key under the generated dev secret: that is the old one.
    const old = fs.readFileSync(path.join(setup.env.WATTFARE_DATA_DIR, "server-secret"), "utf8").trim();
    const fresh = "n".repeat(48);
    const both = await serve({
      ...setup.env,
      WATTFARE_SERVER_SECRET: fresh,
      WATTFARE_SERVER_SECRET_PREVIOUS: old,
    });
    expect(await stopProcess(both)).toBe(0);
    const after = await serve({ ...setup.env, WATTFARE_SERVER_SECRET: fresh });
    const reader = await setup.stream(after.url);
    let text = "";
    for (let read = await reader.read(); !read.done; read = await reader.read()) {
      text += new TextDecoder().decode(read.value);
    }
    expect(text).toContain("[DONE]"); // not 402 funding_invalid: the key is readable under the new secret
    for (let i = 0; i < 200 && setup.ledger().total === 0n; i++) await new Promise((r) => setTimeout(r, 50));
    expect(setup.ledger().total).toBe(setup.sim.control.billedNano(setup.key));
    expect(setup.ledger().total).toBeGreaterThan(0n);
  });
});

describe("durability", () => {
  it("loses nothing when the server is killed with -9 mid-stream: the next server reconciles the reservation", async () => {
    const setup = await connectedSetup(
      { interTokenMs: 20, responseTokens: 400 },
      { WATTFARE_RECONCILER_TICK_MS: "100" },
    );
    const first = await serve(setup.env);
    const reader = await setup.stream(first.url);
    let seen = "";
    while (!seen.includes('"content"')) seen += new TextDecoder().decode((await reader.read()).value);
    await stopProcess(first, "SIGKILL");
    await reader.cancel().catch(() => undefined);
    expect(setup.ledger().open).toBe(1); // durable before it was forwarded

    await serve(setup.env);
    for (let i = 0; i < 150 && setup.ledger().open > 0; i++) await new Promise((r) => setTimeout(r, 100));
    const after = setup.ledger();
    expect(after.open).toBe(0);
    expect(after.total).toBe(setup.sim.control.billedNano(setup.key));
    expect(after.total).toBeGreaterThan(0n);
  });

  it("loses nothing when the server is killed with -9 while a non-stream answer is still generated: its generation id was durable at the headers", async () => {
    // The headers (with the generation id) come at once, the JSON body only after two seconds.
    const setup = await connectedSetup(
      { interTokenMs: 0, responseTokens: 20, ttftMs: 2_000, nonStreamBlankLines: 1 },
      { WATTFARE_RECONCILER_TICK_MS: "100" },
    );
    const first = await serve(setup.env);
    const answer = setup.chat(first.url, false).catch(() => undefined);
    for (let i = 0; i < 100 && setup.ledger().identified === 0; i++)
      await new Promise((r) => setTimeout(r, 20));
    await stopProcess(first, "SIGKILL");
    await answer;
    expect(setup.ledger()).toMatchObject({ open: 1, identified: 1 });

    await serve(setup.env);
    for (let i = 0; i < 150 && setup.ledger().open > 0; i++) await new Promise((r) => setTimeout(r, 100));
    const after = setup.ledger();
    expect(after.open).toBe(0);
    expect(after.total).toBe(setup.sim.control.billedNano(setup.key)); // not the reservation's worst case
    expect(after.total).toBeGreaterThan(0n);
  });
});

/** What a killed server left in its database, and what the next one made of it. */
function books(dir: string) {
  const db = new Database(path.join(dir, "wattfare.db"), { readonly: true });
  db.defaultSafeIntegers(true);
  try {
    type Row = Record<string, unknown>;
    const ledger = (
      db
        .prepare("SELECT request_id, kind, amount_nano, generation_id, model, unreconciled FROM ledger")
        .all() as Row[]
    ).map((r) => ({
      requestId: r.request_id as string,
      kind: r.kind as string,
      amount: r.amount_nano as bigint,
      generationId: r.generation_id as string | null,
      model: r.model as string,
      unreconciled: r.unreconciled === 1n,
    }));
    const open = (
      db.prepare("SELECT id, amount_nano, generation_id, model, stream FROM reservations").all() as Row[]
    ).map((r) => ({
      id: r.id as string,
      amount: r.amount_nano as bigint,
      generationId: r.generation_id as string | null,
      model: r.model as string,
      stream: r.stream === 1n,
    }));
    const usage = (db.prepare("SELECT COALESCE(SUM(settled_nano), 0) AS n FROM usage").get() as { n: bigint })
      .n;
    return { ledger, open, usage };
  } finally {
    db.close();
  }
}

const sum = (amounts: bigint[]): bigint => amounts.reduce((a, b) => a + b, 0n);
const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `ready` every 20 ms until it holds; fails with `what` after `ms`. */
async function until(what: string, ready: () => boolean, ms = 8_000, detail?: () => string): Promise<void> {
  const end = Date.now() + ms;
  while (!ready()) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}${detail ? ` (${detail()})` : ""}`);
    await wait(20);
  }
}

/** Kinds of request in the load, told apart by model and stream flag (as the reservations table keeps them). */
const GPT = "openai/gpt-4o-mini"; // cancellable: a stream cut off is billed for what was sent, at once
const WHOLE = "wattfare/non-cancellable"; // a stream cut off is billed whole, when it would have ended
const QUICK = "meta-llama/llama-3.2-1b-instruct";
/** Tokens (20 ms each) of the held answers, sent last: one timer of 3 s each at the simulator. */
const HELD_TOKENS = 150;

/**
 * When the server is killed:
 * - `mid-flight`: every slow request under way — non-stream answers waiting for their headers and still
 *   generating, streams mid-way — with short requests being admitted, answered and settled around them;
 * - `as streams end`: the moment the first of ten streams of the same length has its last event, the
 *   others ending, their settlements being written, short requests still coming and going.
 */
type KillPoint = "mid-flight" | "as streams end";

describe("durability under load", () => {
  it.each<KillPoint>(["mid-flight", "as streams end"])(
    "the ledger survives kill -9 under concurrent load (%s): nothing stays open, each generation is charged once — at its cost when its id was known, at its reservation when not — within the cap and never below what was billed",
    async (killPoint) => {
      const CAP = 1_000_000_000n; // $1
      // Tokens (20 ms each) of the slow answers: mid-flight, long enough to outlast the kill by far;
      // otherwise the kill waits for their end.
      const SLOW_TOKENS = killPoint === "mid-flight" ? 200 : 100;
      const setup = await connectedSetup(
        { interTokenMs: 20, responseTokens: 400 },
        {
          WATTFARE_RECONCILER_TICK_MS: "100",
          WATTFARE_GENERATION_BACKOFF_MS: "50",
          // Far longer than the test waits: the dead process's reservations can only be closed in time
          // by the next server taking them over at its start, all of them.
          WATTFARE_RESERVATION_LEASE_MS: "60000",
        },
        { cap: "1", chatPerMinute: 1000 },
      );
      const { sim } = setup;
      const first = await serve(setup.env);

      let killed = false;
      const begun = new Set<string>(); // request ids of answers whose headers came
      const completed = new Set<string>(); // request ids of answers received in full
      const refused: string[] = []; // every request the server answered is admitted and answered 200
      const send = (tag: string, body: { model: string; stream: boolean; max_tokens: number }) => {
        const progress = { headers: false, events: 0, ended: false };
        const done = (async () => {
          const res = await fetch(`${first.url}/api/v1/chat/completions`, {
            method: "POST",
            headers: {
              authorization: `Bearer ${setup.app.secretKey}`,
              "content-type": "application/json",
              "x-wattfare-user": "alice",
            },
            body: JSON.stringify({ ...body, messages: [{ role: "user", content: `${tag} say something` }] }),
          });
          progress.headers = true;
          begun.add(res.headers.get("x-request-id") ?? "");
          if (res.status !== 200) refused.push(`${tag}: ${res.status} ${await res.text()}`);
          const decoder = new TextDecoder();
          let text = "";
          const reader = (res.body as ReadableStream<Uint8Array>).getReader();
          for (let read = await reader.read(); !read.done; read = await reader.read()) {
            const piece = decoder.decode(read.value, { stream: true });
            progress.events += piece.split("data: ").length - 1; // a rough count is enough here
            progress.ended ||= `${text.slice(-16)}${piece}`.includes("data: [DONE]");
            text += piece;
          }
          if (body.stream ? progress.ended : text.includes('"usage"')) {
            completed.add(res.headers.get("x-request-id") ?? "");
          }
        })().catch(() => undefined); // cut off by the kill
        return { progress, done };
      };
      const seenBySim = (tag: string) =>
        sim.control.requests().filter((r) => JSON.stringify(r.body ?? "").includes(tag)).length;

      // Slow answers, each begun at the simulator: a non-stream one sends its headers (with the
      // generation id) at once, then its JSON once generated.
      sim.control.setTiming({ nonStreamBlankLines: 1 });
      const generating = Array.from({ length: 8 }, (_, i) =>
        send(`json-${i}`, { model: GPT, stream: false, max_tokens: SLOW_TOKENS }),
      );
      const cut = Array.from({ length: 10 }, (_, i) =>
        send(`cut-${i}`, { model: GPT, stream: true, max_tokens: SLOW_TOKENS }),
      );
      const whole = Array.from({ length: 6 }, (_, i) =>
        send(`whole-${i}`, { model: WHOLE, stream: true, max_tokens: SLOW_TOKENS }),
      );
      // Short requests one after another on 4 connections until the kill: streams, and non-stream
      // answers that come whole with their headers (settled before they are sent on).
      let quickDone = 0;
      const pumps = Array.from({ length: 4 }, async (_, p) => {
        for (let i = 0; !killed; i++) {
          const stream = i % 2 === 0;
          await send(`quick-${p}-${i}`, { model: QUICK, stream, max_tokens: stream ? 3 : 1 }).done;
          quickDone++;
        }
      });
      await until(
        "every slow request is under way",
        () =>
          generating.every((r) => r.progress.headers) &&
          [...cut, ...whole].every((r) => r.progress.events >= 2) &&
          quickDone >= 8,
      );
      if (killPoint === "as streams end") {
        await until("the streams are near their end", () =>
          cut.every((r) => r.progress.events >= SLOW_TOKENS - 10),
        );
      }
      // Sent upstream last, so that they outlast the kill by far whenever it comes: non-stream answers
      // whose headers come only with their JSON. Wattfare cannot know their generation ids. More than
      // the reconciler claims in one batch when the kill comes mid-flight.
      sim.control.setTiming({ nonStreamBlankLines: 0 });
      const HELD = killPoint === "mid-flight" ? 110 : 8;
      const held = Array.from({ length: HELD }, (_, i) =>
        send(`held-${i}`, { model: GPT, stream: false, max_tokens: HELD_TOKENS }),
      );
      await until("the simulator has every held request", () => seenBySim("held-") === HELD);
      const all = [...held, ...generating, ...cut, ...whole];
      if (killPoint === "mid-flight") {
        // A burst at once; the kill comes as soon as the simulator has the first few of it.
        const burst = Array.from({ length: 10 }, (_, i) =>
          send(`burst-${i}`, { model: QUICK, stream: i % 2 === 0, max_tokens: 3 }),
        );
        all.push(...burst);
        await until("the burst reaches the simulator", () => seenBySim("burst-") >= 3);
      } else {
        await until("a stream has ended", () => cut.some((r) => r.progress.ended));
      }
      killed = true;
      await stopProcess(first, "SIGKILL");
      await Promise.all([...all.map((r) => r.done), ...pumps]);
      expect(refused).toEqual([]);

      // What the killed process left: the reservations still open, those of answers begun identified.
      const atKill = books(setup.dir);
      const openOf = (model: string, stream: boolean, identified: boolean) =>
        atKill.open.filter(
          (r) => r.model === model && r.stream === stream && (r.generationId !== null) === identified,
        ).length;
      expect(openOf(GPT, false, false)).toBe(HELD); // waiting for upstream headers
      // The generation id is durable before the first byte goes to the client: any answer begun has it.
      expect(atKill.open.filter((r) => begun.has(r.id) && r.generationId === null)).toEqual([]);
      if (killPoint === "mid-flight") {
        expect(openOf(GPT, false, true)).toBe(8); // non-stream, still generating
        expect(openOf(GPT, true, true)).toBe(10); // mid-stream
        expect(openOf(WHOLE, true, true)).toBe(6); // mid-stream, to be billed whole later
      }
      expect(
        sum(atKill.ledger.map((e) => e.amount)) + sum(atKill.open.map((r) => r.amount)),
      ).toBeLessThanOrEqual(CAP);

      const second = await serve(setup.env);
      const billed = () => new Map(sim.control.generations(setup.key).map((g) => [g.id, g]));
      // Done once nothing is open and the simulator has ended (and billed) every generation it began.
      await until(
        "every reservation is closed and every generation billed",
        () => {
          const generations = billed();
          return (
            books(setup.dir).open.length === 0 &&
            sim.control
              .requests()
              .every((r) => r.body === null || (r.generationId !== null && generations.has(r.generationId)))
          );
        },
        15_000,
        () => `${books(setup.dir).open.length} open`,
      );
      const after = books(setup.dir);
      const generations = billed();
      const total = sum(after.ledger.map((e) => e.amount));
      const charged = new Map(after.ledger.map((e) => [e.requestId, e]));

      // Each request charged once, each generation under one request.
      expect(after.ledger.filter((e) => e.kind !== "settle")).toEqual([]);
      expect(charged.size).toBe(after.ledger.length);
      const identified = after.ledger.filter((e) => e.generationId !== null);
      expect(new Set(identified.map((e) => e.generationId)).size).toBe(identified.length);
      // A known generation id: exactly what the simulator billed for it.
      expect(
        identified.filter((e) => generations.get(e.generationId as string)?.billedNano !== e.amount),
      ).toEqual([]);
      // Every reservation open at the kill is charged, under the generation id it had; one without at
      // its reservation, flagged.
      for (const r of atKill.open) {
        const entry = charged.get(r.id);
        expect(entry, r.id).toMatchObject({ generationId: r.generationId });
        if (r.generationId === null) expect(entry).toMatchObject({ amount: r.amount, unreconciled: true });
      }
      // Charges without a generation id are of reservations the killed process left open, no others.
      const unidentified = after.ledger.filter((e) => e.generationId === null);
      const openAtKill = new Set(atKill.open.map((r) => r.id));
      expect(unidentified.filter((e) => !openAtKill.has(e.requestId))).toEqual([]);
      // Generations Wattfare never learnt the id of (the held ones at least): each covered by a charge
      // without an id, of its model, at least as large (a reservation is a true bound of the cost).
      const knownIds = new Set(identified.map((e) => e.generationId));
      const unknown = [...generations.values()].filter((g) => !knownIds.has(g.id));
      expect(unknown.length).toBeGreaterThanOrEqual(8);
      const descending = (a: bigint, b: bigint) => (a < b ? 1 : a > b ? -1 : 0);
      for (const model of new Set(unknown.map((g) => g.model))) {
        const costs = unknown.filter((g) => g.model === model).map((g) => g.billedNano);
        const charges = unidentified.filter((e) => e.model === model).map((e) => e.amount);
        costs.sort(descending);
        charges.sort(descending);
        expect(charges.length, model).toBeGreaterThanOrEqual(costs.length);
        for (const [i, cost] of costs.entries()) expect(charges[i], model).toBeGreaterThanOrEqual(cost);
      }
      // Answers received in full were charged.
      expect([...completed].filter((id) => !charged.has(id))).toEqual([]);

      expect(after.open).toEqual([]);
      expect(total).toBeLessThanOrEqual(CAP);
      expect(total).toBeGreaterThanOrEqual(sim.control.billedNano(setup.key));
      expect(after.usage).toBe(total);
      // The new server's own counters, which its admission decides on, agree with the ledger.
      const status = json<{ usage: { monthlyUsd: number }; remainingUsd: number }>(
        await (
          await fetch(`${second.url}/api/v1/status?appUserId=alice`, {
            headers: { authorization: `Bearer ${setup.app.secretKey}` },
          })
        ).text(),
      );
      const micro = (nano: bigint, up: boolean) => Number((nano + (up ? 999n : 0n)) / 1000n) / 1e6;
      expect(status.usage.monthlyUsd).toBe(micro(total, true));
      expect(status.remainingUsd).toBe(micro(CAP - total, false));
    },
    60_000,
  );
});
