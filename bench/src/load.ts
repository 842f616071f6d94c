/**
 * The load generator (it runs in the orchestrator process, apart from the simulators and the proxies):
 * autocannon for the non-stream runs, a small undici streaming client that timestamps every chunk, and
 * the 1,000-slow-streams memory run.
 */
import autocannon from "autocannon";
import { type Dispatcher, Pool } from "undici";
import {
  type MemoryRun,
  memoryRun,
  type RawCannon,
  type StreamBatch,
  type StreamSample,
} from "./aggregate.js";
import { CpuMeter, rssBytes } from "./proc.js";

/** Where and how to send chat requests to one subject. */
export interface Target {
  /** Full URL of the chat completions endpoint. */
  chatUrl: string;
  /** Authentication headers (and anything else the subject needs); content-type is added here. */
  headers: Record<string, string>;
}

export function chatBody(stream: boolean): string {
  return JSON.stringify({
    model: "openai/gpt-4o-mini",
    messages: [
      { role: "system", content: "You are a terse assistant." },
      { role: "user", content: "Say something about metering, in sixteen tokens." },
    ],
    stream,
  });
}

/**
 * One closed-loop autocannon run of non-stream requests: `seconds` of load on `connections` keep-alive
 * sockets. Latencies come from autocannon's per-response hrtime stamps (its histogram has 1 ms buckets,
 * too coarse for sub-millisecond overheads).
 */
export async function cannon(target: Target, connections: number, seconds: number): Promise<RawCannon> {
  const latenciesMs: number[] = [];
  let non2xx = 0;
  let status429 = 0;
  let requestErrors = 0;
  const startedAt = performance.now();
  const instance = autocannon({
    url: target.chatUrl,
    method: "POST",
    headers: { ...target.headers, "content-type": "application/json" },
    body: chatBody(false),
    connections,
    duration: seconds,
    timeout: 30,
    sampleInt: 250,
  });
  instance.on("response", (_client, statusCode, _bytes, responseTimeMs) => {
    if (statusCode >= 200 && statusCode < 300) latenciesMs.push(responseTimeMs);
    else {
      non2xx++;
      if (statusCode === 429) status429++;
    }
  });
  instance.on("reqError", () => {
    requestErrors++;
  });
  const result = await instance;
  return {
    connections,
    wallSeconds: (performance.now() - startedAt) / 1000,
    latenciesMs,
    errors: Math.max(requestErrors, result.errors) + result.timeouts,
    non2xx,
    status429,
  };
}

/** A `cannon` run and the proxy process's CPU time over it, in µs per completed request. */
export async function cannonWithCpu(
  target: Target,
  proxyPid: number,
  connections: number,
  seconds: number,
): Promise<{ run: RawCannon; cpuPerRequestUs: number }> {
  const meter = new CpuMeter({ proxy: proxyPid });
  const run = await cannon(target, connections, seconds);
  const cpuSeconds = meter.stop().cpuSeconds.proxy ?? 0;
  return { run, cpuPerRequestUs: (cpuSeconds * 1e6) / run.latenciesMs.length };
}

async function streamOnce(
  dispatcher: Dispatcher,
  target: Target,
  body: string,
  onFirstByte?: () => void,
): Promise<StreamSample> {
  const url = new URL(target.chatUrl);
  const sentAt = performance.now();
  const res = await dispatcher.request({
    origin: url.origin,
    path: url.pathname,
    method: "POST",
    headers: { ...target.headers, "content-type": "application/json" },
    body,
  });
  let first: number | undefined;
  let last = 0;
  let chunks = 0;
  let tail = "";
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    last = performance.now();
    if (first === undefined) {
      first = last;
      onFirstByte?.();
    }
    chunks++;
    tail = (tail + chunk.toString("latin1")).slice(-32);
  }
  return {
    status: res.statusCode,
    ttfbMs: (first ?? last) - sentAt,
    meanGapMs: chunks > 1 && first !== undefined ? (last - first) / (chunks - 1) : undefined,
    chunks,
    complete: tail.includes("data: [DONE]"),
  };
}

/** `count` streams, `concurrency` at a time, each connection reused (keep-alive). */
export async function streams(target: Target, count: number, concurrency = 1): Promise<StreamBatch> {
  const pool = new Pool(new URL(target.chatUrl).origin, { connections: concurrency });
  const body = chatBody(true);
  const batch: StreamBatch = { samples: [], errors: 0 };
  let started = 0;
  const worker = async () => {
    while (started < count) {
      started++;
      try {
        batch.samples.push(await streamOnce(pool, target, body));
      } catch {
        batch.errors++;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    await pool.close();
  }
  return batch;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * `count` concurrent slow streams through the subject while sampling the proxy's RSS every 100 ms.
 * Streams are opened 25 every 25 ms (1,000 in about a second, well inside a stream's 6 s) so no listen
 * backlog along the way overflows: a dropped SYN would add a 1 s retransmit, not load.
 */
export async function concurrentStreams(
  target: Target,
  proxyPid: number,
  count: number,
  afterMs: number,
): Promise<MemoryRun> {
  const pool = new Pool(new URL(target.chatUrl).origin, { connections: count });
  const body = chatBody(true);
  const before = rssBytes(proxyPid);
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssBytes(proxyPid));
  }, 100);
  let receiving = 0;
  let maxConcurrent = 0;
  const batch: StreamBatch = { samples: [], errors: 0 };
  const one = async () => {
    let started = false;
    try {
      const sample = await streamOnce(pool, target, body, () => {
        started = true;
        receiving++;
        maxConcurrent = Math.max(maxConcurrent, receiving);
      });
      batch.samples.push(sample);
    } catch {
      batch.errors++;
    } finally {
      if (started) receiving--;
    }
  };
  const running: Promise<void>[] = [];
  for (let i = 0; i < count; i += 25) {
    for (let j = i; j < Math.min(count, i + 25); j++) running.push(one());
    await sleep(25);
  }
  await Promise.all(running);
  clearInterval(sampler);
  peak = Math.max(peak, rssBytes(proxyPid));
  await pool.close();
  await sleep(afterMs);
  return memoryRun(batch, { before, peak, after: rssBytes(proxyPid) }, maxConcurrent, afterMs);
}
