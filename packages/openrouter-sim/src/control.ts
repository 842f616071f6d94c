/** The test-facing control surface over one simulator's state. */
import { nanoToUsd, usdToNano } from "./pricing.js";
import { NO_FAULTS, type SimState } from "./state.js";
import type { SimulatorControl } from "./types.js";

const DEFAULT_WAIT_MS = 5000;

export function createControl(sim: SimState): SimulatorControl {
  return {
    createKey: (options) => sim.accounts.create(options).key,
    setCredits(key, usd) {
      sim.accounts.get(key).creditsNano = usdToNano(usd);
    },
    setLimit(key, usd, reset) {
      const account = sim.accounts.get(key);
      account.limitNano = usd === null ? null : usdToNano(usd);
      if (reset !== undefined) account.limitReset = reset;
    },
    credits: (key) => nanoToUsd(sim.accounts.get(key).creditsNano),
    keyState: (key) => sim.accounts.state(sim.accounts.get(key)),
    billedNano: (key) => sim.accounts.get(key).billedNano,
    totalBilledNano: () => sim.accounts.totalBilledNano(),
    generations: (key) => sim.generations.list(key === undefined ? undefined : sim.accounts.get(key).keyHash),
    waitForGeneration: (id, timeoutMs = DEFAULT_WAIT_MS) => sim.generations.wait(id, timeoutMs),
    setFaults(faults) {
      sim.faults = { ...sim.faults, ...faults };
    },
    resetFaults() {
      sim.faults = { ...NO_FAULTS };
    },
    faults: () => ({ ...sim.faults }),
    setTiming(timing) {
      const s = sim.settings;
      if (timing.ttftMs !== undefined) s.ttftMs = timing.ttftMs;
      if (timing.interTokenMs !== undefined) s.interTokenMs = timing.interTokenMs;
      if (timing.responseTokens !== undefined) s.responseTokens = timing.responseTokens;
      if (timing.generationNotFoundMs !== undefined) s.generationNotFoundMs = timing.generationNotFoundMs;
      if (timing.nonStreamBlankLines !== undefined) s.nonStreamBlankLines = timing.nonStreamBlankLines;
    },
    requests: () => sim.requests(),
    clearRequests: () => sim.clearRequests(),
  };
}
