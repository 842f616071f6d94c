/**
 * The benchmark report: what each subject measured, the comparisons the issue asks for, the targets,
 * and the text/Markdown renderings. Pure: no I/O, no clock.
 */
import {
  addFailures,
  type CannonRun,
  type Failures,
  type MemoryRun,
  NO_FAILURES,
  type StreamRun,
} from "./aggregate.js";
import { added, ratio } from "./stats.js";
import type { LedgerCheck } from "./subjects.js";

export type SubjectId = "sim" | "bare" | "wattfare" | "wattfare-pg" | "portkey";

export const SUBJECT_LABELS: Record<SubjectId, string> = {
  sim: "(a) simulator",
  bare: "(b) bare proxy",
  wattfare: "(c) Wattfare SQLite",
  "wattfare-pg": "(d) Wattfare PG+Redis",
  portkey: "(e) Portkey",
};

export interface Throughput extends CannonRun {
  /** CPU seconds used during the measured run, per process. */
  cpuSeconds: { proxy: number | null; sim: number; loadgen: number };
  /** Proxy CPU per 2xx response, µs (null for the simulator itself). */
  proxyCpuUsPerRequest: number | null;
  simCpuUsPerRequest: number;
  loadgenCpuUsPerRequest: number;
  /** Shares of the machine's CPU time during the run that were idle, and stolen by the hypervisor. */
  machineIdleShare: number;
  machineStealShare: number;
}

export interface SubjectResult {
  id: SubjectId;
  status: "ok" | "not built" | "failed";
  /** Why a subject was not measured, or anything else worth a line in the report. */
  note: string | null;
  /** Failures of the unmeasured warm-up runs (they still count). */
  warmupFailures: Failures | null;
  latencyC1: CannonRun | null;
  throughputC64: Throughput | null;
  stream: StreamRun | null;
  memory: MemoryRun | null;
  /** Wattfare only: ledger vs simulator, for the measured instance and the memory instance. */
  ledgers: LedgerCheck[];
  /** The proxy's RSS once every run is over (after the c=64 runs). */
  rssAfterAllBytes: number | null;
}

export interface Target {
  name: string;
  goal: string;
  value: string;
  met: boolean | null;
}

export interface Report {
  startedAt: string;
  finishedAt: string;
  machine: { cpus: number; cpuModel: string; node: string; loadAverageAtStart: number[] };
  /** The commit measured and whether packages/ differ from it, or null outside git. */
  source: string | null;
  settings: Record<string, number | string>;
  subjects: SubjectResult[];
  comparisons: Comparisons;
  targets: Target[];
}

export interface Comparisons {
  addedP50C1Ms: number | undefined;
  addedP99C1Ms: number | undefined;
  throughputVsBare: number | undefined;
  throughputVsPortkey: number | undefined;
  cpuVsBare: number | undefined;
  addedTtfbMs: number | undefined;
  addedMeanGapMs: number | undefined;
  rssGrowthMb: number | undefined;
  rssAfterMinusBeforeMb: number | undefined;
}

const MB = 1024 * 1024;
/** "Back to baseline": RSS after the streams ended within this much of the RSS before them. */
export const RSS_BASELINE_TOLERANCE_MB = 5;

function find(subjects: SubjectResult[], id: SubjectId): SubjectResult | undefined {
  return subjects.find((s) => s.id === id && s.status === "ok");
}

/** Wattfare (c) against the simulator (a), the bare proxy (b) and Portkey (e). */
export function compare(subjects: SubjectResult[]): Comparisons {
  const sim = find(subjects, "sim");
  const bare = find(subjects, "bare");
  const wf = find(subjects, "wattfare");
  const pk = find(subjects, "portkey");
  const memory = wf?.memory ?? null;
  return {
    addedP50C1Ms: added(wf?.latencyC1?.latency.p50, sim?.latencyC1?.latency.p50),
    addedP99C1Ms: added(wf?.latencyC1?.latency.p99, sim?.latencyC1?.latency.p99),
    throughputVsBare: ratio(wf?.throughputC64?.requestsPerSecond, bare?.throughputC64?.requestsPerSecond),
    throughputVsPortkey: ratio(wf?.throughputC64?.requestsPerSecond, pk?.throughputC64?.requestsPerSecond),
    cpuVsBare: ratio(
      wf?.throughputC64?.proxyCpuUsPerRequest ?? undefined,
      bare?.throughputC64?.proxyCpuUsPerRequest ?? undefined,
    ),
    addedTtfbMs: added(wf?.stream?.ttfb.p50, sim?.stream?.ttfb.p50),
    addedMeanGapMs: added(wf?.stream?.meanGapMs, sim?.stream?.meanGapMs),
    rssGrowthMb: memory === null ? undefined : (memory.rssPeakBytes - memory.rssBeforeBytes) / MB,
    rssAfterMinusBeforeMb:
      memory === null
        ? undefined
        : ((memory.rssIdleBytes ?? memory.rssAfterBytes) - memory.rssBeforeBytes) / MB,
  };
}

const atMost = (value: number | undefined, limit: number): boolean | null =>
  value === undefined ? null : value <= limit;
const atLeast = (value: number | undefined, limit: number): boolean | null =>
  value === undefined ? null : value >= limit;

/** The issue's targets, each met, not met, or null when it could not be measured. */
export function evaluateTargets(c: Comparisons, subjects: SubjectResult[]): Target[] {
  const wf = find(subjects, "wattfare");
  const failures = wf === undefined ? undefined : totalFailures(wf);
  const ledgers = wf?.ledgers ?? [];
  return [
    {
      name: "added latency p50, c=1",
      goal: "≤ 0.5 ms",
      value: ms(c.addedP50C1Ms),
      met: atMost(c.addedP50C1Ms, 0.5),
    },
    {
      name: "added latency p99, c=1",
      goal: "≤ 3 ms",
      value: ms(c.addedP99C1Ms),
      met: atMost(c.addedP99C1Ms, 3),
    },
    {
      name: "throughput vs bare proxy, c=64",
      goal: "≥ 0.9×",
      value: times(c.throughputVsBare),
      met: atLeast(c.throughputVsBare, 0.9),
    },
    {
      name: "proxy CPU per request vs bare",
      goal: "≤ 1.2×",
      value: times(c.cpuVsBare),
      met: atMost(c.cpuVsBare, 1.2),
    },
    {
      name: "added TTFB (stream, p50)",
      goal: "≤ 0.5 ms",
      value: ms(c.addedTtfbMs),
      met: atMost(c.addedTtfbMs, 0.5),
    },
    {
      name: "RSS growth, 1,000 concurrent streams",
      goal: "≤ 20 MB",
      value: mb(c.rssGrowthMb),
      met: atMost(c.rssGrowthMb, 20),
    },
    {
      name: "RSS back to baseline after",
      goal: `≤ +${RSS_BASELINE_TOLERANCE_MB} MB`,
      value: mb(c.rssAfterMinusBeforeMb, true),
      met: atMost(c.rssAfterMinusBeforeMb, RSS_BASELINE_TOLERANCE_MB),
    },
    {
      name: "zero errors and zero 429s",
      goal: "0 and 0",
      value:
        failures === undefined
          ? "n/a"
          : `${failures.errors} errors, ${failures.non2xx} non-2xx (${failures.status429} × 429)`,
      met: failures === undefined ? null : failures.errors + failures.non2xx === 0,
    },
    {
      name: "ledger total == simulator billed",
      goal: "equal",
      value:
        ledgers.length === 0
          ? "n/a"
          : ledgers.map((l) => `${nanoUsd(l.ledgerNano)} vs ${nanoUsd(l.simBilledNano)}`).join("; "),
      met: ledgers.length === 0 ? null : ledgers.every((l) => l.equal),
    },
  ];
}

export function totalFailures(s: SubjectResult): Failures {
  return [s.warmupFailures, s.latencyC1, s.throughputC64, s.stream, s.memory]
    .filter((r) => r !== null)
    .reduce<Failures>(addFailures, NO_FAILURES);
}

// ---------------------------------------------------------------------------------------------- format

export function ms(value: number | undefined | null, digits = 3): string {
  return value === undefined || value === null ? "n/a" : `${value.toFixed(digits)} ms`;
}
export function times(value: number | undefined | null): string {
  return value === undefined || value === null ? "n/a" : `${value.toFixed(2)}×`;
}
export function mb(value: number | undefined | null, signed = false): string {
  if (value === undefined || value === null) return "n/a";
  return `${signed && value >= 0 ? "+" : ""}${value.toFixed(1)} MB`;
}
function int(value: number | undefined | null): string {
  return value === undefined || value === null ? "n/a" : Math.round(value).toLocaleString("en-US");
}
function pct(share: number): string {
  return `${(share * 100).toFixed(0)}%`;
}
function us(value: number | undefined | null): string {
  return value === undefined || value === null ? "n/a" : `${value.toFixed(0)} µs`;
}
/** Decimal nano-USD text → "$1.234567890". */
export function nanoUsd(nano: string): string {
  const negative = nano.startsWith("-");
  const digits = (negative ? nano.slice(1) : nano).padStart(10, "0");
  return `${negative ? "-" : ""}$${digits.slice(0, -9)}.${digits.slice(-9)}`;
}

/** Rows of the main table: a metric per row, a subject per column. */
export function metricRows(report: Report): string[][] {
  const ids: SubjectId[] = ["sim", "bare", "wattfare", "wattfare-pg", "portkey"];
  const cols = ids.map((id) => report.subjects.find((s) => s.id === id));
  const bareRps = cols[1]?.throughputC64?.requestsPerSecond;
  const pkRps = cols[4]?.throughputC64?.requestsPerSecond;
  const simRun = cols[0];
  const bareMemory = cols[1]?.memory ?? null;
  const row = (name: string, cell: (s: SubjectResult) => string): string[] => [
    name,
    ...cols.map((s) => (s === undefined ? "n/a" : s.status === "ok" ? cell(s) : s.status)),
  ];
  return [
    ["metric", ...ids.map((id) => SUBJECT_LABELS[id])],
    row("c=1 p50", (s) => ms(s.latencyC1?.latency.p50)),
    row("c=1 p99", (s) => ms(s.latencyC1?.latency.p99)),
    row("c=1 added p50 vs (a)", (s) => ms(added(s.latencyC1?.latency.p50, simRun?.latencyC1?.latency.p50))),
    row("c=1 added p99 vs (a)", (s) => ms(added(s.latencyC1?.latency.p99, simRun?.latencyC1?.latency.p99))),
    row("c=64 req/s", (s) => int(s.throughputC64?.requestsPerSecond)),
    row("c=64 req/s by round", (s) =>
      s.throughputC64 === null ? "n/a" : s.throughputC64.roundRates.map((r) => int(r)).join(" / "),
    ),
    row("c=64 ratio to (b)", (s) => times(ratio(s.throughputC64?.requestsPerSecond, bareRps))),
    row("c=64 ratio to (e)", (s) => times(ratio(s.throughputC64?.requestsPerSecond, pkRps))),
    row("c=64 p50 / p99", (s) =>
      s.throughputC64 === null
        ? "n/a"
        : `${ms(s.throughputC64.latency.p50, 2)} / ${ms(s.throughputC64.latency.p99, 2)}`,
    ),
    row("proxy CPU / request", (s) => us(s.throughputC64?.proxyCpuUsPerRequest)),
    row("proxy CPU ratio to (b)", (s) =>
      times(
        ratio(
          s.throughputC64?.proxyCpuUsPerRequest ?? undefined,
          cols[1]?.throughputC64?.proxyCpuUsPerRequest ?? undefined,
        ),
      ),
    ),
    row("sim CPU / request", (s) => us(s.throughputC64?.simCpuUsPerRequest)),
    row("loadgen CPU / request", (s) => us(s.throughputC64?.loadgenCpuUsPerRequest)),
    row("machine idle / steal, c=64", (s) =>
      s.throughputC64 === null
        ? "n/a"
        : `${pct(s.throughputC64.machineIdleShare)} / ${pct(s.throughputC64.machineStealShare)}`,
    ),
    row("stream TTFB p50", (s) => ms(s.stream?.ttfb.p50)),
    row("stream added TTFB vs (a)", (s) => ms(added(s.stream?.ttfb.p50, simRun?.stream?.ttfb.p50))),
    row("stream mean chunk gap", (s) => ms(s.stream?.meanGapMs)),
    row("stream added gap vs (a)", (s) => ms(added(s.stream?.meanGapMs, simRun?.stream?.meanGapMs))),
    row("RSS before 1k streams", (s) => mb(s.memory === null ? null : s.memory.rssBeforeBytes / MB)),
    row("RSS peak (1k open)", (s) => mb(s.memory === null ? null : s.memory.rssPeakBytes / MB)),
    row("RSS growth (peak − before)", (s) =>
      mb(s.memory === null ? null : (s.memory.rssPeakBytes - s.memory.rssBeforeBytes) / MB, true),
    ),
    row("RSS growth beyond (b)", (s) =>
      mb(
        s.memory === null || bareMemory === null
          ? null
          : (s.memory.rssPeakBytes -
              s.memory.rssBeforeBytes -
              (bareMemory.rssPeakBytes - bareMemory.rssBeforeBytes)) /
              MB,
        true,
      ),
    ),
    row("RSS 3 s after they end", (s) => mb(s.memory === null ? null : s.memory.rssAfterBytes / MB)),
    row("RSS after idle", (s) =>
      s.memory?.rssIdleBytes == null
        ? "n/a"
        : `${mb(s.memory.rssIdleBytes / MB)} (${(s.memory.idleSeconds ?? 0).toFixed(0)} s)`,
    ),
    row("RSS of measured instance at end", (s) =>
      mb(s.rssAfterAllBytes === null ? null : s.rssAfterAllBytes / MB),
    ),
    row("streams open at once", (s) => int(s.memory?.maxConcurrent)),
    row("errors / non-2xx / 429", (s) => {
      const f = totalFailures(s);
      return `${f.errors} / ${f.non2xx} / ${f.status429}`;
    }),
  ];
}

export function targetRows(targets: Target[]): string[][] {
  return [
    ["target", "goal", "measured", "met"],
    ...targets.map((t) => [t.name, t.goal, t.value, t.met === null ? "n/a" : t.met ? "met" : "NOT met"]),
  ];
}

/** A plain-text table with padded columns (first column left-aligned, others right-aligned). */
export function renderText(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) {
    r.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, [...cell].length);
    });
  }
  const line = (r: string[]) =>
    r
      .map((cell, i) => {
        const pad = " ".repeat((widths[i] ?? 0) - [...cell].length);
        return i === 0 ? cell + pad : pad + cell;
      })
      .join("  ");
  const [head, ...body] = rows;
  if (head === undefined) return "";
  const rule = widths.map((w) => "-".repeat(w)).join("  ");
  return [line(head), rule, ...body.map(line)].join("\n");
}

/** A GitHub-flavoured Markdown table (first column left-aligned, others right-aligned). */
export function renderMarkdown(rows: string[][]): string {
  const [head, ...body] = rows;
  if (head === undefined) return "";
  const escapeCell = (cell: string) => cell.replaceAll("|", "\\|");
  const line = (r: string[]) => `| ${r.map(escapeCell).join(" | ")} |`;
  const align = `| ${head.map((_, i) => (i === 0 ? ":--" : "--:")).join(" | ")} |`;
  return [line(head), align, ...body.map(line)].join("\n");
}

export function renderReportMarkdown(report: Report): string {
  const notes = report.subjects
    .filter((s) => s.note !== null)
    .map((s) => `- ${SUBJECT_LABELS[s.id]}: ${s.note}`);
  const ledgers = report.subjects.find((s) => s.id === "wattfare")?.ledgers ?? [];
  return [
    `# Wattfare benchmark — ${report.finishedAt}`,
    "",
    `Machine: ${report.machine.cpus} × ${report.machine.cpuModel}, Node ${report.machine.node}, load average at start ${report.machine.loadAverageAtStart.map((l) => l.toFixed(2)).join(" / ")}.`,
    `Source: ${report.source ?? "not a git checkout"}.`,
    `Settings: ${Object.entries(report.settings)
      .map(([k, v]) => `${k}=${v}`)
      .join(", ")}.`,
    "",
    "## Targets (Wattfare, subject c)",
    "",
    renderMarkdown(targetRows(report.targets)),
    "",
    "## All subjects",
    "",
    renderMarkdown(metricRows(report)),
    "",
    ...ledgers.map(
      (l) =>
        `Ledger of the ${l.instance}: ${l.ledgerEntries} entries (${l.unreconciled} unreconciled), ${l.openReservations} reservations still open after waiting ${l.waitedMs} ms; ${nanoUsd(l.ledgerNano)} vs simulator ${nanoUsd(l.simBilledNano)}.`,
    ),
    ...(ledgers.length > 0 ? [""] : []),
    ...(notes.length > 0 ? ["## Notes", "", ...notes, ""] : []),
  ].join("\n");
}
