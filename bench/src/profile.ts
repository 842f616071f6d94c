/**
 * Summarizes a V8 .cpuprofile (from `node --cpu-prof`): self and inclusive time per function and self
 * time per package, optionally only over a window of the monotonic clock (V8's profile timestamps and
 * `process.hrtime` both read CLOCK_MONOTONIC on Linux, so the orchestrator can cut out start-up and
 * warm-up). Pure: takes the parsed JSON.
 */

export interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

export interface CpuProfile {
  nodes: CpuProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface TimeRow {
  name: string;
  /** Share of the busy (non-idle) time in the window, 0..1. */
  share: number;
  ms: number;
}

export interface ProfileSummary {
  windowMs: number;
  busyMs: number;
  samples: number;
  selfByFunction: TimeRow[];
  selfByCategory: TimeRow[];
  /** Inclusive time of Wattfare's own functions (time on the stack, callees included). */
  inclusiveWattfare: TimeRow[];
}

const IDLE = "(idle)";

/** Which package or runtime part a frame belongs to. */
export function categorize(url: string, functionName: string): string {
  if (url === "") {
    if (functionName.startsWith("(")) return functionName; // (garbage collector), (program), (idle)…
    return "V8 builtins / native";
  }
  if (url.includes("/packages/server/")) return "wattfare server";
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1] as string;
  if (url.startsWith("node:")) return `node:${url.slice(5).split("/")[1] ?? url.slice(5)}`;
  return url;
}

function frameName(node: CpuProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const file =
    url === ""
      ? ""
      : ` ${url.replace(/^.*\/(node_modules|packages)\//, "$1/").replace(/^file:\/\//, "")}:${lineNumber + 1}`;
  return `${functionName || "(anonymous)"}${file}`;
}

function rows(times: Map<string, number>, busyUs: number, limit: number): TimeRow[] {
  return [...times]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([name, us]) => ({ name, ms: us / 1000, share: busyUs > 0 ? us / busyUs : 0 }));
}

export function summarizeProfile(
  profile: CpuProfile,
  window: { fromUs: number; toUs: number } | null = null,
  limit = 25,
): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const child of n.children ?? []) parent.set(child, n.id);

  const self = new Map<string, number>();
  const category = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let busyUs = 0;
  let windowUs = 0;
  let samples = 0;
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = profile.timeDeltas[i] ?? 0;
    t += dt;
    if (window !== null && (t < window.fromUs || t > window.toUs)) continue;
    // A sample stands for the interval up to the next one.
    const weight = profile.timeDeltas[i + 1] ?? dt;
    const node = byId.get(profile.samples[i] as number);
    if (!node) continue;
    samples++;
    windowUs += weight;
    const cat = categorize(node.callFrame.url, node.callFrame.functionName);
    if (cat === IDLE) continue;
    busyUs += weight;
    const name = frameName(node);
    self.set(name, (self.get(name) ?? 0) + weight);
    category.set(cat, (category.get(cat) ?? 0) + weight);
    const seen = new Set<string>();
    for (let at: CpuProfileNode | undefined = node; at; at = byId.get(parent.get(at.id) ?? -1)) {
      if (!at.callFrame.url.includes("/packages/server/")) continue;
      const frame = frameName(at);
      if (seen.has(frame)) continue;
      seen.add(frame);
      inclusive.set(frame, (inclusive.get(frame) ?? 0) + weight);
    }
  }
  return {
    windowMs: windowUs / 1000,
    busyMs: busyUs / 1000,
    samples,
    selfByFunction: rows(self, busyUs, limit),
    selfByCategory: rows(category, busyUs, limit),
    inclusiveWattfare: rows(inclusive, busyUs, limit),
  };
}
