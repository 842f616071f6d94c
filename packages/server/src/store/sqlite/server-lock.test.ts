import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { acquireServerLock, anotherServerServes, ServerLockError } from "./server-lock.js";

const LOCK_MODULE = new URL("../../../dist/store/sqlite/server-lock.js", import.meta.url).href;
const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill("SIGKILL");
});

const tempDb = () => path.join(fs.mkdtempSync(path.join(os.tmpdir(), "wattfare-lock-")), "wattfare.db");

/** Another process that tries to take the lock; resolves with what it printed (ACQUIRED or BUSY) and it. */
async function contender(dbPath: string): Promise<{ child: ChildProcess; outcome: Promise<string> }> {
  const child = spawn(
    process.execPath,
    [
      "--input-type=module",
      "-e",
      `import { acquireServerLock } from ${JSON.stringify(LOCK_MODULE)};
       try { acquireServerLock(${JSON.stringify(dbPath)}); process.stdout.write("ACQUIRED\\n"); }
       catch (error) { process.stdout.write(error.constructor.name === "ServerLockError" ? "BUSY\\n" : String(error)); }
       process.stdin.resume();`,
    ],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  children.push(child);
  const outcome = once(child.stdout as NodeJS.ReadableStream, "data").then(([data]) => String(data).trim());
  return { child, outcome };
}

describe("the server lock", () => {
  it("lets exactly one of several servers starting at once take it, even over a stale pid file", async () => {
    for (let trial = 0; trial < 3; trial++) {
      const db = tempDb();
      fs.writeFileSync(`${db}.server.pid`, "2147483646"); // left by a server killed with -9
      const contenders = await Promise.all(Array.from({ length: 4 }, () => contender(db)));
      const outcomes = await Promise.all(contenders.map((c) => c.outcome));
      expect(outcomes.sort()).toEqual(["ACQUIRED", "BUSY", "BUSY", "BUSY"]);
      for (const { child } of contenders) child.kill("SIGKILL");
    }
  });

  it("is free again the moment its holder is killed with -9, with no file to clean up", async () => {
    const db = tempDb();
    const holder = await contender(db);
    expect(await holder.outcome).toBe("ACQUIRED");
    expect(anotherServerServes(db)).toBe(` (pid ${holder.child.pid})`);
    expect(() => acquireServerLock(db)).toThrow(ServerLockError);
    holder.child.kill("SIGKILL");
    await once(holder.child, "exit");
    expect(anotherServerServes(db)).toBeUndefined();
    const lock = acquireServerLock(db);
    expect(anotherServerServes(db)).toBeUndefined(); // this process's own lock is not another server's
    lock.release();
  });

  it("is the same lock for a database reached through a symbolic link to its file or its directory", async () => {
    const db = tempDb();
    fs.writeFileSync(db, ""); // the database exists, as it does once a server has run
    const holder = await contender(db);
    expect(await holder.outcome).toBe("ACQUIRED");
    const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), "wattfare-link-"));
    const fileLink = path.join(elsewhere, "linked.db");
    fs.symlinkSync(db, fileLink);
    const dirLink = path.join(elsewhere, "data");
    fs.symlinkSync(path.dirname(db), dirLink);
    for (const other of [fileLink, path.join(dirLink, "wattfare.db")]) {
      expect(anotherServerServes(other)).toBe(` (pid ${holder.child.pid})`);
      expect(() => acquireServerLock(other)).toThrow(ServerLockError);
    }
  });

  it("is the same lock through a symbolic link made before the database file exists as after", async () => {
    const db = tempDb();
    const link = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "wattfare-link-")), "linked.db");
    fs.symlinkSync(db, link); // dangling: the first server creates the database through it
    const holder = await contender(link);
    expect(await holder.outcome).toBe("ACQUIRED");
    fs.writeFileSync(link, "");
    expect(fs.existsSync(db)).toBe(true);
    expect(anotherServerServes(link)).toBe(` (pid ${holder.child.pid})`);
    expect(anotherServerServes(db)).toBe(` (pid ${holder.child.pid})`);
    expect(() => acquireServerLock(link)).toThrow(ServerLockError);
  });
});
