import { type HitOutcome, type RateRule, SlidingLog } from "./decide.js";
import type { RateDecision, RateLimitStore } from "./store.js";

export interface MemoryRateLimitStoreOptions {
  /**
   * Most keys held at once. Default 100_000. When full, a new key first displaces keys whose window is
   * empty (forgetting those changes no decision), then the least recently used key.
   */
  maxKeys?: number;
  /**
   * Period of a background `sweep()` of keys whose window is empty, in ms. Default: no timer (the key
   * cap still bounds memory). The timer is `unref()`ed, so it never keeps the process alive, and is
   * stopped by `close()`.
   */
  sweepIntervalMs?: number;
  /** Clock for the background sweep only; decisions always use the `now` given to `hit()`. Default `Date.now`. */
  clock?: () => number;
}

interface Entry {
  readonly log: SlidingLog;
  /** The window of the last rule applied, which decides when this key's log has emptied. */
  windowMs: number;
}

/**
 * A full scan for empty windows costs O(keys). When every key is live, a flood of new keys would pay
 * that on every request, so between scans a full store evicts the least recently used key instead.
 */
const FULL_SCAN_GAP_MS = 1_000;

/** Keys that can only displace one another (see partitionOf). */
interface Partition {
  /** Insertion order is the LRU order (a hit re-inserts its key at the end). */
  readonly entries: Map<string, Entry>;
  lastFullScanAt: number;
}

/**
 * Which keys a new key may displace when its partition is full: chat keys per app (`rl:chat:<appId>`),
 * any other key by its kind (`rl:sessions`, `rl:payer`, …; a key of no kind: one shared partition). So a flood of distinct keys — an app sending
 * many made-up user ids — can only reset its own limits, never another app's nor a sign-in throttle.
 */
function partitionOf(key: string): string {
  const kind = key.indexOf(":", 3);
  if (kind === -1) return "";
  if (!key.startsWith("rl:chat:")) return key.slice(0, kind);
  const app = key.indexOf(":", kind + 1);
  return app === -1 ? key.slice(0, kind) : key.slice(0, app);
}

/**
 * The in-process backend: one sliding log per key, in partitions of at most `maxKeys` keys each.
 *
 * Atomicity: `hit` does all its work synchronously before its promise settles, and JavaScript runs one
 * function at a time, so concurrent hits on one key are serialised — of two hits racing for the last
 * slot, exactly one passes. Correct for one process only; several instances need the Redis backend.
 */
export class MemoryRateLimitStore implements RateLimitStore {
  private readonly partitions = new Map<string, Partition>();
  private readonly maxKeys: number;
  private readonly timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(options: MemoryRateLimitStoreOptions = {}) {
    const { maxKeys = 100_000, sweepIntervalMs, clock = Date.now } = options;
    if (!Number.isSafeInteger(maxKeys) || maxKeys < 1) {
      throw new RangeError(`maxKeys must be a positive integer, got ${maxKeys}`);
    }
    this.maxKeys = maxKeys;
    if (sweepIntervalMs !== undefined) {
      // Node turns delays beyond 2^31 − 1 ms into 1 ms, which would sweep continuously.
      if (!Number.isSafeInteger(sweepIntervalMs) || sweepIntervalMs < 1 || sweepIntervalMs > 2 ** 31 - 1) {
        throw new RangeError(`sweepIntervalMs must be an integer in 1..2^31-1, got ${sweepIntervalMs}`);
      }
      this.timer = setInterval(() => this.sweep(clock()), sweepIntervalMs);
      this.timer.unref();
    }
  }

  async hit(key: string, rule: RateRule, now: number): Promise<RateDecision> {
    if (this.closed) throw new Error("MemoryRateLimitStore is closed");
    const name = partitionOf(key);
    let partition = this.partitions.get(name);
    if (partition === undefined) {
      partition = { entries: new Map(), lastFullScanAt: Number.NEGATIVE_INFINITY };
      this.partitions.set(name, partition);
    }
    const entries = partition.entries;
    let entry = entries.get(key);
    let outcome: HitOutcome;
    if (entry === undefined) {
      entry = { log: SlidingLog.empty(), windowMs: rule.windowMs };
      // Hit before making room, so an invalid rule throws without evicting anyone.
      outcome = entry.log.hit(rule, now);
      this.makeRoom(partition, now);
    } else {
      outcome = entry.log.hit(rule, now);
      entry.windowMs = rule.windowMs;
      entries.delete(key);
    }
    entries.set(key, entry);
    // Not `{ ...outcome, limit }`: a spread followed by more properties is ≈ 10× slower on Node 20.
    return {
      allowed: outcome.allowed,
      retryAfterSeconds: outcome.retryAfterSeconds,
      remaining: outcome.remaining,
      limit: rule.limit,
    };
  }

  /** Drops every key whose window is empty at `now`; returns how many were dropped. */
  sweep(now: number): number {
    let dropped = 0;
    for (const [name, partition] of this.partitions) {
      dropped += sweepEntries(partition.entries, now);
      if (partition.entries.size === 0) this.partitions.delete(name);
    }
    return dropped;
  }

  /** Keys currently held. */
  get size(): number {
    let size = 0;
    for (const partition of this.partitions.values()) size += partition.entries.size;
    return size;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    this.partitions.clear();
  }

  /** Frees one place in a full partition for a new key. */
  private makeRoom(partition: Partition, now: number): void {
    const entries = partition.entries;
    if (entries.size < this.maxKeys) return;
    const lru = entries.entries().next();
    if (lru.done === true) return;
    const [lruKey, lruEntry] = lru.value;
    // The least recently used key has usually been idle longest, so its window is usually empty.
    if (lruEntry.log.isEmptyAt(now, lruEntry.windowMs)) {
      entries.delete(lruKey);
      return;
    }
    // `now < lastFullScanAt` means the clock stepped back; scan rather than trust the gap.
    if (now - partition.lastFullScanAt >= FULL_SCAN_GAP_MS || now < partition.lastFullScanAt) {
      partition.lastFullScanAt = now;
      if (sweepEntries(entries, now) > 0) return;
    }
    // Every key is live: forget the least recently used one. Its user may get up to a window's worth
    // of requests again — the price of bounded memory under a flood of distinct keys of one partition.
    entries.delete(lruKey);
  }
}

function sweepEntries(entries: Map<string, Entry>, now: number): number {
  let dropped = 0;
  for (const [key, entry] of entries) {
    if (entry.log.isEmptyAt(now, entry.windowMs)) {
      entries.delete(key);
      dropped++;
    }
  }
  return dropped;
}
