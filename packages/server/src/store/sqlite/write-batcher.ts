/**
 * Group commit (DESIGN.md "The hot path"): every write queued during one event-loop turn is committed
 * in one SQLite transaction at setImmediate, and each caller's promise settles only after that commit.
 * A WAL commit costs ~35–40 µs whatever its size, so batching is what lets the proxy keep up with a
 * bare passthrough while every reservation is still durable before its request is forwarded.
 * (Measured: waiting extra turns for a fuller batch cost latency and gained no throughput.)
 */
import type BetterSqlite3 from "better-sqlite3";
import { isLockContention, isStoreFault, writeTransaction } from "./database.js";

interface QueuedWrite {
  run: () => void;
  resolve: () => void;
  reject: (error: unknown) => void;
}

export class WriteBatcher {
  private queue: QueuedWrite[] = [];
  private scheduled: NodeJS.Immediate | undefined;
  private readonly commitAll: (writes: QueuedWrite[]) => void;
  private readonly totalChanges: BetterSqlite3.Statement;
  private changed = 0n;
  /** Why the last commit failed, when it failed for the store's sake (not one write's); cleared by a commit. */
  private storeFailure: unknown;

  constructor(private readonly db: BetterSqlite3.Database) {
    // IMMEDIATE like every transaction here (database.ts); every write run so far starts by writing, so
    // a DEFERRED begin would take the lock at the same moment, but a run that read first would not wait.
    this.commitAll = writeTransaction(db, (writes: QueuedWrite[]) => {
      for (const w of writes) w.run();
    });
    this.totalChanges = db.prepare("SELECT total_changes()").pluck().safeIntegers(true);
  }

  /** Queue `run` (synchronous SQL) for the next group commit; resolves once it is durable. */
  enqueue(run: () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ run, resolve, reject });
      this.scheduled ??= setImmediate(() => this.flush());
    });
  }

  /** Commit everything queued now (also used at shutdown). */
  flush(): void {
    if (this.scheduled) {
      clearImmediate(this.scheduled);
      this.scheduled = undefined;
    }
    const writes = this.queue;
    if (writes.length === 0) return;
    this.queue = [];
    const before = this.totalChanges.get() as bigint;
    try {
      this.commitAll(writes);
      this.storeFailure = undefined;
      for (const w of writes) w.resolve();
    } catch (error) {
      if (isStoreFault(error)) this.storeFailure = error;
      if (isLockContention(error)) {
        // Another connection holds the write lock (past the busy timeout): every write alone would wait
        // that timeout again, synchronously, freezing the process for (1 + N) × the timeout. All fail now.
        for (const w of writes) w.reject(error);
      } else {
        // One bad write must not fail its neighbours: retry each alone so only the culprit rejects.
        for (const w of writes) {
          try {
            writeTransaction(this.db, w.run)();
            this.storeFailure = undefined;
            w.resolve();
          } catch (single) {
            if (isStoreFault(single)) this.storeFailure = single;
            w.reject(single);
          }
        }
      }
    }
    // Synchronous with the commits above: nothing else can have written in between.
    this.changed += (this.totalChanges.get() as bigint) - before;
  }

  /**
   * Rows changed on this connection by anything but this batcher so far: SQLite's `total_changes()` (≈ 0.1
   * µs, no transaction) less what the batcher's own commits changed.
   */
  changesByOthers(): bigint {
    return (this.totalChanges.get() as bigint) - this.changed;
  }

  /**
   * Why the last commit failed, if the store itself failed it (a lock held past the busy timeout, a full
   * disk, I/O) and nothing has committed since; undefined when the last commit went through, or failed
   * only because of one write (a constraint, the write's own check).
   */
  get failure(): unknown {
    return this.storeFailure;
  }

  get pending(): number {
    return this.queue.length;
  }
}
