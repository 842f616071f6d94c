/**
 * One server per SQLite file (its in-memory budget counters are the authority). The lock is an
 * exclusive SQLite lock on a small file next to the database, held for the life of the process: the
 * kernel drops it when the process dies, kill -9 included, so there is no stale lock to take over and no
 * race between servers starting together (a pid file could be read half-written, or removed as stale by
 * two starters at once). The holder's pid is written beside it, for messages only. The CLI does not take
 * the lock, so it works while the server runs — on the same schema: it does not migrate a database a
 * live server is using (see anotherServerServes()).
 */
import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { isLockContention } from "./database.js";

export class ServerLockError extends Error {}

export interface ServerLock {
  release(): void;
}

/**
 * The database file's real path: a server that reaches it through a symbolic link (to the file or to a
 * directory on the way) must find the same lock, before the file exists as after. A link to a file not
 * created yet is followed by hand (realpath needs the file); then its directory's real path is taken.
 */
function realPathOf(dbPath: string): string {
  let file = path.resolve(dbPath);
  for (let hop = 0; hop < 40; hop++) {
    try {
      return fs.realpathSync(file);
    } catch {
      let target: string;
      try {
        target = fs.readlinkSync(file);
      } catch {
        break; // not a link: the file does not exist yet
      }
      file = path.resolve(path.dirname(file), target);
    }
  }
  try {
    return path.join(fs.realpathSync(path.dirname(file)), path.basename(file));
  } catch {
    return file;
  }
}
const lockPathOf = (dbPath: string) => `${realPathOf(dbPath)}.server.lock`;
const pidPathOf = (dbPath: string) => `${realPathOf(dbPath)}.server.pid`;
/** Locks this process holds: its own must not read as another server's. */
const heldHere = new Set<string>();

/** " (pid N)" from the pid file, when it names one. */
function holderText(dbPath: string): string {
  try {
    const pid = Number.parseInt(fs.readFileSync(pidPathOf(dbPath), "utf8").trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? ` (pid ${pid})` : "";
  } catch {
    return "";
  }
}

export function acquireServerLock(dbPath: string): ServerLock {
  const lockPath = lockPathOf(dbPath);
  fs.mkdirSync(path.dirname(lockPath), { recursive: true, mode: 0o700 });
  const db = new Database(lockPath);
  try {
    db.pragma("busy_timeout = 0");
    // In EXCLUSIVE locking mode the lock a write takes is kept until the connection closes.
    db.pragma("locking_mode = EXCLUSIVE");
    db.exec(
      `BEGIN EXCLUSIVE; CREATE TABLE IF NOT EXISTS holder (pid INTEGER); DELETE FROM holder;
       INSERT INTO holder VALUES (${process.pid}); COMMIT;`,
    );
  } catch (error) {
    db.close();
    if (isLockContention(error)) {
      throw new ServerLockError(
        `another Wattfare server${holderText(dbPath)} is already serving ${dbPath}; stop it first, or use the CLI alongside it`,
      );
    }
    throw error;
  }
  heldHere.add(lockPath);
  // Written whole under another name, then renamed: a reader never sees it half-written.
  const pidPath = pidPathOf(dbPath);
  const temp = `${pidPath}.${process.pid}`;
  fs.writeFileSync(temp, String(process.pid), { mode: 0o600 });
  fs.renameSync(temp, pidPath);
  return {
    release() {
      heldHere.delete(lockPath);
      db.close();
      try {
        if (fs.readFileSync(pidPath, "utf8").trim() === String(process.pid)) fs.unlinkSync(pidPath);
      } catch {
        // already gone
      }
    },
  };
}

/**
 * " (pid N)" — or "" when the pid is unknown — if another live process holds `dbPath`'s server lock;
 * undefined when none does.
 */
export function anotherServerServes(dbPath: string): string | undefined {
  const lockPath = lockPathOf(dbPath);
  if (heldHere.has(lockPath) || !fs.existsSync(lockPath)) return undefined;
  const db = new Database(lockPath, { readonly: true, fileMustExist: true });
  try {
    db.pragma("busy_timeout = 0");
    db.prepare("SELECT count(*) FROM sqlite_master").get();
    return undefined;
  } catch (error) {
    // Anything else (a hot journal a read-only connection cannot roll back, say) is no live holder:
    // a live one keeps the file locked, which reads as busy.
    return isLockContention(error) ? holderText(dbPath) : undefined;
  } finally {
    db.close();
  }
}
