/**
 * `npm run bench`: the same workload against (a) the simulator, (b) a bare Node proxy, (c) Wattfare,
 * (d) Wattfare on PostgreSQL + Redis (not built yet) and (e) the Portkey gateway, each subject in its own
 * process beside its own simulator process; this process is the load generator. Prints a table, writes
 * bench/results/latest.{json,md}.
 *
 * `npm run bench -- --profile`: instead, CPU-profiles the bare proxy and Wattfare during a c=64 run and
 * writes bench/results/profile.{json,md}.
 *
 * `npm run bench -- --quick`: only (b) and (c), c=64 rounds interleaved, CPU per request printed (≈ 40 s):
 * the loop for trying an optimization. It writes nothing; the full run is the record.
 *
 * `npm run bench -- --compare <git ref>`: this tree's Wattfare side by side with the ref's (compare.ts).
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import {
  addFailures,
  combineCannon,
  type Failures,
  NO_FAILURES,
  type RawCannon,
  type StreamBatch,
  streamFailures,
  summarizeStreams,
} from "./aggregate.js";
import { compareWithRef } from "./compare.js";
import { cannon, cannonWithCpu, concurrentStreams, streams, type Target } from "./load.js";
import { log } from "./log.js";
import { CpuMeter, rssBytes } from "./proc.js";
import { type CpuProfile, type ProfileSummary, summarizeProfile } from "./profile.js";
import {
  compare,
  evaluateTargets,
  metricRows,
  type Report,
  renderMarkdown,
  renderReportMarkdown,
  renderText,
  SUBJECT_LABELS,
  type SubjectId,
  type SubjectResult,
  type Throughput,
  targetRows,
} from "./report.js";
import { SimProcess, startBesideSimulator } from "./sim-control.js";
import { median as medianOf, percentile } from "./stats.js";
import {
  checkLedger,
  installPeers,
  REPO_ROOT,
  type RunningSubject,
  type RunningWattfare,
  startBareProxy,
  startPortkey,
  startWattfare,
} from "./subjects.js";

const SETTINGS = {
  rounds: 3,
  warmupSeconds: 2,
  latencySecondsPerRound: 1.5,
  throughputConnections: 64,
  throughputSecondsPerRound: 3,
  streamWarmupCount: 1000,
  streamsPerRound: 20,
  streamRounds: 2,
  streamInterTokenMs: 5,
  streamTokens: 16,
  memoryWarmupCount: 500,
  memoryStreams: 1000,
  memoryInterTokenMs: 250,
  memoryTokens: 24,
  memoryAfterMs: 3000,
  ledgerTimeoutMs: 30_000,
  profileSeconds: 8,
} as const;

const FAST = { ttftMs: 0, interTokenMs: 0, responseTokens: 16 };
const PACED = { ttftMs: 0, interTokenMs: SETTINGS.streamInterTokenMs, responseTokens: SETTINGS.streamTokens };
const SLOW = { ttftMs: 0, interTokenMs: SETTINGS.memoryInterTokenMs, responseTokens: SETTINGS.memoryTokens };

const RESULTS_DIR = path.join(REPO_ROOT, "bench/results");

/** Strips this machine's absolute paths from text written under bench/results. */
function portablePaths(text: string): string {
  return text
    .replaceAll(`file://${REPO_ROOT}/`, "")
    .replaceAll(`${REPO_ROOT}/`, "")
    .replace(/\/tmp\/wattfare-bench-[^\s"|)]*/g, "<tmp>");
}
const message = (error: unknown) => (error instanceof Error ? error.message : String(error));
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

type Starter = (sim: SimProcess, simKey: string, workDir: string) => Promise<RunningSubject>;

/** One running subject: its own simulator process and, except for (a), its proxy process. */
interface Live {
  id: SubjectId;
  label: string;
  sim: SimProcess;
  /** Null for subject (a), which is the simulator itself. */
  running: RunningSubject | null;
  target: Target;
  proxyPid: number | null;
  /** Set when a phase failed: the subject takes no further part. */
  failed: string | null;
}

async function launch(id: SubjectId, label: string, workDir: string, start: Starter | null): Promise<Live> {
  const { sim, simKey, subject } = await startBesideSimulator(label, async (sim, simKey) =>
    start === null ? null : start(sim, simKey, workDir),
  );
  const target: Target = subject?.target ?? {
    chatUrl: `${sim.apiUrl}/chat/completions`,
    headers: { authorization: `Bearer ${simKey}` },
  };
  return { id, label, sim, running: subject, target, proxyPid: subject?.pid ?? null, failed: null };
}

async function stopLive(live: Live): Promise<void> {
  await live.running?.stop();
  await live.sim.stop();
}

/** Runs one phase for one subject; a failure takes the subject out of the later phases, not the run. */
async function phase(live: Live, name: string, fn: () => Promise<void>): Promise<void> {
  if (live.failed !== null) return;
  try {
    await fn();
  } catch (error) {
    live.failed = `${name} failed: ${message(error)}`;
    log(`${live.label}: ${live.failed}`);
  }
}

function emptyResult(id: SubjectId, status: SubjectResult["status"], note: string | null): SubjectResult {
  return {
    id,
    status,
    note,
    warmupFailures: null,
    latencyC1: null,
    throughputC64: null,
    stream: null,
    memory: null,
    ledgers: [],
    rssAfterAllBytes: null,
  };
}

/** What is gathered for one subject across the interleaved rounds. */
interface Gathered {
  warmup: Failures;
  latency: RawCannon[];
  throughput: RawCannon[];
  cpu: { proxy: number; sim: number; loadgen: number; idle: number; steal: number };
  streams: StreamBatch[];
}

function throughputResult(g: Gathered, hasProxy: boolean): Throughput | null {
  if (g.throughput.length === 0) return null;
  const run = combineCannon(g.throughput);
  const perRequest = (seconds: number) => (run.requests === 0 ? 0 : (seconds * 1e6) / run.requests);
  const rounds = g.throughput.length;
  return {
    ...run,
    cpuSeconds: { proxy: hasProxy ? g.cpu.proxy : null, sim: g.cpu.sim, loadgen: g.cpu.loadgen },
    proxyCpuUsPerRequest: hasProxy ? perRequest(g.cpu.proxy) : null,
    simCpuUsPerRequest: perRequest(g.cpu.sim),
    loadgenCpuUsPerRequest: perRequest(g.cpu.loadgen),
    machineIdleShare: g.cpu.idle / rounds,
    machineStealShare: g.cpu.steal / rounds,
  };
}

const SUBJECTS: { id: SubjectId; start: Starter | null }[] = [
  { id: "sim", start: null },
  { id: "bare", start: startBareProxy },
  { id: "wattfare", start: startWattfare },
  { id: "portkey", start: portkeyStarter },
];

/**
 * Every subject is started first and its rounds are interleaved with the others' (a, b, c, e, a, b, …),
 * so a noisy neighbour on this shared 2-core machine hits all subjects alike instead of one. The memory
 * run uses a second, dedicated instance of each proxy, so its baseline is a warmed-up but lightly loaded
 * process and its "after idle" reading comes once the instance has idled through the rest of the run.
 */
async function benchmark(): Promise<void> {
  const startedAt = new Date();
  const machineInfo = machine();
  const workDir = mkdtempSync(path.join(os.tmpdir(), "wattfare-bench-logs-"));
  log(`subject logs under ${workDir}`);

  const results = new Map<SubjectId, SubjectResult>();
  const gathered = new Map<SubjectId, Gathered>();
  const measured: Live[] = [];
  const memory: Live[] = [];
  for (const { id, start } of SUBJECTS) {
    const label = SUBJECT_LABELS[id];
    results.set(id, emptyResult(id, "ok", null));
    gathered.set(id, {
      warmup: NO_FAILURES,
      latency: [],
      throughput: [],
      cpu: { proxy: 0, sim: 0, loadgen: 0, idle: 0, steal: 0 },
      streams: [],
    });
    try {
      log(`${label}: starting`);
      measured.push(await launch(id, label, workDir, start));
    } catch (error) {
      log(`${label}: could not start: ${message(error)}`);
      results.set(id, emptyResult(id, "failed", `could not start: ${message(error)}`));
      continue;
    }
    if (start === null) continue;
    try {
      memory.push(await launch(id, `${label} [memory instance]`, workDir, start));
    } catch (error) {
      log(`${label}: the memory instance could not start: ${message(error)}`);
      (results.get(id) as SubjectResult).note = `memory instance could not start: ${message(error)}`;
    }
  }
  const all = [...measured, ...memory];
  const resultOf = (live: Live) => results.get(live.id) as SubjectResult;
  const gatheredOf = (live: Live) => gathered.get(live.id) as Gathered;
  const addWarmup = (live: Live, f: Failures) => {
    const g = gatheredOf(live);
    g.warmup = addFailures(g.warmup, f);
  };

  try {
    // ---- memory: 1,000 slow streams against each dedicated instance, one instance at a time
    const memoryEndedAt = new Map<Live, number>();
    for (const live of memory) {
      await phase(live, "memory run", async () => {
        await live.sim.setTiming(FAST);
        addWarmup(live, streamFailures(await streams(live.target, SETTINGS.memoryWarmupCount, 16)));
        await sleep(1000);
        await live.sim.setTiming(SLOW);
        log(
          `${live.label}: ${SETTINGS.memoryStreams} concurrent streams, a token every ${SETTINGS.memoryInterTokenMs} ms`,
        );
        const m = await concurrentStreams(
          live.target,
          live.proxyPid as number,
          SETTINGS.memoryStreams,
          SETTINGS.memoryAfterMs,
        );
        resultOf(live).memory = m;
        memoryEndedAt.set(live, performance.now() - SETTINGS.memoryAfterMs);
        log(
          `  RSS ${mib(m.rssBeforeBytes)} → ${mib(m.rssPeakBytes)} → ${mib(m.rssAfterBytes)} MB; ${m.maxConcurrent} open at once; ${m.errors} errors, ${m.non2xx} non-2xx`,
        );
      });
    }

    // ---- streams: warm-up, then paced streams one at a time, rounds interleaved
    for (const live of measured) {
      await phase(live, "stream warm-up", async () => {
        log(`${live.label}: stream warm-up, ${SETTINGS.streamWarmupCount} fast streams`);
        await live.sim.setTiming(FAST);
        addWarmup(live, streamFailures(await streams(live.target, SETTINGS.streamWarmupCount, 16)));
        await live.sim.setTiming(PACED);
      });
    }
    for (let round = 1; round <= SETTINGS.streamRounds; round++) {
      log(
        `paced streams, round ${round}/${SETTINGS.streamRounds}: ${SETTINGS.streamsPerRound} per subject, one at a time`,
      );
      for (const live of measured) {
        await phase(live, "paced streams", async () => {
          gatheredOf(live).streams.push(await streams(live.target, SETTINGS.streamsPerRound, 1));
        });
      }
    }

    // ---- non-stream: warm-up, c=1 latency rounds, c=64 throughput rounds with CPU
    const c = SETTINGS.throughputConnections;
    for (const live of measured) {
      await phase(live, "warm-up", async () => {
        log(`${live.label}: warm-up, c=${c}, ${SETTINGS.warmupSeconds} s`);
        await live.sim.setTiming(FAST);
        addWarmup(live, await cannon(live.target, c, SETTINGS.warmupSeconds));
      });
    }
    for (let round = 1; round <= SETTINGS.rounds; round++) {
      log(
        `latency, c=1, round ${round}/${SETTINGS.rounds}: ${SETTINGS.latencySecondsPerRound} s per subject`,
      );
      for (const live of measured) {
        await phase(live, "latency run", async () => {
          gatheredOf(live).latency.push(await cannon(live.target, 1, SETTINGS.latencySecondsPerRound));
        });
      }
    }
    for (let round = 1; round <= SETTINGS.rounds; round++) {
      log(
        `throughput, c=${c}, round ${round}/${SETTINGS.rounds}: ${SETTINGS.throughputSecondsPerRound} s per subject`,
      );
      for (const live of measured) {
        await phase(live, "throughput run", async () => {
          const meter = new CpuMeter({
            sim: live.sim.pid,
            loadgen: process.pid,
            ...(live.proxyPid === null ? {} : { proxy: live.proxyPid }),
          });
          const run = await cannon(live.target, c, SETTINGS.throughputSecondsPerRound);
          const reading = meter.stop();
          const g = gatheredOf(live);
          g.throughput.push(run);
          g.cpu.proxy += reading.cpuSeconds.proxy ?? 0;
          g.cpu.sim += reading.cpuSeconds.sim ?? 0;
          g.cpu.loadgen += reading.cpuSeconds.loadgen ?? 0;
          g.cpu.idle += reading.idleShare;
          g.cpu.steal += reading.stealShare;
          log(
            `  ${live.label}: ${Math.round(run.latenciesMs.length / run.wallSeconds)} req/s, machine ${(reading.idleShare * 100).toFixed(0)}% idle`,
          );
        });
      }
    }

    // ---- after: idle RSS of the memory instances, ledgers
    for (const live of memory) {
      const m = resultOf(live).memory;
      const endedAt = memoryEndedAt.get(live);
      if (m !== null && endedAt !== undefined && live.failed === null && live.proxyPid !== null) {
        m.rssIdleBytes = rssBytes(live.proxyPid);
        m.idleSeconds = (performance.now() - endedAt) / 1000;
      }
    }
    for (const live of measured)
      if (live.proxyPid !== null) resultOf(live).rssAfterAllBytes = rssBytes(live.proxyPid);
    for (const live of all) {
      const running = live.running;
      if (running === null || !("databaseFile" in running) || live.failed !== null) continue;
      const instance = memory.includes(live) ? "memory instance" : "measured instance";
      log(`${live.label}: waiting for settlement, then ledger vs simulator`);
      const check = await checkLedger(
        instance,
        running as RunningWattfare,
        live.sim,
        SETTINGS.ledgerTimeoutMs,
      );
      resultOf(live).ledgers.push(check);
      log(
        `  ledger ${check.ledgerNano} nano-USD, simulator ${check.simBilledNano} (${check.equal ? "equal" : "DIFFERENT"})`,
      );
    }
  } finally {
    await Promise.all(all.map(stopLive));
  }

  for (const live of measured) {
    const result = resultOf(live);
    const g = gatheredOf(live);
    result.warmupFailures = g.warmup;
    result.latencyC1 = g.latency.length > 0 ? combineCannon(g.latency) : null;
    result.throughputC64 = throughputResult(g, live.proxyPid !== null);
    result.stream = g.streams.length > 0 ? summarizeStreams(g.streams) : null;
  }
  for (const live of all) {
    if (live.failed === null) continue;
    const result = resultOf(live);
    result.note = [result.note, `${live.label}: ${live.failed}`].filter((n) => n !== null).join("; ");
    if (measured.includes(live)) result.status = "failed";
  }

  const subjects: SubjectResult[] = [
    ...(["sim", "bare", "wattfare"] as const).map((id) => results.get(id) as SubjectResult),
    emptyResult(
      "wattfare-pg",
      "not built",
      "Wattfare on PostgreSQL + Redis: not built (the adapter does not exist yet).",
    ),
    results.get("portkey") as SubjectResult,
  ];
  const comparisons = compare(subjects);
  const report: Report = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: machineInfo,
    source: sourceVersion(),
    settings: { ...SETTINGS },
    subjects,
    comparisons,
    targets: evaluateTargets(comparisons, subjects),
  };
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(path.join(RESULTS_DIR, "latest.json"), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(path.join(RESULTS_DIR, "latest.md"), renderReportMarkdown(report));
  process.stdout.write(`\n${renderText(metricRows(report))}\n\n${renderText(targetRows(report.targets))}\n`);
  for (const s of subjects)
    if (s.note !== null) process.stdout.write(`note: ${SUBJECT_LABELS[s.id]}: ${s.note}\n`);
  const seconds = (Date.now() - startedAt.getTime()) / 1000;
  process.stdout.write(`\nbench/results/latest.{json,md} written; ${seconds.toFixed(0)} s in all.\n`);
}

async function portkeyStarter(sim: SimProcess, simKey: string, workDir: string): Promise<RunningSubject> {
  try {
    await installPeers();
  } catch (error) {
    throw new Error(`npm install --prefix bench/peers failed: ${message(error).split("\n")[0]}`);
  }
  return startPortkey(sim, simKey, workDir);
}

function machine(): Report["machine"] {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? "unknown",
    node: process.version,
    loadAverageAtStart: os.loadavg(),
  };
}

/** The commit measured, and whether the product's packages differ from it (the bench itself may). */
function sourceVersion(): string | null {
  try {
    const git = (...args: string[]) => execFileSync("git", args, { cwd: REPO_ROOT, encoding: "utf8" }).trim();
    const modified = git("status", "--porcelain", "--", "packages") !== "";
    return `${git("rev-parse", "--short", "HEAD")} (packages/ ${modified ? "MODIFIED since" : "as committed"})`;
  } catch {
    return null;
  }
}

// --------------------------------------------------------------------------------------------- profile

function newestProfile(dir: string): string {
  const files = readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"));
  const newest = files.sort(
    (a, b) => statSync(path.join(dir, b)).mtimeMs - statSync(path.join(dir, a)).mtimeMs,
  )[0];
  if (newest === undefined) throw new Error(`no .cpuprofile written under ${dir}`);
  return path.join(dir, newest);
}

/** Monotonic microseconds, the clock of V8's profile timestamps on Linux. */
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

async function profileSubject(
  id: "bare" | "wattfare",
  workDir: string,
): Promise<{
  id: SubjectId;
  requestsPerSecond: number;
  summary: ProfileSummary;
  file: string;
  windowed: boolean;
}> {
  const profDir = mkdtempSync(path.join(workDir, `${id}-prof-`));
  const nodeArgs = ["--cpu-prof", "--cpu-prof-dir", profDir, "--cpu-prof-interval", "250"];
  const sim = await SimProcess.start();
  try {
    const simKey = await sim.createKey(`profile ${id}`);
    const running =
      id === "wattfare"
        ? await startWattfare(sim, simKey, workDir, nodeArgs)
        : await startBareProxy(sim, simKey, workDir, nodeArgs);
    let run: RawCannon;
    let window: { fromUs: number; toUs: number };
    try {
      log(`${SUBJECT_LABELS[id]} (profiled): warm-up, then c=64 for ${SETTINGS.profileSeconds} s`);
      await cannon(running.target, SETTINGS.throughputConnections, SETTINGS.warmupSeconds);
      const fromUs = monotonicUs();
      run = await cannon(running.target, SETTINGS.throughputConnections, SETTINGS.profileSeconds);
      window = { fromUs, toUs: monotonicUs() };
    } finally {
      await running.stop();
    }
    const file = newestProfile(profDir);
    const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
    const windowed = profile.startTime <= window.fromUs && profile.endTime >= window.toUs;
    const summary = summarizeProfile(profile, windowed ? window : null);
    return { id, requestsPerSecond: run.latenciesMs.length / run.wallSeconds, summary, file, windowed };
  } finally {
    await sim.stop();
  }
}

function pct(share: number): string {
  return `${(share * 100).toFixed(1)}%`;
}

async function profile(): Promise<void> {
  const workDir = mkdtempSync(path.join(os.tmpdir(), "wattfare-bench-profile-"));
  const results = [await profileSubject("bare", workDir), await profileSubject("wattfare", workDir)];
  const sections = results.flatMap((r) => [
    `## ${SUBJECT_LABELS[r.id]} — ${Math.round(r.requestsPerSecond)} req/s under the profiler`,
    "",
    `${r.summary.samples} samples over ${r.summary.windowMs.toFixed(0)} ms (${r.windowed ? "the measured c=64 window only" : "the whole process: the window could not be matched"}), busy ${r.summary.busyMs.toFixed(0)} ms; shares are of busy time. Raw profile: ${r.file}`,
    "",
    "### Self time by package",
    "",
    renderMarkdown([
      ["package", "self", "ms"],
      ...r.summary.selfByCategory.map((row) => [row.name, pct(row.share), row.ms.toFixed(0)]),
    ]),
    "",
    "### Self time by function (top 25)",
    "",
    renderMarkdown([
      ["function", "self", "ms"],
      ...r.summary.selfByFunction.map((row) => [row.name, pct(row.share), row.ms.toFixed(0)]),
    ]),
    "",
    ...(r.id === "wattfare"
      ? [
          "### Inclusive time of Wattfare's own functions (top 25)",
          "",
          renderMarkdown([
            ["function", "inclusive", "ms"],
            ...r.summary.inclusiveWattfare.map((row) => [row.name, pct(row.share), row.ms.toFixed(0)]),
          ]),
          "",
        ]
      : []),
  ]);
  const markdown = [`# CPU profile at c=64 — ${new Date().toISOString()}`, "", ...sections].join("\n");
  mkdirSync(RESULTS_DIR, { recursive: true });
  // Committed results name no machine: paths become repo-relative, temp dirs a placeholder.
  writeFileSync(path.join(RESULTS_DIR, "profile.md"), portablePaths(markdown));
  writeFileSync(
    path.join(RESULTS_DIR, "profile.json"),
    portablePaths(`${JSON.stringify(results, null, 2)}\n`),
  );
  process.stdout.write(`${markdown}\nbench/results/profile.{json,md} written.\n`);
}

// --------------------------------------------------------------------------------------------- quick

async function quick(): Promise<void> {
  const workDir = mkdtempSync(path.join(os.tmpdir(), "wattfare-bench-quick-"));
  const subjects: Live[] = [];
  try {
    for (const { id, start } of SUBJECTS.filter((s) => s.id === "bare" || s.id === "wattfare")) {
      subjects.push(await launch(id, SUBJECT_LABELS[id], workDir, start));
    }
    const c = SETTINGS.throughputConnections;
    for (const live of subjects) {
      await live.sim.setTiming(FAST);
      await cannon(live.target, c, SETTINGS.warmupSeconds);
    }
    const perRequest = new Map<SubjectId, number[]>();
    const rates = new Map<SubjectId, number[]>();
    for (let round = 1; round <= 5; round++) {
      for (const live of subjects) {
        const { run, cpuPerRequestUs } = await cannonWithCpu(
          live.target,
          live.proxyPid as number,
          c,
          SETTINGS.throughputSecondsPerRound,
        );
        const ok = run.latenciesMs.length;
        perRequest.set(live.id, [...(perRequest.get(live.id) ?? []), cpuPerRequestUs]);
        rates.set(live.id, [...(rates.get(live.id) ?? []), ok / run.wallSeconds]);
        log(
          `round ${round} ${live.label}: ${Math.round(ok / run.wallSeconds)} req/s, ${cpuPerRequestUs.toFixed(0)} µs CPU/request, ${run.errors + run.non2xx} failed`,
        );
      }
    }
    await sleep(3000); // let the requests cut off at the end of the last round settle first
    for (const live of subjects) {
      const { run, cpuPerRequestUs } = await cannonWithCpu(
        live.target,
        live.proxyPid as number,
        1,
        SETTINGS.latencySecondsPerRound * 2,
      );
      log(
        `${live.label}: c=1 p50 ${percentile(run.latenciesMs, 0.5)?.toFixed(3)} ms, p99 ${percentile(run.latenciesMs, 0.99)?.toFixed(3)} ms, ${cpuPerRequestUs.toFixed(0)} µs CPU/request`,
      );
    }
    const median = (xs: number[]) => medianOf(xs) ?? 0;
    const cpuRatio = median(perRequest.get("wattfare") ?? []) / median(perRequest.get("bare") ?? []);
    const rateRatio = median(rates.get("wattfare") ?? []) / median(rates.get("bare") ?? []);
    // Rounds run back to back, so a round's ratio is less disturbed by the machine's drift than medians.
    const paired = (of: Map<SubjectId, number[]>) =>
      median((of.get("wattfare") ?? []).map((w, i) => w / ((of.get("bare") ?? [])[i] ?? Number.NaN)));
    process.stdout.write(
      `median CPU/request: bare ${median(perRequest.get("bare") ?? []).toFixed(0)} µs, Wattfare ${median(perRequest.get("wattfare") ?? []).toFixed(0)} µs (${cpuRatio.toFixed(2)}×); throughput ratio ${rateRatio.toFixed(2)}×\n` +
        `median of per-round ratios: CPU ${paired(perRequest).toFixed(2)}×, throughput ${paired(rates).toFixed(2)}×\n`,
    );
  } finally {
    await Promise.all(subjects.map(stopLive));
  }
}

const { values } = parseArgs({
  options: {
    profile: { type: "boolean", default: false },
    quick: { type: "boolean", default: false },
    compare: { type: "string" },
  },
});
try {
  if (values.compare !== undefined) await compareWithRef(values.compare);
  else if (values.profile) await profile();
  else if (values.quick) await quick();
  else await benchmark();
} catch (error) {
  process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
}
