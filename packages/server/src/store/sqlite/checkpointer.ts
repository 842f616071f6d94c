/**
 * WAL checkpoints off the request path. By default SQLite checkpoints inside whichever commit grows the
 * WAL past 1,000 pages, so one request in a few hundred pays for copying (and syncing) megabytes — the
 * proxy's p99. The server instead checkpoints from a worker thread with its own connection (PASSIVE:
 * never blocks writers or readers), and keeps a far higher auto-checkpoint threshold on its own
 * connection only as a safety net should the worker fall behind.
 */
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type BetterSqlite3 from "better-sqlite3";

/** Pages in the WAL before the main connection checkpoints by itself (the worker should get there first). */
export const SAFETY_AUTOCHECKPOINT_PAGES = 10_000;

// Inline CommonJS so the same code runs from the compiled server and from TypeScript sources in tests.
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
const db = new Database(workerData.file);
db.pragma("busy_timeout = 100");
const tick = () => {
  try { db.pragma("wal_checkpoint(PASSIVE)"); } catch {}
};
const timer = setInterval(tick, workerData.intervalMs);
parentPort.on("message", (m) => {
  if (m === "checkpoint") { tick(); parentPort.postMessage("done"); }
  if (m === "stop") { clearInterval(timer); db.close(); process.exit(0); }
});
`;

export class BackgroundCheckpointer {
  private readonly worker: Worker;

  constructor(db: BetterSqlite3.Database, file: string, intervalMs = 500) {
    db.pragma(`wal_autocheckpoint = ${SAFETY_AUTOCHECKPOINT_PAGES}`);
    const driver = createRequire(import.meta.url).resolve("better-sqlite3");
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { file, intervalMs, driver } });
    this.worker.unref();
  }

  /** Runs one checkpoint now and resolves when it is done (tests, shutdown). */
  checkpointNow(): Promise<void> {
    return new Promise((resolve) => {
      this.worker.once("message", () => resolve());
      this.worker.postMessage("checkpoint");
    });
  }

  async stop(): Promise<void> {
    const exited = new Promise<void>((resolve) => this.worker.once("exit", () => resolve()));
    this.worker.postMessage("stop");
    await exited;
  }
}
