/** What Linux reports about another process: CPU time from /proc/<pid>/stat, resident memory from /status. */
import { readFileSync } from "node:fs";

/** USER_HZ: /proc/<pid>/stat counts CPU time in 1/100 s on every Linux build Node supports. */
const CLOCK_TICKS_PER_SECOND = 100;

/**
 * Parses the utime + stime of a /proc/<pid>/stat line, in seconds. The command name (field 2) may hold
 * spaces and parentheses, so fields are counted from the last ")".
 */
export function parseCpuSeconds(stat: string): number {
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // After ")": state is field 3, so utime (14) and stime (15) sit at indexes 11 and 12.
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime))
    throw new Error("unexpected /proc/<pid>/stat format");
  return (utime + stime) / CLOCK_TICKS_PER_SECOND;
}

/** Parses VmRSS from /proc/<pid>/status, in bytes. */
export function parseRssBytes(status: string): number {
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (!match) throw new Error("no VmRSS in /proc/<pid>/status");
  return Number(match[1]) * 1024;
}

/** CPU seconds (user + system) the process has used so far. */
export function cpuSeconds(pid: number): number {
  return parseCpuSeconds(readFileSync(`/proc/${pid}/stat`, "utf8"));
}

export function rssBytes(pid: number): number {
  return parseRssBytes(readFileSync(`/proc/${pid}/status`, "utf8"));
}

/** The machine-wide CPU counters of /proc/stat's first line, in clock ticks. */
export interface SystemTicks {
  total: number;
  /** idle + iowait. */
  idle: number;
  /** Time the hypervisor ran someone else while this VM wanted to run. */
  steal: number;
}

export function parseSystemTicks(procStat: string): SystemTicks {
  const line = procStat.split("\n", 1)[0] ?? "";
  const fields = line.trim().split(/\s+/).slice(1).map(Number);
  if (!line.startsWith("cpu ") || fields.length < 8 || fields.some((f) => !Number.isFinite(f))) {
    throw new Error("unexpected /proc/stat format");
  }
  // user nice system idle iowait irq softirq steal (guest time is already counted in user and nice)
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = fields;
  return { total: user + nice + system + idle + iowait + irq + softirq + steal, idle: idle + iowait, steal };
}

function systemTicks(): SystemTicks {
  return parseSystemTicks(readFileSync("/proc/stat", "utf8"));
}

export interface CpuReading {
  wallSeconds: number;
  /** CPU seconds per named process over the interval. */
  cpuSeconds: Record<string, number>;
  /** Shares of all CPUs' time over the interval that were idle, and stolen by the hypervisor. */
  idleShare: number;
  stealShare: number;
}

/** CPU used by several processes (and the machine) over one interval: start before the load, stop after. */
export class CpuMeter {
  private readonly before: Map<string, number>;
  private readonly systemBefore = systemTicks();
  private readonly startedAt = performance.now();

  constructor(private readonly pids: Readonly<Record<string, number>>) {
    this.before = new Map(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid)]));
  }

  stop(): CpuReading {
    const cpu: Record<string, number> = {};
    for (const [name, pid] of Object.entries(this.pids)) {
      cpu[name] = cpuSeconds(pid) - (this.before.get(name) ?? 0);
    }
    const after = systemTicks();
    const total = after.total - this.systemBefore.total;
    return {
      wallSeconds: (performance.now() - this.startedAt) / 1000,
      cpuSeconds: cpu,
      idleShare: total > 0 ? (after.idle - this.systemBefore.idle) / total : 0,
      stealShare: total > 0 ? (after.steal - this.systemBefore.steal) / total : 0,
    };
  }
}
