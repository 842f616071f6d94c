import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";

/** How long a connection waits for a lock another connection holds before SQLite gives up (SQLITE_BUSY). */
export const BUSY_TIMEOUT_MS = 5_000;

/**
 * Opens the database the way every Wattfare process must: WAL with synchronous=NORMAL (survives a
 * process crash, not power loss — DESIGN.md), a busy timeout so the CLI and the server can share the
 * file, and safe integers so money never passes through a float. A directory it creates is its user's
 * alone (0700): the database holds payers' emails and password hashes.
 */
export function openSqlite(file: string): Database.Database {
  if (file !== ":memory:") fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  db.pragma("foreign_keys = ON");
  db.defaultSafeIntegers(true);
  return db;
}

/**
 * `fn` as a transaction begun IMMEDIATE, as every transaction on the file is: it takes the write lock at
 * BEGIN, waiting for it up to the busy timeout. better-sqlite3's default, DEFERRED, reads from a snapshot
 * taken at its first read and asks for the lock only at its first write; in WAL mode, if another
 * connection (the CLI beside the server, or the server beside the CLI) committed in between or holds the
 * lock then, SQLite fails it at once with SQLITE_BUSY(_SNAPSHOT), without the busy handler: waiting cannot
 * make its snapshot current. Uncontended, BEGIN IMMEDIATE costs what BEGIN does.
 */
export function writeTransaction<A extends unknown[], R>(
  db: Database.Database,
  fn: (...args: A) => R,
): (...args: A) => R {
  return db.transaction(fn).immediate;
}

/**
 * A failure of the store rather than of the write that met it: any SQLite error but a constraint (a lock
 * held elsewhere, a full disk, I/O, a read-only file). A write's own check throwing is not one either.
 */
export function isStoreFault(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.startsWith("SQLITE_") && !code.startsWith("SQLITE_CONSTRAINT");
}

/** Whether a SQLite error means another connection holds the lock needed (SQLITE_BUSY, SQLITE_LOCKED, or an extended code of either). */
export function isLockContention(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED"));
}
