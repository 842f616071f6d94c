/**
 * Group commit (DESIGN.md "The hot path"): every write queued during one event-loop turn is committed
 * in one SQLite transaction at setImmediate, and each caller's promise settles only after that commit.
 * A WAL commit costs ~35–40 µs whatever its size, so batching is what lets the proxy keep up with a
 * bare passthrough while every reservation is still durable before its request is forwarded.
 */
import type BetterSqlite3 from "better-sqlite3";

interface QueuedWrite {
  run: () => void;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * A batch smaller than this waits up to MAX_EXTRA_TURNS more event-loop turns for company: under load
 * each turn brings other requests' writes (a commit of 8 costs little more than a commit of 1), and
 * when idle a turn takes microseconds, so a lone request barely waits.
 */
const MIN_BATCH = 8;
const MAX_EXTRA_TURNS = 2;

export class WriteBatcher {
  private queue: QueuedWrite[] = [];
  private scheduled: NodeJS.Immediate | undefined;
  private extraTurns = 0;
  private readonly commitAll: (writes: QueuedWrite[]) => void;

  constructor(private readonly db: BetterSqlite3.Database) {
    this.commitAll = db.transaction((writes: QueuedWrite[]) => {
      for (const w of writes) w.run();
    });
  }

  /** Queue `run` (synchronous SQL) for the next group commit; resolves once it is durable. */
  enqueue(run: () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ run, resolve, reject });
      this.scheduled ??= setImmediate(this.onTurn);
    });
  }

  private readonly onTurn = (): void => {
    this.scheduled = undefined;
    if (this.queue.length < MIN_BATCH && this.extraTurns < MAX_EXTRA_TURNS) {
      this.extraTurns++;
      this.scheduled = setImmediate(this.onTurn);
      return;
    }
    this.flush();
  };

  /** Commit everything queued now (also used at shutdown). */
  flush(): void {
    this.extraTurns = 0;
    if (this.scheduled) {
      clearImmediate(this.scheduled);
      this.scheduled = undefined;
    }
    const writes = this.queue;
    if (writes.length === 0) return;
    this.queue = [];
    try {
      this.commitAll(writes);
      for (const w of writes) w.resolve();
    } catch {
      // One bad write must not fail its neighbours: retry each alone so only the culprit rejects.
      for (const w of writes) {
        try {
          this.db.transaction(w.run)();
          w.resolve();
        } catch (error) {
          w.reject(error);
        }
      }
    }
  }

  get pending(): number {
    return this.queue.length;
  }
}
