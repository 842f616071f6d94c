/**
 * Wattfare's own wait queue in front of the upstream pool: a request is handed to undici only when one
 * of the pool's connections is free, so undici never queues it. A request that waits here can be given
 * up (its client left, or it waited past the queue timeout) by just dropping it: undici's abort of a
 * request it already holds would close the warm connection it was about to use.
 *
 * It counts requests, not sockets: with one request per connection (undici's default pipelining of 1),
 * `busy < connections` means a connection is free or can be opened. A request counts from its start
 * until `leave()` (its response ended or failed).
 */

/** A request waiting for a connection; `PoolQueue.cancel` drops it. */
export interface Waiting {
  readonly start: () => void;
  readonly timer: NodeJS.Timeout;
}

export class PoolQueue {
  private busy = 0;
  /** In arrival order; a Set so that one given up leaves at once. */
  private readonly waiting = new Set<Waiting>();
  /** Set while `pump` starts requests: a start that fails at once leaves re-entrantly. */
  private pumping = false;

  constructor(
    private readonly connections: number,
    private readonly timeoutMs: number,
  ) {}

  /**
   * Starts a request now when a connection is free (and nobody waits before it), returning null;
   * otherwise queues it and returns its place. `timedOut` is called, instead of `start`, if no
   * connection comes free within the queue timeout.
   */
  enter(start: () => void, timedOut: () => void): Waiting | null {
    if (this.busy < this.connections && this.waiting.size === 0) {
      this.busy++;
      start();
      return null;
    }
    const timer = setTimeout(() => {
      this.waiting.delete(place);
      timedOut();
    }, this.timeoutMs);
    timer.unref();
    const place: Waiting = { start, timer };
    this.waiting.add(place);
    return place;
  }

  /**
   * Counts a request that does not wait its turn (the small side calls: a reconciliation or a `/key`
   * read is never given up), so that chat requests are not started on the connection it takes.
   */
  enterNow(): void {
    this.busy++;
  }

  /** Drops a waiting request: it is never started. */
  cancel(place: Waiting): void {
    clearTimeout(place.timer);
    this.waiting.delete(place);
  }

  /** A started request is done with its connection: the next waiting one starts. */
  leave(): void {
    this.busy--;
    this.pump();
  }

  /** Requests started and not yet done; requests waiting. */
  get stats(): { busy: number; waiting: number } {
    return { busy: this.busy, waiting: this.waiting.size };
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.busy < this.connections) {
        const next = this.waiting.values().next();
        if (next.done) break;
        this.cancel(next.value);
        this.busy++;
        next.value.start();
      }
    } finally {
      this.pumping = false;
    }
  }
}
