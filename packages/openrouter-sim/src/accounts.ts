/** API keys and the money attached to each: credit balance, optional limit, usage. */
import { createHash, randomBytes } from "node:crypto";
import type { Charge } from "./pricing.js";
import { usdToNano } from "./pricing.js";
import type { CreateKeyOptions, KeyState } from "./types.js";

export interface Account {
  key: string;
  keyHash: string;
  label: string;
  userId: string;
  creditsNano: bigint;
  limitNano: bigint | null;
  usageNano: bigint;
  byokUsageNano: bigint;
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
      usageNano: 0n,
      byokUsageNano: 0n,
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

  bill(account: Account, charge: Charge): void {
    account.creditsNano -= charge.costNano;
    account.usageNano += charge.costNano;
    account.byokUsageNano += charge.upstreamCostNano;
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
      usageNano: account.usageNano,
      byokUsageNano: account.byokUsageNano,
      billedNano: account.billedNano,
      byok: account.byok,
      management: account.management,
    };
  }
}

/** What the key may still spend from credits: min(credit balance, limit − usage). */
export function spendableNano(account: Account): bigint {
  if (account.limitNano === null) return account.creditsNano;
  const limitLeft = account.limitNano - account.usageNano;
  if (limitLeft < account.creditsNano) return limitLeft;
  return account.creditsNano;
}
