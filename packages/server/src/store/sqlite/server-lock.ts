/**
 * One server per SQLite file (its in-memory budget counters are the authority). A pid file next to the
 * database, created exclusively; a stale one (its process is gone, e.g. after kill -9) is taken over.
 * The CLI does not take the lock, so it works while the server runs — on the same schema: it does not
 * migrate a database a live server is using (see liveServerPid()).
 */
import fs from "node:fs";
import path from "node:path";

export class ServerLockError extends Error {}

export interface ServerLock {
  release(): void;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

const lockPathOf = (dbPath: string) => `${dbPath}.server.pid`;

/** The pid in the lock file, if that process is alive and is not this one. */
function liveHolder(lockPath: string): number | undefined {
  let text: string;
  try {
    text = fs.readFileSync(lockPath, "utf8");
  } catch {
    return undefined;
  }
  const holder = Number.parseInt(text.trim(), 10);
  return Number.isInteger(holder) && holder > 0 && holder !== process.pid && processAlive(holder)
    ? holder
    : undefined;
}

/** The pid of another live Wattfare server serving `dbPath`, if there is one. */
export function liveServerPid(dbPath: string): number | undefined {
  return liveHolder(lockPathOf(dbPath));
}

export function acquireServerLock(dbPath: string): ServerLock {
  const lockPath = lockPathOf(dbPath);
  fs.mkdirSync(path.dirname(lockPath), { recursive: true });
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = fs.openSync(lockPath, "wx", 0o600);
      fs.writeSync(fd, String(process.pid));
      fs.closeSync(fd);
      return {
        release() {
          try {
            if (fs.readFileSync(lockPath, "utf8").trim() === String(process.pid)) fs.unlinkSync(lockPath);
          } catch {
            // already gone
          }
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const holder = liveHolder(lockPath);
      if (holder !== undefined) {
        throw new ServerLockError(
          `another Wattfare server (pid ${holder}) is already serving ${dbPath}; stop it first, or use the CLI alongside it`,
        );
      }
      fs.rmSync(lockPath, { force: true });
    }
  }
  throw new ServerLockError(`could not take the server lock for ${dbPath}`);
}
