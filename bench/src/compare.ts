/**
 * `npm run bench -- --compare <git ref>`: this tree's Wattfare against the same benchmark subject built
 * from another commit, side by side, beside one bare proxy — the steadiest way to tell a few per cent on
 * this drifting VM (separate runs move ±15 %). The ref is checked out into a temporary worktree, installed
 * with `npm ci` and built; two instances of each build (in A B B A slots) and the bare proxy each get their
 * own simulator; c=64 rounds are interleaved (the order flips every round), then c=1 rounds. It prints CPU
 * per request against (b) for every instance, the median of this tree's per-round ratio to the ref (both
 * instances of each), how far the two instances of one build differ (the resolution), and c=1 p50/p99.
 * It writes nothing.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { cannon, cannonWithCpu, type Target } from "./load.js";
import { log } from "./log.js";
import { type SimProcess, startBesideSimulator } from "./sim-control.js";
import { median, percentile } from "./stats.js";
import { REPO_ROOT, type RunningSubject, startBareProxy, startWattfare } from "./subjects.js";

const ROUNDS = 8;
const ROUND_SECONDS = 4;
const WARMUP_SECONDS = 4;
const LATENCY_ROUNDS = 3;
const LATENCY_SECONDS = 3;
const CONNECTIONS = 64;

interface Side {
  label: string;
  sim: SimProcess;
  running: RunningSubject;
  cpuPerRequest: number[];
  latenciesMs: number[];
}

/** Checks `ref` out into a temporary worktree, installs and builds it; returns the worktree. */
function buildRef(ref: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "wattfare-bench-compare-"));
  execFileSync("git", ["worktree", "add", "--detach", dir, ref], { cwd: REPO_ROOT, stdio: "inherit" });
  log(`${ref}: npm ci and build in ${dir}`);
  for (const args of [
    ["ci", "--no-audit", "--no-fund"],
    ["run", "build", "--silent"],
  ]) {
    execFileSync("npm", args, { cwd: dir, stdio: ["ignore", "ignore", "inherit"] });
  }
  return dir;
}

function removeWorktree(dir: string): void {
  try {
    execFileSync("git", ["worktree", "remove", "--force", dir], { cwd: REPO_ROOT, stdio: "ignore" });
  } catch {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function start(
  label: string,
  starter: (sim: SimProcess, key: string) => Promise<RunningSubject>,
): Promise<Side> {
  const { sim, subject } = await startBesideSimulator(label, async (sim, key) => {
    await sim.setTiming({ ttftMs: 0, interTokenMs: 0, responseTokens: 16 });
    return starter(sim, key);
  });
  return { label, sim, running: subject, cpuPerRequest: [], latenciesMs: [] };
}

const fixed = (value: number | undefined, digits: number) =>
  value === undefined ? "n/a" : value.toFixed(digits);

export async function compareWithRef(ref: string): Promise<void> {
  const workDir = mkdtempSync(path.join(os.tmpdir(), "wattfare-bench-compare-logs-"));
  const tree = buildRef(ref);
  const sides: Side[] = [];
  try {
    sides.push(await start("(b) bare proxy", (sim, key) => startBareProxy(sim, key, workDir)));
    const refBin = path.join(tree, "packages/server/bin/wattfare.js");
    const startRef = (slot: number) =>
      start(`Wattfare ${ref} #${slot}`, (sim, key) => startWattfare(sim, key, workDir, [], refBin));
    const startTree = (slot: number) =>
      start(`Wattfare (this tree) #${slot}`, (sim, key) => startWattfare(sim, key, workDir));
    // Two instances of each build in A B B A slots: on a VM where one slot runs dearer than another
    // (seen: the same build 10 % apart), neither build gets the better slots.
    sides.push(await startRef(1), await startTree(1), await startTree(2), await startRef(2));
    const target = (side: Side): Target => side.running.target;
    for (const side of sides) await cannon(target(side), CONNECTIONS, WARMUP_SECONDS);
    for (let round = 1; round <= ROUNDS; round++) {
      for (const side of round % 2 === 0 ? [...sides].reverse() : sides) {
        const { cpuPerRequestUs } = await cannonWithCpu(
          target(side),
          side.running.pid,
          CONNECTIONS,
          ROUND_SECONDS,
        );
        side.cpuPerRequest.push(cpuPerRequestUs);
      }
      log(
        `round ${round}/${ROUNDS}: ${sides.map((s) => `${s.label} ${fixed(s.cpuPerRequest.at(-1), 0)} µs`).join(", ")}`,
      );
    }
    for (let round = 1; round <= LATENCY_ROUNDS; round++) {
      for (const side of sides)
        side.latenciesMs.push(...(await cannon(target(side), 1, LATENCY_SECONDS)).latenciesMs);
    }
    const [bare, ref1, tree1, tree2, ref2] = sides as [Side, Side, Side, Side, Side];
    const perRound = (side: Side, base: Side) =>
      side.cpuPerRequest.map((cpu, i) => cpu / (base.cpuPerRequest[i] ?? Number.NaN));
    const pairPerRound = (a: Side, b: Side, baseA: Side, baseB: Side) =>
      a.cpuPerRequest.map(
        (cpu, i) =>
          (cpu + (b.cpuPerRequest[i] ?? Number.NaN)) /
          ((baseA.cpuPerRequest[i] ?? Number.NaN) + (baseB.cpuPerRequest[i] ?? Number.NaN)),
      );
    const lines = sides.map(
      (side) =>
        `${side.label.padEnd(28)} CPU/request ${fixed(median(side.cpuPerRequest), 0)} µs = ${fixed(median(perRound(side, bare)), 2)}× (b)   c=1 p50 ${fixed(percentile(side.latenciesMs, 0.5), 3)} ms, p99 ${fixed(percentile(side.latenciesMs, 0.99), 3)} ms`,
    );
    lines.push(
      `this tree / ${ref}, median of per-round CPU ratios (both instances of each): ${fixed(median(pairPerRound(tree1, tree2, ref1, ref2)), 3)}`,
      `resolution: the same build in two slots, #2 / #1: this tree ${fixed(median(perRound(tree2, tree1)), 3)}, ${ref} ${fixed(median(perRound(ref2, ref1)), 3)}`,
    );
    process.stdout.write(`${lines.join("\n")}\n`);
  } finally {
    await Promise.all(
      sides.map(async (side) => {
        await side.running.stop();
        await side.sim.stop();
      }),
    );
    removeWorktree(tree);
    rmSync(workDir, { recursive: true, force: true });
  }
}
