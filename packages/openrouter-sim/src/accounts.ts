/** API keys and the money attached to each: credit balance, optional limit, usage. */
import { createHash, randomBytes } from "node:crypto";
import type { Charge } from "./pricing.js";
import { usdToNano } from "./pricing.js";
import type { CreateKeyOptions, KeyState, LimitReset } from "./types.js";

/** A calendar window of OpenRouter's key usage (UTC; weeks run Monday to Sunday). */
interface UsageWindow {
  /** When the window the counters belong to began (ms since the epoch). */
  start: number;
  usageNano: bigint;
  byokUsageNano: bigint;
}

/** Every window a key's usage is counted in, and so every period a key limit can reset on. */
export const LIMIT_RESETS = ["daily", "weekly", "monthly"] as const satisfies readonly LimitReset[];
const DAY_MS = 86_400_000;

/** The start of the UTC day, week (from Monday) or month holding `at`. */
function windowStart(window: LimitReset, at: number): number {
  const day = Math.floor(at / DAY_MS) * DAY_MS;
  if (window === "daily") return day;
  if (window === "weekly") return day - ((new Date(day).getUTCDay() + 6) % 7) * DAY_MS;
  const d = new Date(day);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

export interface Account {
  key: string;
  keyHash: string;
  label: string;
  userId: string;
  creditsNano: bigint;
  limitNano: bigint | null;
  /** The window the limit applies to; null: it applies to all usage ever. */
  limitReset: LimitReset | null;
  usageNano: bigint;
  byokUsageNano: bigint;
  /** Usage in the current daily, weekly and monthly windows. */
  windows: Record<LimitReset, UsageWindow>;
  billedNano: bigint;
  byok: boolean;
  management: boolean;
}

const DEFAULT_CREDITS_USD = 10;

export const sha256Hex = (text: string): string => createHash("sha256").update(text).digest("hex");

/** OpenRouter labels keys by their first and last characters, e.g. `sk-or-v1-au7...890`. */
const defaultLabel = (key: string): string => `${key.slice(0, 12)}...${key.slice(-3)}`;

export class Accounts {
  private readonly byKey = new Map<string, Account>();
  private totalBilled = 0n;

  create(options: CreateKeyOptions = {}): Account {
    const key = `sk-or-v1-${randomBytes(32).toString("hex")}`;
    const account: Account = {
      key,
      keyHash: sha256Hex(key),
      label: options.label ?? defaultLabel(key),
      userId: `user_${randomBytes(12).toString("hex")}`,
      creditsNano: usdToNano(options.credits ?? DEFAULT_CREDITS_USD),
      limitNano: options.limit === undefined || options.limit === null ? null : usdToNano(options.limit),
      limitReset: options.limitReset ?? null,
      usageNano: 0n,
      byokUsageNano: 0n,
      windows: {
        daily: { start: 0, usageNano: 0n, byokUsageNano: 0n },
        weekly: { start: 0, usageNano: 0n, byokUsageNano: 0n },
        monthly: { start: 0, usageNano: 0n, byokUsageNano: 0n },
      },
      billedNano: 0n,
      byok: options.byok ?? false,
      management: options.management ?? false,
    };
    this.byKey.set(key, account);
    return account;
  }

  find(key: string): Account | undefined {
    return this.byKey.get(key);
  }

  /** For control methods: an unknown key there is a bug in the test, not a 401. */
  get(key: string): Account {
    const account = this.byKey.get(key);
    if (!account) throw new Error(`openrouter-sim: unknown key ${defaultLabel(key)}`);
    return account;
  }

  bill(account: Account, charge: Charge, at: number): void {
    account.creditsNano -= charge.costNano;
    account.usageNano += charge.costNano;
    account.byokUsageNano += charge.upstreamCostNano;
    for (const name of LIMIT_RESETS) {
      const window = currentWindow(account, name, at);
      window.usageNano += charge.costNano;
      window.byokUsageNano += charge.upstreamCostNano;
    }
    account.billedNano += charge.billedNano;
    this.totalBilled += charge.billedNano;
  }

  totalBilledNano(): bigint {
    return this.totalBilled;
  }

  state(account: Account): KeyState {
    return {
      keyHash: account.keyHash,
      label: account.label,
      userId: account.userId,
      creditsNano: account.creditsNano,
      limitNano: account.limitNano,
      limitReset: account.limitReset,
      usageNano: account.usageNano,
      byokUsageNano: account.byokUsageNano,
      billedNano: account.billedNano,
      byok: account.byok,
      management: account.management,
    };
  }
}

/** The counters of the window holding `at`, emptied first when the window has turned since they were last used. */
function currentWindow(account: Account, name: LimitReset, at: number): UsageWindow {
  const window = account.windows[name];
  const start = windowStart(name, at);
  if (window.start !== start) {
    window.start = start;
    window.usageNano = 0n;
    window.byokUsageNano = 0n;
  }
  return window;
}

/** Usage in one window as of `at`: zero once the window has turned. */
export function windowUsage(
  account: Account,
  name: LimitReset,
  at: number,
): { usageNano: bigint; byokUsageNano: bigint } {
  const window = account.windows[name];
  return window.start === windowStart(name, at) ? window : { usageNano: 0n, byokUsageNano: 0n };
}

/** The usage the key's limit counts at `at`: the current window's, or all of it when the limit never resets. */
export function limitUsageNano(account: Account, at: number): bigint {
  return account.limitReset === null
    ? account.usageNano
    : windowUsage(account, account.limitReset, at).usageNano;
}

/** What the key may still spend from credits at `at`: min(credit balance, limit − usage the limit counts). */
export function spendableNano(account: Account, at: number): bigint {
  if (account.limitNano === null) return account.creditsNano;
  const limitLeft = account.limitNano - limitUsageNano(account, at);
  if (limitLeft < account.creditsNano) return limitLeft;
  return account.creditsNano;
}
