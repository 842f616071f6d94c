import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";

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
  db.pragma("busy_timeout = 5000");
  db.pragma("foreign_keys = ON");
  db.defaultSafeIntegers(true);
  return db;
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
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" && (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED"));
}
