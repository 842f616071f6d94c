/**
 * The one place that reads a funding key's upstream `/key` again and records what it says (state and the
 * key's own limit), shared by the chat proxy and the consent popup. Reads of one funding row share one
 * upstream call, and each caller says how old a reading may be: the proxy's automatic re-checks take
 * one at most every 30 s, a payer's "I topped up" every few seconds. Side calls skip the chat pool's
 * queue, so nothing a client or payer repeats may turn into one `/key` call each.
 */
import type { Logger } from "pino";
import type { Clock } from "../../deps.js";
import type { Nano } from "../../money.js";
import { decryptFundingKey, type KeyRing } from "../../security/index.js";
import type { FundingRecord, FundingState, Store } from "../../store/port.js";
import { errorName, readKeyCheck } from "./key-check.js";
import type { FundingUpstream } from "./service.js";

export interface FundingKeyReadsDeps {
  store: Store;
  keyRing: KeyRing;
  clock: Clock;
  logger: Logger;
  upstream: Pick<FundingUpstream, "get">;
}

/** What one `/key` read found; `undefined` fields were not read (the call failed or answered oddly). */
interface KeyReading {
  at: number;
  state: FundingState | undefined;
  limitRemainingNano: Nano | null | undefined;
}

/** Readings remembered per funding row, so a caller holding an older copy of the row still sees them. */
const MAX_REMEMBERED = 10_000;

export class FundingKeyReads {
  /** `/key` reads in progress, by funding id. */
  private readonly reading = new Map<string, Promise<KeyReading>>();
  /** The latest reading per funding id. */
  private readonly latest = new Map<string, KeyReading>();

  constructor(private readonly d: FundingKeyReadsDeps) {}

  /**
   * `funding` as upstream `/key` says it is now, recorded in the store (`setFundingState`), unless it
   * was read less than `minIntervalMs` ago: then `funding` itself, or the newer reading this process
   * made meanwhile. A read already in progress for the row is joined, whatever the interval. A failed
   * read keeps the state and limit, but counts as a read for the interval (a failing upstream is not
   * asked again at once). Never rejects.
   */
  async read<F extends FundingRecord>(funding: F, minIntervalMs: number): Promise<F> {
    const inProgress = this.reading.get(funding.id);
    if (inProgress !== undefined) return withReading(funding, await inProgress);
    const now = this.d.clock.now();
    const last = this.latest.get(funding.id);
    const checkedAt = funding.checkedAt ?? Number.NEGATIVE_INFINITY;
    if (now - Math.max(checkedAt, last?.at ?? Number.NEGATIVE_INFINITY) < minIntervalMs) {
      return last !== undefined && last.at > checkedAt ? withReading(funding, last) : funding;
    }
    const reading = this.readKey(funding, now).finally(() => this.reading.delete(funding.id));
    this.reading.set(funding.id, reading);
    return withReading(funding, await reading);
  }

  private async readKey(funding: FundingRecord, now: number): Promise<KeyReading> {
    const reading: KeyReading = { at: now, state: undefined, limitRemainingNano: undefined };
    try {
      const key = decryptFundingKey(this.d.keyRing, funding.keyBlob, funding.id);
      const res = await this.d.upstream.get("/key", key);
      const check = readKeyCheck(res.status, res.text);
      if (check.kind === "invalid") reading.state = "invalid";
      else if (check.kind === "usable") {
        reading.state = check.state;
        reading.limitRemainingNano = check.limitRemainingNano;
      } else this.d.logger.warn({ status: check.status, fundingId: funding.id }, "funding re-check failed");
    } catch (error) {
      this.d.logger.warn({ reason: errorName(error), fundingId: funding.id }, "funding re-check failed");
    }
    if (this.latest.size >= MAX_REMEMBERED) this.latest.clear();
    this.latest.set(funding.id, reading);
    try {
      await this.d.store.setFundingState(
        funding.id,
        reading.state ?? funding.state,
        reading.limitRemainingNano,
        now,
      );
    } catch (error) {
      this.d.logger.error({ err: error, fundingId: funding.id }, "funding re-check not recorded");
    }
    if (reading.state !== undefined && reading.state !== funding.state)
      this.d.logger.info({ fundingId: funding.id, state: reading.state }, "funding re-checked");
    return reading;
  }
}

function withReading<F extends FundingRecord>(funding: F, reading: KeyReading): F {
  return {
    ...funding,
    state: reading.state ?? funding.state,
    limitRemainingNano:
      reading.limitRemainingNano === undefined ? funding.limitRemainingNano : reading.limitRemainingNano,
    checkedAt: reading.at,
  };
}
