/** Billed generations: a bounded history for `/generation` and `control`, plus waiters for tests. */
import type { GenerationRecord } from "./types.js";

interface Waiter {
  resolve(record: GenerationRecord): void;
}

export class GenerationStore {
  private readonly byId = new Map<string, GenerationRecord>();
  private readonly waiters = new Map<string, Waiter[]>();

  constructor(private readonly capacity: number) {}

  add(record: GenerationRecord): void {
    this.byId.set(record.id, record);
    // A Map iterates in insertion order, so the first key is the oldest record.
    if (this.byId.size > this.capacity) {
      const oldest = this.byId.keys().next();
      if (!oldest.done) this.byId.delete(oldest.value);
    }
    const waiting = this.waiters.get(record.id);
    if (waiting) {
      this.waiters.delete(record.id);
      for (const waiter of waiting) waiter.resolve(record);
    }
  }

  get(id: string): GenerationRecord | undefined {
    return this.byId.get(id);
  }

  list(keyHash?: string): GenerationRecord[] {
    const all = [...this.byId.values()];
    return keyHash === undefined ? all : all.filter((record) => record.keyHash === keyHash);
  }

  wait(id: string, timeoutMs: number): Promise<GenerationRecord> {
    const existing = this.byId.get(id);
    if (existing) return Promise.resolve(existing);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const list = this.waiters.get(id)?.filter((w) => w !== waiter) ?? [];
        if (list.length === 0) this.waiters.delete(id);
        else this.waiters.set(id, list);
        reject(new Error(`openrouter-sim: generation ${id} not billed within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter: Waiter = {
        resolve(record) {
          clearTimeout(timer);
          resolve(record);
        },
      };
      const list = this.waiters.get(id);
      if (list) list.push(waiter);
      else this.waiters.set(id, [waiter]);
    });
  }
}
