/**
 * The offline demo: the OpenRouter simulator (standing in for the model provider and its OAuth page),
 * a Wattfare broker on SQLite in a fresh temporary directory with a dev app registered for the chat
 * app's origin, and the chat app itself, all on this machine. `npm run demo` runs it (demo-main.ts).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type SimulatorOptions, startSimulator } from "@wattfare/openrouter-sim";
import { Wattfare } from "@wattfare/sdk/server";
import { createApp, createLogger, loadConfig, type MailMessage, startServer } from "@wattfare/server";
import { startChatApp } from "./server.js";

/**
 * Where things listen; ports fall back to free ones when taken.
 *
 * @example
 * ```ts
 * const options: DemoOptions = { appPort: 3000, wattfarePort: 8787, sim: { interTokenMs: 40 } };
 * ```
 */
export interface DemoOptions {
  /** The chat app's port. Default: 3000 (0: any free port). */
  appPort?: number | undefined;
  /** Wattfare's port. Default: 8787 (0: any free port). */
  wattfarePort?: number | undefined;
  /** The simulator's timing; the default streams visibly, a token every 40 ms. */
  sim?: SimulatorOptions | undefined;
  /** Wattfare's log level. Default: `warn`. */
  logLevel?: string | undefined;
  /**
   * Receives the payers' emails (confirmation and password-reset links) instead of Wattfare's outbox,
   * which a warn-level log never shows. `npm run demo` prints them.
   */
  onMail?: ((message: MailMessage) => void) | undefined;
}

/**
 * A running demo.
 *
 * @example
 * ```ts
 * const demo: RunningDemo = await startDemo();
 * console.log(demo.appUrl);
 * await demo.close();
 * ```
 */
export interface RunningDemo {
  /** The chat app, e.g. `http://localhost:3000`. */
  appUrl: string;
  /** Wattfare, e.g. `http://127.0.0.1:8787` (its payer pages: `/signup`, `/account`). */
  wattfareUrl: string;
  /** The OpenRouter simulator. */
  simulatorUrl: string;
  /** Wattfare's data directory (deleted by `close()`). */
  dataDir: string;
  /** Stops everything and deletes the data directory. */
  close(): Promise<void>;
}

/**
 * Starts the simulator, Wattfare and the chat app.
 *
 * @example
 * ```ts
 * const demo = await startDemo({ appPort: 0, wattfarePort: 0 });
 * ```
 */
export async function startDemo(options: DemoOptions = {}): Promise<RunningDemo> {
  const sim = await startSimulator({ ttftMs: 300, interTokenMs: 40, responseTokens: 32, ...options.sim });
  const dataDir = await mkdtemp(join(tmpdir(), "wattfare-demo-"));
  const stops: (() => Promise<void>)[] = [
    () => sim.close(),
    () => rm(dataDir, { recursive: true, force: true }),
  ];
  const close = async () => {
    for (const stop of stops.reverse()) await stop().catch(() => {});
  };
  try {
    // Wattfare on 127.0.0.1 and the app on localhost: two sites, so neither sees the other's cookies.
    const wattfarePort = await freePort(options.wattfarePort ?? 8787);
    const wattfareUrl = `http://127.0.0.1:${wattfarePort}`;
    const config = loadConfig(
      {
        HOST: "127.0.0.1",
        PORT: String(wattfarePort),
        WATTFARE_PUBLIC_URL: wattfareUrl,
        WATTFARE_DATA_DIR: dataDir,
        WATTFARE_UPSTREAM_URL: sim.apiUrl,
        WATTFARE_OPENROUTER_AUTH_URL: `${sim.url}/auth`,
        LOG_LEVEL: options.logLevel ?? "warn",
      },
      dataDir,
    );
    const { onMail } = options;
    const broker = await startServer(
      config,
      createLogger(config.logLevel),
      onMail === undefined
        ? {}
        : { mail: { send: async (message) => onMail(message), close: async () => {} } },
    );
    stops.push(() => broker.close());

    const appPort = await freePort(options.appPort ?? 3000);
    const appUrl = `http://localhost:${appPort}`;
    const { secretKey } = await createApp(
      broker.deps.store,
      { name: "Chat demo", origins: [appUrl] },
      Date.now(),
    );
    const app = await startChatApp({
      wattfare: new Wattfare({ secretKey, baseUrl: wattfareUrl }),
      port: appPort,
    });
    stops.push(() => app.close());
    return { appUrl, wattfareUrl, simulatorUrl: sim.url, dataDir, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** `preferred` when it is free (0 means any), else any free port. */
async function freePort(preferred: number): Promise<number> {
  const tryPort = (port: number) =>
    new Promise<number | undefined>((resolve) => {
      const server = createServer();
      server.once("error", () => resolve(undefined));
      server.listen(port, "127.0.0.1", () => {
        const address = server.address();
        server.close(() => resolve(typeof address === "object" && address ? address.port : undefined));
      });
    });
  return (preferred === 0 ? undefined : await tryPort(preferred)) ?? (await tryPort(0)) ?? 0;
}
