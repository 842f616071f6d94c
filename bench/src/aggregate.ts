/**
 * Combining raw measurements into what the report shows: rounds of autocannon runs pooled into one
 * latency distribution and a median rate, stream samples into TTFB and gap figures. Pure.
 */
import { type LatencySummary, mean, median, percentile, summarize } from "./stats.js";

/** Failures seen by the client; the benchmark requires every one of them to be zero. */
export interface Failures {
  /** Connection errors, resets, timeouts and streams that ended without `data: [DONE]`. */
  errors: number;
  /** Responses that were not 2xx (429s included). */
  non2xx: number;
  status429: number;
}

export const NO_FAILURES: Failures = { errors: 0, non2xx: 0, status429: 0 };

export function addFailures(a: Failures, b: Failures): Failures {
  return { errors: a.errors + b.errors, non2xx: a.non2xx + b.non2xx, status429: a.status429 + b.status429 };
}

/** One autocannon run as measured: every 2xx latency (ms) and the wall time. */
export interface RawCannon extends Failures {
  connections: number;
  wallSeconds: number;
  latenciesMs: number[];
}

export interface CannonRun extends Failures {
  connections: number;
  /** Rounds pooled (interleaved with the other subjects' rounds). */
  rounds: number;
  wallSeconds: number;
  /** 2xx responses over all rounds. */
  requests: number;
  /** Median over rounds of each round's 2xx/s: robust to a noisy neighbour hitting one round. */
  requestsPerSecond: number;
  roundRates: number[];
  /** Latency over every 2xx response of every round, ms. */
  latency: LatencySummary;
}

export function combineCannon(runs: RawCannon[]): CannonRun {
  const latencies = runs.flatMap((r) => r.latenciesMs);
  const roundRates = runs.map((r) => (r.wallSeconds > 0 ? r.latenciesMs.length / r.wallSeconds : 0));
  return {
    connections: runs[0]?.connections ?? 0,
    rounds: runs.length,
    wallSeconds: runs.reduce((sum, r) => sum + r.wallSeconds, 0),
    requests: latencies.length,
    requestsPerSecond: median(roundRates) ?? 0,
    roundRates,
    latency: summarize(latencies),
    ...runs.reduce<Failures>(addFailures, NO_FAILURES),
  };
}

export interface StreamSample {
  status: number;
  /** ms from sending the request to the first body byte. */
  ttfbMs: number;
  /** Mean gap between consecutive body chunks, ms (undefined with fewer than two chunks). */
  meanGapMs: number | undefined;
  chunks: number;
  /** Ended with `data: [DONE]`. */
  complete: boolean;
}

/** Stream samples plus the requests that failed before giving one. */
export interface StreamBatch {
  samples: StreamSample[];
  errors: number;
}

export interface StreamRun extends Failures {
  streams: number;
  ttfb: LatencySummary;
  /** Mean over streams of each stream's mean inter-chunk gap, ms. */
  meanGapMs: number | undefined;
  meanChunks: number | undefined;
}

const ok = (s: StreamSample) => s.status >= 200 && s.status < 300;

export function streamFailures(batch: StreamBatch): Failures {
  return {
    errors: batch.errors + batch.samples.filter((s) => ok(s) && !s.complete).length,
    non2xx: batch.samples.filter((s) => !ok(s)).length,
    status429: batch.samples.filter((s) => s.status === 429).length,
  };
}

export function summarizeStreams(batches: StreamBatch[]): StreamRun {
  const samples = batches.flatMap((b) => b.samples);
  const good = samples.filter(ok);
  return {
    streams: samples.length,
    ttfb: summarize(good.map((s) => s.ttfbMs)),
    meanGapMs: mean(good.flatMap((s) => (s.meanGapMs === undefined ? [] : [s.meanGapMs]))),
    meanChunks: mean(good.map((s) => s.chunks)),
    ...batches.map(streamFailures).reduce(addFailures, NO_FAILURES),
  };
}

/** The 1,000-slow-streams run against a dedicated instance of a proxy. */
export interface MemoryRun extends Failures {
  streams: number;
  /** Most streams receiving at the same time (first byte in, not yet ended): all of them when sound. */
  maxConcurrent: number;
  rssBeforeBytes: number;
  rssPeakBytes: number;
  /** RSS a few seconds after the last stream ended and the client closed its sockets. */
  rssAfterBytes: number;
  afterMs: number;
  /** RSS once the instance has sat idle long enough for idle upstream keep-alive sockets to expire. */
  rssIdleBytes: number | null;
  idleSeconds: number | null;
  /** Median time to first byte while the streams were opening, ms. */
  ttfbP50Ms: number | undefined;
}

export function memoryRun(
  batch: StreamBatch,
  rss: { before: number; peak: number; after: number },
  maxConcurrent: number,
  afterMs: number,
): MemoryRun {
  return {
    streams: batch.samples.length + batch.errors,
    maxConcurrent,
    rssBeforeBytes: rss.before,
    rssPeakBytes: rss.peak,
    rssAfterBytes: rss.after,
    afterMs,
    rssIdleBytes: null,
    idleSeconds: null,
    ttfbP50Ms: percentile(
      batch.samples.map((s) => s.ttfbMs),
      0.5,
    ),
    ...streamFailures(batch),
  };
}
