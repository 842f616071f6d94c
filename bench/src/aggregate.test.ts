import { describe, expect, it } from "vitest";
import {
  combineCannon,
  memoryRun,
  type RawCannon,
  type StreamSample,
  summarizeStreams,
} from "./aggregate.js";

const raw = (
  latenciesMs: number[],
  wallSeconds: number,
  failures = { errors: 0, non2xx: 0, status429: 0 },
): RawCannon => ({
  connections: 64,
  wallSeconds,
  latenciesMs,
  ...failures,
});

const sample = (ttfbMs: number, over: Partial<StreamSample> = {}): StreamSample => ({
  status: 200,
  ttfbMs,
  meanGapMs: 5,
  chunks: 16,
  complete: true,
  ...over,
});

describe("combineCannon", () => {
  it("pools latencies over rounds and takes the median round rate", () => {
    const run = combineCannon([raw([1, 2], 1), raw([3, 4, 5, 6], 1), raw([7, 8, 9], 1)]);
    expect(run.rounds).toBe(3);
    expect(run.requests).toBe(9);
    expect(run.roundRates).toEqual([2, 4, 3]);
    expect(run.requestsPerSecond).toBe(3); // one slow round (a noisy neighbour) does not drag it down
    expect(run.latency.p50).toBe(5);
    expect(run.latency.max).toBe(9);
  });

  it("adds up failures of every round", () => {
    const run = combineCannon([
      raw([1], 1, { errors: 1, non2xx: 0, status429: 0 }),
      raw([1], 1, { errors: 0, non2xx: 2, status429: 1 }),
    ]);
    expect([run.errors, run.non2xx, run.status429]).toEqual([1, 2, 1]);
  });
});

describe("summarizeStreams", () => {
  it("reports TTFB over the good streams and counts the bad ones as failures", () => {
    const run = summarizeStreams([
      { samples: [sample(1), sample(3), sample(100, { status: 429 })], errors: 0 },
      { samples: [sample(2), sample(4, { complete: false })], errors: 1 },
    ]);
    expect(run.streams).toBe(5);
    expect(run.ttfb.p50).toBe(2);
    expect(run.meanGapMs).toBe(5);
    expect(run.non2xx).toBe(1);
    expect(run.status429).toBe(1);
    expect(run.errors).toBe(2); // one request error + one stream without [DONE]
  });
});

describe("memoryRun", () => {
  it("keeps the RSS readings and leaves the idle reading for later", () => {
    const m = memoryRun(
      { samples: [sample(10), sample(30)], errors: 0 },
      { before: 1, peak: 3, after: 2 },
      2,
      3000,
    );
    expect(m).toMatchObject({
      streams: 2,
      maxConcurrent: 2,
      rssPeakBytes: 3,
      rssIdleBytes: null,
      ttfbP50Ms: 10,
    });
  });
});
