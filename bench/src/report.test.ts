import { describe, expect, it } from "vitest";
import type { CannonRun } from "./aggregate.js";
import {
  compare,
  evaluateTargets,
  metricRows,
  nanoUsd,
  type Report,
  renderMarkdown,
  renderReportMarkdown,
  renderText,
  type SubjectId,
  type SubjectResult,
  type Throughput,
} from "./report.js";
import { summarize } from "./stats.js";

function cannonRun(p50: number, p99: number, rps: number): CannonRun {
  return {
    connections: 1,
    rounds: 1,
    wallSeconds: 1,
    requests: rps,
    requestsPerSecond: rps,
    roundRates: [rps],
    latency: { ...summarize([p50]), p50, p99 },
    errors: 0,
    non2xx: 0,
    status429: 0,
  };
}

function throughput(rps: number, proxyCpuUs: number | null): Throughput {
  return {
    ...cannonRun(1, 2, rps),
    cpuSeconds: { proxy: null, sim: 0, loadgen: 0 },
    proxyCpuUsPerRequest: proxyCpuUs,
    simCpuUsPerRequest: 100,
    loadgenCpuUsPerRequest: 40,
    machineIdleShare: 0.1,
    machineStealShare: 0.05,
  };
}

function subject(
  id: SubjectId,
  p50: number,
  p99: number,
  rps: number,
  cpuUs: number | null,
  ttfb: number,
): SubjectResult {
  return {
    id,
    status: "ok",
    note: null,
    warmupFailures: { errors: 0, non2xx: 0, status429: 0 },
    latencyC1: cannonRun(p50, p99, 1000),
    throughputC64: throughput(rps, cpuUs),
    stream: {
      streams: 1,
      ttfb: { ...summarize([ttfb]) },
      meanGapMs: 5,
      meanChunks: 16,
      errors: 0,
      non2xx: 0,
      status429: 0,
    },
    memory: null,
    ledgers: [],
    rssAfterAllBytes: null,
  };
}

const MB = 1024 * 1024;

function sampleSubjects(): SubjectResult[] {
  const wattfare = subject("wattfare", 0.5, 2, 3600, 130, 1.3);
  wattfare.memory = {
    streams: 1000,
    maxConcurrent: 1000,
    rssBeforeBytes: 100 * MB,
    rssPeakBytes: 110 * MB,
    rssAfterBytes: 109 * MB,
    afterMs: 3000,
    rssIdleBytes: 101 * MB,
    idleSeconds: 90,
    ttfbP50Ms: 2,
    errors: 0,
    non2xx: 0,
    status429: 0,
  };
  wattfare.ledgers = [
    {
      instance: "measured instance",
      ledgerNano: "1234567890",
      simBilledNano: "1234567890",
      equal: true,
      ledgerEntries: 10,
      unreconciled: 0,
      openReservations: 0,
      waitedMs: 0,
    },
  ];
  return [
    subject("sim", 0.1, 0.3, 8000, null, 1),
    subject("bare", 0.4, 1, 4000, 120, 1.2),
    wattfare,
    { ...subject("wattfare-pg", 0, 0, 0, null, 0), status: "not built", note: "not built" },
    subject("portkey", 2, 9, 400, 1400, 30),
  ];
}

describe("comparisons and targets", () => {
  it("compares Wattfare with the simulator, the bare proxy and Portkey", () => {
    const c = compare(sampleSubjects());
    expect(c.addedP50C1Ms).toBeCloseTo(0.4);
    expect(c.addedP99C1Ms).toBeCloseTo(1.7);
    expect(c.throughputVsBare).toBeCloseTo(0.9);
    expect(c.throughputVsPortkey).toBeCloseTo(9);
    expect(c.cpuVsBare).toBeCloseTo(130 / 120);
    expect(c.addedTtfbMs).toBeCloseTo(0.3);
    expect(c.rssGrowthMb).toBeCloseTo(10);
    expect(c.rssAfterMinusBeforeMb).toBeCloseTo(1); // the idle reading, not the one 3 s after
  });

  it("marks each target met or not, and unmeasurable ones as null", () => {
    const subjects = sampleSubjects();
    const met = Object.fromEntries(evaluateTargets(compare(subjects), subjects).map((t) => [t.name, t.met]));
    expect(met["added latency p50, c=1"]).toBe(true);
    expect(met["throughput vs bare proxy, c=64"]).toBe(true); // exactly 0.9× meets "≥ 0.9×"
    expect(met["ledger total == simulator billed"]).toBe(true);
    expect(met["RSS back to baseline after"]).toBe(true);

    const withoutBare = subjects.filter((s) => s.id !== "bare");
    const partial = Object.fromEntries(
      evaluateTargets(compare(withoutBare), withoutBare).map((t) => [t.name, t.met]),
    );
    expect(partial["throughput vs bare proxy, c=64"]).toBeNull();
  });

  it("fails the correctness target on a single 429", () => {
    const subjects = sampleSubjects();
    const wattfare = subjects.find((s) => s.id === "wattfare") as SubjectResult;
    wattfare.latencyC1 = { ...(wattfare.latencyC1 as CannonRun), non2xx: 1, status429: 1 };
    const target = evaluateTargets(compare(subjects), subjects).find((t) => t.name.startsWith("zero errors"));
    expect(target?.met).toBe(false);
    expect(target?.value).toBe("0 errors, 1 non-2xx (1 × 429)");
  });
});

describe("formatting", () => {
  it("pads a text table: first column left, the others right", () => {
    expect(
      renderText([
        ["metric", "a"],
        ["p50", "1.5 ms"],
      ]),
    ).toBe("metric       a\n------  ------\np50     1.5 ms");
  });

  it("renders a Markdown table and escapes pipes", () => {
    expect(
      renderMarkdown([
        ["x", "y"],
        ["a|b", "1"],
      ]),
    ).toBe("| x | y |\n| :-- | --: |\n| a\\|b | 1 |");
  });

  it("prints nano-USD as dollars exactly", () => {
    expect(nanoUsd("1234567890")).toBe("$1.234567890");
    expect(nanoUsd("5")).toBe("$0.000000005");
    expect(nanoUsd("-5")).toBe("-$0.000000005");
  });

  it("shows a subject that was not built as such in every row", () => {
    const subjects = sampleSubjects();
    const report: Report = {
      startedAt: "2026-01-01T00:00:00.000Z",
      finishedAt: "2026-01-01T00:02:00.000Z",
      machine: { cpus: 2, cpuModel: "test", node: "v20", loadAverageAtStart: [0, 0, 0] },
      source: "abc1234",
      settings: { throughputSeconds: 6 },
      subjects,
      comparisons: compare(subjects),
      targets: evaluateTargets(compare(subjects), subjects),
    };
    const rows = metricRows(report);
    const pgColumn = rows[0]?.indexOf("(d) Wattfare PG+Redis") ?? -1;
    expect(pgColumn).toBeGreaterThan(0);
    for (const row of rows.slice(1)) expect(row[pgColumn]).toBe("not built");
    const markdown = renderReportMarkdown(report);
    expect(markdown).toContain("| added latency p50, c=1 | ≤ 0.5 ms | 0.400 ms | met |");
    expect(markdown).toContain("not built");
  });
});
