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
  /** account → period → counters: nested, so a lookup builds no key string (four per request). */
  private readonly counters = new Map<string, Map<string, Counters>>();

  get(ref: AccountRef): Counters {
    let periods = this.counters.get(ref.account);
    if (!periods) {
      periods = new Map();
      this.counters.set(ref.account, periods);
    }
    let c = periods.get(ref.period);
    if (!c) {
      c = { settled: 0n, reserved: 0n };
      periods.set(ref.period, c);
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
