/**
 * `openrouter-sim --port N [--seed S] …`: runs a simulator until SIGINT/SIGTERM and prints its URL and
 * one funded demo key (or, with `--json`, one JSON line for scripts that spawn it).
 */
import { parseArgs } from "node:util";
import { LIMIT_RESETS } from "./accounts.js";
import { startSimulator } from "./server.js";
import type { Faults, LimitReset, SimulatorOptions } from "./types.js";

export const USAGE = `Usage: openrouter-sim [options]

  --port N                     port to listen on (default 0: any free port)
  --host H                     interface (default 127.0.0.1)
  --seed S                     seed for the deterministic text (default 1)
  --ttft-ms N                  delay before the first content chunk (default 0)
  --inter-token-ms N           delay between content chunks (default 0)
  --response-tokens N          tokens generated per choice when max_tokens allows (default 16)
  --processing-comments N      ": OPENROUTER PROCESSING" lines before the first event (default 1)
  --non-stream-blank-lines N   blank lines a delayed non-stream answer sends at once (default 0)
  --generation-not-found-ms N  /generation answers 404 this long after a generation ends (default 0)
  --oauth-credits USD          credits of keys created through OAuth (default 10)
  --credits USD                credits of the printed demo key (default 10)
  --limit USD                  key limit of the printed demo key (default none)
  --limit-reset daily|weekly|monthly  when that limit starts over (default never)
  --fault-status CODE          answer every chat request with 408, 429, 500, 502, 503, 504, 524 or 529
  --fault-reset-before-headers drop every chat connection before any response
  --fault-reset-after-chunks N drop streams after N content chunks
  --fault-error-after-chunks N send a mid-stream error event after N chunks
  --fault-hang-before-headers  never answer chat requests
  --fault-hang-after-chunks N  stop streams after N chunks, keeping the socket open
  --fault-byok-upstream-cost-null  BYOK answers report upstream_inference_cost: null (still billed)
  --fault-down-models ID,ID    these models' provider is down (502; a "models" fallback chain moves on)
  --json                       print {"url","apiUrl","key"} as one JSON line
  -h, --help                   show this help`;

export interface CliConfig {
  options: SimulatorOptions;
  faults: Partial<Faults>;
  demoKey: { credits: number; limit: number | null; limitReset: LimitReset | null };
  json: boolean;
  help: boolean;
}

const FAULT_STATUSES = [408, 429, 500, 502, 503, 504, 524, 529] as const;

function number(name: string, value: string | undefined, { min = 0 } = {}): number | undefined {
  if (value === undefined) return undefined;
  const parsed = Number(value);
  if (value.trim() === "" || !Number.isFinite(parsed) || parsed < min) {
    throw new Error(`--${name} must be a number ≥ ${min}, got ${JSON.stringify(value)}`);
  }
  return parsed;
}

function integer(name: string, value: string | undefined): number | undefined {
  const parsed = number(name, value);
  if (parsed !== undefined && !Number.isInteger(parsed)) throw new Error(`--${name} must be an integer`);
  return parsed;
}

/** Parses argv (without node and the script) into simulator options; throws with a readable message. */
export function parseCliArgs(argv: readonly string[]): CliConfig {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      port: { type: "string" },
      host: { type: "string" },
      seed: { type: "string" },
      "ttft-ms": { type: "string" },
      "inter-token-ms": { type: "string" },
      "response-tokens": { type: "string" },
      "processing-comments": { type: "string" },
      "non-stream-blank-lines": { type: "string" },
      "generation-not-found-ms": { type: "string" },
      "oauth-credits": { type: "string" },
      credits: { type: "string" },
      limit: { type: "string" },
      "limit-reset": { type: "string" },
      "fault-status": { type: "string" },
      "fault-reset-before-headers": { type: "boolean" },
      "fault-reset-after-chunks": { type: "string" },
      "fault-error-after-chunks": { type: "string" },
      "fault-hang-before-headers": { type: "boolean" },
      "fault-hang-after-chunks": { type: "string" },
      "fault-byok-upstream-cost-null": { type: "boolean" },
      "fault-down-models": { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });

  const options: SimulatorOptions = {};
  const set = <K extends keyof SimulatorOptions>(key: K, value: SimulatorOptions[K] | undefined): void => {
    if (value !== undefined) options[key] = value;
  };
  set("port", integer("port", values.port));
  set("host", values.host);
  set("seed", integer("seed", values.seed));
  set("ttftMs", number("ttft-ms", values["ttft-ms"]));
  set("interTokenMs", number("inter-token-ms", values["inter-token-ms"]));
  set("responseTokens", integer("response-tokens", values["response-tokens"]));
  set("processingComments", integer("processing-comments", values["processing-comments"]));
  set("nonStreamBlankLines", integer("non-stream-blank-lines", values["non-stream-blank-lines"]));
  set("generationNotFoundMs", number("generation-not-found-ms", values["generation-not-found-ms"]));
  set("oauthCredits", number("oauth-credits", values["oauth-credits"]));

  const faults: Partial<Faults> = {};
  const status = integer("fault-status", values["fault-status"]);
  if (status !== undefined) {
    const known = FAULT_STATUSES.find((s) => s === status);
    if (known === undefined) throw new Error(`--fault-status must be one of ${FAULT_STATUSES.join(", ")}`);
    faults.status = known;
  }
  if (values["fault-reset-before-headers"]) faults.resetBeforeHeaders = true;
  if (values["fault-hang-before-headers"]) faults.hangBeforeHeaders = true;
  if (values["fault-byok-upstream-cost-null"]) faults.byokUpstreamCostNull = true;
  const down = values["fault-down-models"];
  if (down !== undefined) faults.downModels = down.split(",").filter((id) => id !== "");
  const afterChunks = {
    resetAfterChunks: integer("fault-reset-after-chunks", values["fault-reset-after-chunks"]),
    errorAfterChunks: integer("fault-error-after-chunks", values["fault-error-after-chunks"]),
    hangAfterChunks: integer("fault-hang-after-chunks", values["fault-hang-after-chunks"]),
  };
  for (const [key, value] of Object.entries(afterChunks) as [
    keyof typeof afterChunks,
    number | undefined,
  ][]) {
    if (value !== undefined) faults[key] = value;
  }

  const limitReset = values["limit-reset"];
  const reset = LIMIT_RESETS.find((r) => r === limitReset);
  if (limitReset !== undefined && reset === undefined) {
    throw new Error(`--limit-reset must be one of ${LIMIT_RESETS.join(", ")}`);
  }

  return {
    options,
    faults,
    demoKey: {
      credits: number("credits", values.credits) ?? 10,
      limit: number("limit", values.limit) ?? null,
      limitReset: reset ?? null,
    },
    json: values.json ?? false,
    help: values.help ?? false,
  };
}

export async function main(argv: readonly string[]): Promise<void> {
  let config: CliConfig;
  try {
    config = parseCliArgs(argv);
  } catch (error) {
    console.error(`openrouter-sim: ${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  if (config.help) {
    console.log(USAGE);
    return;
  }
  const sim = await startSimulator(config.options);
  sim.control.setFaults(config.faults);
  const key = sim.control.createKey(config.demoKey);
  if (config.json) {
    console.log(JSON.stringify({ url: sim.url, apiUrl: sim.apiUrl, key }));
  } else {
    console.log(`openrouter-sim listening on ${sim.url}`);
    console.log(`  API base URL:  ${sim.apiUrl}`);
    console.log(`  OAuth page:    ${sim.url}/auth`);
    console.log(`  demo key ($${config.demoKey.credits}): ${key}`);
  }
  const stop = (): void => {
    void sim.close().then(() => process.exit(0));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}
