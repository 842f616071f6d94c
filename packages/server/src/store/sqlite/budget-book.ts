/**
 * In-memory spend counters per budget account and period: the admission authority on SQLite, where one
 * server process owns the file (DESIGN.md "Admission"). Updated synchronously, so two requests in the
 * same tick can never both see the same headroom. Rebuilt from the store at start.
 */
import type { AccountRef } from "../port.js";

interface Counters {
  settled: bigint;
  reserved: bigint;
}

export class BudgetBook {
  private readonly counters = new Map<string, Counters>();

  private static key(ref: AccountRef): string {
    return `${ref.account}\u0000${ref.period}`;
  }

  get(ref: AccountRef): Counters {
    const key = BudgetBook.key(ref);
    let c = this.counters.get(key);
    if (!c) {
      c = { settled: 0n, reserved: 0n };
      this.counters.set(key, c);
    }
    return c;
  }

  headroom(ref: AccountRef, capNano: bigint): bigint {
    const c = this.get(ref);
    const room = capNano - c.settled - c.reserved;
    return room > 0n ? room : 0n;
  }

  clear(): void {
    this.counters.clear();
  }
}
