/**
 * Invariant 2 — every reservation ends. Reservations whose cost did not arrive inline (client abort,
 * mid-stream failure, a crash) are settled from `GET /generation?id=` with back-off until their
 * deadline; past it they are settled at the reserved amount, flagged `unreconciled` (conservative: the
 * cap is never overshot). A periodic tick claims reservations whose owner's lease expired, so a crashed
 * process's work is finished by whoever runs next; on SQLite a starting server takes over at once.
 */
import type { Logger } from "pino";
import type { Clock } from "../../deps.js";
import { decryptFundingKey, type KeyRing } from "../../security/index.js";
import {
  type ReservationRecord,
  type Settlement,
  type Store,
  UNRECONCILED_RECHECK_WINDOW_MS,
} from "../../store/port.js";
import type { Metrics } from "../metrics/index.js";
import type { Upstream } from "./upstream.js";
import { costFromGeneration, type UsageCost } from "./usage.js";

export interface ReconcilerOptions {
  store: Store;
  upstream: Upstream;
  keyRing: KeyRing;
  clock: Clock;
  logger: Logger;
  instanceId: string;
  leaseMs: number;
  heartbeatMs: number;
  tickMs: number;
  backoffMs: number;
  /**
   * How long /generation is asked before the reservation is charged, counted from when the reconciler
   * takes the reservation over (a stream can outlast it: its record appears only once it has ended).
   */
  deadlineMs: number;
  /** How often `unreconciled` settlements are asked about again (they are, for UNRECONCILED_RECHECK_WINDOW_MS). */
  recheckMs: number;
  /** Reservations still being served by this process are not the reconciler's to settle. */
  isInFlight: (reservationId: string) => boolean;
  metrics: Metrics;
}

interface Tracked {
  reservation: ReservationRecord;
  attempts: number;
  nextAt: number;
  /** The later of the reservation's own deadline and `deadlineMs` after it was taken over. */
  deadlineAt: number;
}

/**
 * Every settlement, from the proxy or the reconciler, goes through here: it reports a real cost above its
 * reservation (a provider surprise; warned and counted) and a charge at the reservation for want of the
 * cost (counted) once this call closed the reservation — a settlement of one already closed reports
 * nothing. A failed write was closed all the same (the store retries it), so it is reported, then thrown.
 */
export async function settleObserved(
  o: { store: Store; metrics: Metrics; logger: Logger },
  reservation: ReservationRecord,
  settlement: Settlement,
): Promise<void> {
  let closed = true;
  try {
    closed = await o.store.settle(reservation, settlement);
  } finally {
    if (closed) {
      if (settlement.costNano > reservation.amountNano) {
        o.metrics.costOverReservation.inc();
        o.logger.warn({ requestId: reservation.id }, "real cost exceeded its reservation");
      }
      if (settlement.unreconciled) o.metrics.unreconciledCharges.inc();
    }
  }
}

const MAX_BACKOFF_MS = 30_000;
const CLAIM_BATCH = 100;

export class Reconciler {
  private readonly tracked = new Map<string, Tracked>();
  private timers: NodeJS.Timeout[] = [];
  private running: Promise<void> | undefined;

  constructor(private readonly o: ReconcilerOptions) {}

  /** Starts the periodic tick and the lease heartbeat; takes over every open reservation left by a previous process. */
  async start(): Promise<void> {
    // Batch after batch: a crash under load can leave more than one batch open, and the rest would
    // otherwise wait for their dead owner's lease to run out. One `now` for them all: a batch already
    // taken holds a lease past it, so no later batch takes it again and the loop ends however slow it is.
    const now = this.o.clock.now();
    while ((await this.claim(true, now)) === CLAIM_BATCH);
    const tick = setInterval(() => void this.tick(), this.o.tickMs);
    const beat = setInterval(
      () =>
        void this.o.store
          .heartbeat(this.o.instanceId, this.o.clock.now() + this.o.leaseMs)
          .catch(() => undefined),
      this.o.heartbeatMs,
    );
    const recheck = setInterval(() => void this.recheckUnreconciled(), this.o.recheckMs);
    tick.unref();
    beat.unref();
    recheck.unref();
    this.timers = [tick, beat, recheck];
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }

  /** Settle this reservation from upstream records, first try after the initial back-off. */
  track(reservation: ReservationRecord): void {
    if (this.tracked.has(reservation.id)) return;
    const now = this.o.clock.now();
    this.tracked.set(reservation.id, this.tracking(reservation, now, now + this.o.backoffMs));
  }

  private tracking(reservation: ReservationRecord, now: number, nextAt: number): Tracked {
    const deadlineAt = Math.max(reservation.deadlineAt, now + this.o.deadlineMs);
    return { reservation, attempts: 0, nextAt, deadlineAt };
  }

  get pending(): number {
    return this.tracked.size;
  }

  /** One pass: claim expired leases, then attempt every due reservation. Safe to call concurrently. */
  tick(): Promise<void> {
    this.running ??= (async () => {
      try {
        await this.claim(false);
        const now = this.o.clock.now();
        const due = [...this.tracked.values()].filter((t) => t.nextAt <= now);
        await Promise.all(due.map((t) => this.attempt(t)));
      } catch (error) {
        this.o.logger.error({ err: error }, "reconciler tick failed");
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  /**
   * Settlements charged at their reservation because /generation had no answer by the deadline: when
   * the record appears within 7 days, an adjusting ledger entry brings the charge to the real cost —
   * asked with the key that paid, which a payer's replacing it does not erase before then.
   */
  async recheckUnreconciled(): Promise<void> {
    const now = this.o.clock.now();
    try {
      // Page through all of them: entries whose record never appears must not hide the ones after them.
      let after = "";
      for (;;) {
        const entries = await this.o.store.unreconciledSince(
          now - UNRECONCILED_RECHECK_WINDOW_MS,
          CLAIM_BATCH,
          after,
        );
        for (const entry of entries) {
          const cost = await this.lookupGeneration(entry.fundingId, entry.generationId).catch(
            () => undefined,
          );
          if (cost) await this.o.store.adjust(entry, cost.costNano, this.o.clock.now());
        }
        const last = entries.at(-1);
        if (!last || entries.length < CLAIM_BATCH) break;
        after = last.requestId;
      }
      // Replaced keys kept only for these re-checks go once nothing can need them.
      await this.o.store.eraseRetiredFundingKeys(now);
    } catch (error) {
      this.o.logger.error({ err: error }, "unreconciled re-check failed");
    }
  }

  /** Claims up to CLAIM_BATCH reservations whose lease ran out by `now`; returns how many it claimed. */
  private async claim(takeOverAll: boolean, now = this.o.clock.now()): Promise<number> {
    const claimed = await this.o.store.claimExpired(
      this.o.instanceId,
      now,
      now + this.o.leaseMs,
      takeOverAll,
      CLAIM_BATCH,
    );
    for (const reservation of claimed) {
      if (!this.tracked.has(reservation.id) && !this.o.isInFlight(reservation.id)) {
        this.tracked.set(reservation.id, this.tracking(reservation, now, now));
      }
    }
    return claimed.length;
  }

  private async attempt(t: Tracked): Promise<void> {
    const { reservation } = t;
    const now = this.o.clock.now();
    t.attempts++;
    let cost: UsageCost | undefined;
    if (reservation.generationId !== null) {
      try {
        cost = await this.lookup(reservation);
      } catch (error) {
        this.o.logger.warn({ err: error, requestId: reservation.id }, "generation lookup failed");
      }
    }
    if (cost) {
      await this.settle(t, cost, false);
      return;
    }
    // No generation id means the upstream never told us what it did: nothing to poll, charge the bound.
    if (reservation.generationId === null || now >= t.deadlineAt) {
      await this.settle(
        t,
        { costNano: reservation.amountNano, promptTokens: null, completionTokens: null },
        true,
      );
      return;
    }
    t.nextAt = now + Math.min(this.o.backoffMs * 2 ** Math.min(t.attempts, 16), MAX_BACKOFF_MS);
  }

  private lookup(reservation: ReservationRecord): Promise<UsageCost | undefined> {
    return this.lookupGeneration(reservation.fundingId, reservation.generationId);
  }

  /** The real cost from `/generation`, asked with the key that paid; undefined while unknown. */
  private async lookupGeneration(
    fundingId: string,
    generationId: string | null,
  ): Promise<UsageCost | undefined> {
    const funding = await this.o.store.getFunding(fundingId);
    if (!funding || generationId === null) return undefined;
    const key = decryptFundingKey(this.o.keyRing, funding.keyBlob, funding.id);
    const res = await this.o.upstream.get(`/generation?id=${encodeURIComponent(generationId)}`, key);
    if (res.status !== 200) return undefined;
    return costFromGeneration(res.text);
  }

  private async settle(t: Tracked, cost: UsageCost, unreconciled: boolean): Promise<void> {
    this.tracked.delete(t.reservation.id);
    await settleObserved(this.o, t.reservation, {
      costNano: cost.costNano,
      generationId: t.reservation.generationId,
      promptTokens: cost.promptTokens,
      completionTokens: cost.completionTokens,
      unreconciled,
      at: this.o.clock.now(),
    });
  }
}
