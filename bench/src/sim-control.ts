/** The orchestrator's handle on a simulator process (see sim-process.ts). */
import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { SimReady, SimReply, SimRequest, SimTiming } from "./sim-protocol.js";

type Pending = { resolve: (value: string | null) => void; reject: (error: Error) => void };
type WithoutId<T> = T extends unknown ? Omit<T, "id"> : never;
type Op = WithoutId<SimRequest>;

const SCRIPT = fileURLToPath(new URL("./sim-process.js", import.meta.url));
const START_TIMEOUT_MS = 10_000;

export class SimProcess {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  private constructor(
    private readonly child: ChildProcess,
    readonly pid: number,
    /** e.g. http://127.0.0.1:40123/api/v1 */
    readonly apiUrl: string,
  ) {
    child.on("message", (message: SimReply) => {
      const waiter = this.pending.get(message.id);
      if (!waiter) return;
      this.pending.delete(message.id);
      if (message.ok) waiter.resolve(message.value);
      else waiter.reject(new Error(`simulator: ${message.error}`));
    });
    child.once("exit", () => {
      for (const waiter of this.pending.values()) waiter.reject(new Error("simulator exited"));
      this.pending.clear();
    });
  }

  static start(): Promise<SimProcess> {
    const child = fork(SCRIPT, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error("the simulator did not start in time"));
      }, START_TIMEOUT_MS);
      child.once("message", (message: SimReady) => {
        clearTimeout(timer);
        if (child.pid === undefined) reject(new Error("the simulator has no pid"));
        else resolve(new SimProcess(child, child.pid, message.apiUrl));
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`the simulator exited with ${code}`));
      });
    });
  }

  private call(op: Op): Promise<string | null> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.send({ ...op, id });
    });
  }

  async createKey(label: string): Promise<string> {
    const key = await this.call({ op: "createKey", credits: 1_000_000, label });
    if (key === null) throw new Error("simulator: no key");
    return key;
  }

  async billedNano(key: string): Promise<bigint> {
    const value = await this.call({ op: "billedNano", key });
    return BigInt(value ?? "0");
  }

  async setTiming(timing: SimTiming): Promise<void> {
    await this.call({ op: "setTiming", timing });
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      if (this.child.exitCode !== null || this.child.signalCode !== null) return resolve();
      this.child.once("exit", () => resolve());
      this.child.disconnect();
    });
  }
}

/**
 * A simulator process of its own and a subject started in front of it (`start` gets the simulator and a
 * fresh key of it); when the subject cannot start, the simulator is stopped again.
 */
export async function startBesideSimulator<T>(
  label: string,
  start: (sim: SimProcess, simKey: string) => Promise<T>,
): Promise<{ sim: SimProcess; simKey: string; subject: T }> {
  const sim = await SimProcess.start();
  try {
    const simKey = await sim.createKey(`bench ${label}`);
    return { sim, simKey, subject: await start(sim, simKey) };
  } catch (error) {
    await sim.stop();
    throw error;
  }
}
