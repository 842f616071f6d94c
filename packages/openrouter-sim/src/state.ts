/**
 * Everything one simulator instance holds: settings that tests change at run time, faults, keys,
 * generations, recorded requests, OAuth codes and the timers that must die with the server.
 */

import { randomBytes } from "node:crypto";
import { Accounts } from "./accounts.js";
import { GenerationStore } from "./generation-store.js";
import { PromptCache } from "./prompt-cache.js";
import type { Faults, RecordedRequest, SimulatorOptions } from "./types.js";

export interface Settings {
  seed: number;
  ttftMs: number;
  interTokenMs: number;
  responseTokens: number;
  processingComments: number;
  nonStreamBlankLines: number;
  generationNotFoundMs: number;
  oauthCredits: number;
}

export const NO_FAULTS: Readonly<Faults> = Object.freeze({
  status: null,
  resetBeforeHeaders: false,
  resetAfterChunks: null,
  errorAfterChunks: null,
  hangBeforeHeaders: false,
  hangAfterChunks: null,
  byokUpstreamCostNull: false,
  downModels: [],
});

const REQUEST_HISTORY = 1000;
const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

export class SimState {
  readonly settings: Settings;
  faults: Faults = { ...NO_FAULTS };
  readonly accounts = new Accounts();
  readonly promptCache = new PromptCache();
  readonly generations: GenerationStore;
  readonly now: () => number;
  private readonly requestRing: RecordedRequest[] = [];
  private requestNext = 0;
  private readonly timers = new Set<NodeJS.Timeout>();
  // Ids must be unique across simulators in one test run, not secret: a random prefix plus a counter.
  private readonly idPrefix = Array.from(randomBytes(8), (b) => BASE62[b % 62]).join("");
  private idCounter = 0;

  constructor(options: SimulatorOptions) {
    this.settings = {
      seed: options.seed ?? 1,
      ttftMs: options.ttftMs ?? 0,
      interTokenMs: options.interTokenMs ?? 0,
      responseTokens: options.responseTokens ?? 16,
      processingComments: options.processingComments ?? 1,
      nonStreamBlankLines: options.nonStreamBlankLines ?? 0,
      generationNotFoundMs: options.generationNotFoundMs ?? 0,
      oauthCredits: options.oauthCredits ?? 10,
    };
    this.generations = new GenerationStore(options.generationHistory ?? 100_000);
    this.now = options.now ?? Date.now;
  }

  /** `gen-<unix seconds>-<20 chars>`, the shape of OpenRouter's generation ids. */
  nextGenerationId(): string {
    this.idCounter += 1;
    return `gen-${Math.floor(this.now() / 1000)}-${this.idPrefix}${this.idCounter.toString(36).padStart(12, "0")}`;
  }

  recordRequest(request: RecordedRequest): void {
    this.requestRing[this.requestNext] = request;
    this.requestNext = (this.requestNext + 1) % REQUEST_HISTORY;
  }

  requests(): RecordedRequest[] {
    if (this.requestRing.length < REQUEST_HISTORY) return [...this.requestRing];
    return [...this.requestRing.slice(this.requestNext), ...this.requestRing.slice(0, this.requestNext)];
  }

  clearRequests(): void {
    this.requestRing.length = 0;
    this.requestNext = 0;
  }

  /** A timeout that `close()` cancels, so a stopped simulator never fires into a dead server. */
  setTimer(callback: () => void, ms: number): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      callback();
    }, ms);
    this.timers.add(timer);
    return timer;
  }

  clearTimer(timer: NodeJS.Timeout | undefined): void {
    if (timer === undefined) return;
    clearTimeout(timer);
    this.timers.delete(timer);
  }

  clearAllTimers(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }
}
