/**
 * Measures the simulator's throughput at zero delays: the simulator runs in its own process (one core,
 * as Node runs JavaScript), this process drives it over keep-alive connections and reports requests per
 * second, latency percentiles and the simulator's CPU time per request (read from /proc on Linux).
 *
 *   node packages/openrouter-sim/dist/measure-throughput.js [--seconds 5] [--connections 32]
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

interface Started {
  apiUrl: string;
  key: string;
}

const CLK_TCK = 100; // Linux's USER_HZ: /proc/<pid>/stat counts CPU time in 1/100 s

function cpuSeconds(pid: number): number | null {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime + stime
  } catch {
    return null;
  }
}

function post(agent: Agent, url: URL, key: string, body: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: "POST",
        agent,
        headers: {
          authorization: `Bearer ${key}`,
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
        },
      },
      (res) => {
        if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
        res.on("data", () => {});
        res.on("end", resolve);
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

async function run(started: Started, pid: number, stream: boolean, seconds: number, connections: number) {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const url = new URL(`${started.apiUrl}/chat/completions`);
  const body = JSON.stringify({
    model: "openai/gpt-4o-mini",
    messages: [{ role: "user", content: "Say something about metering, in sixteen tokens." }],
    stream,
  });
  // Warm up the JIT and the connection pool before measuring.
  await Promise.all(Array.from({ length: connections * 20 }, () => post(agent, url, started.key, body)));

  const latencies: number[] = [];
  const cpuBefore = cpuSeconds(pid);
  const startedAt = performance.now();
  const deadline = startedAt + seconds * 1000;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < deadline) {
        const t = performance.now();
        await post(agent, url, started.key, body);
        latencies.push(performance.now() - t);
      }
    }),
  );
  const elapsed = (performance.now() - startedAt) / 1000;
  const cpuAfter = cpuSeconds(pid);
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const at = (q: number): string => (latencies[Math.floor(q * (latencies.length - 1))] ?? 0).toFixed(2);
  const cpu = cpuBefore === null || cpuAfter === null ? null : cpuAfter - cpuBefore;
  return {
    mode: stream ? "stream (16 chunks + usage)" : "json",
    requests: latencies.length,
    perSecond: Math.round(latencies.length / elapsed),
    p50ms: at(0.5),
    p99ms: at(0.99),
    simCpuPercent: cpu === null ? "n/a" : Math.round((cpu / elapsed) * 100),
    perCpuSecond: cpu === null || cpu === 0 ? "n/a" : Math.round(latencies.length / cpu),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { seconds: { type: "string", default: "5" }, connections: { type: "string", default: "32" } },
  });
  const seconds = Number(values.seconds);
  const connections = Number(values.connections);
  const bin = fileURLToPath(new URL("../bin/openrouter-sim.js", import.meta.url));
  const child = spawn(process.execPath, [bin, "--json", "--credits", "1000000"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const started = await new Promise<Started>((resolve, reject) => {
    child.stdout.once("data", (line: Buffer) => resolve(JSON.parse(line.toString()) as Started));
    child.once("exit", (code) => reject(new Error(`simulator exited with ${code}`)));
  });
  try {
    const results = [];
    for (const stream of [false, true])
      results.push(await run(started, child.pid!, stream, seconds, connections));
    console.table(results);
  } finally {
    child.kill("SIGTERM");
  }
}

await main();
