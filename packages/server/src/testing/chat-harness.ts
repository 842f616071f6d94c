/**
 * A real Wattfare listening on port 0 in front of a real simulator, an app with a high chat rate limit
 * (tests that need volume use per-app overrides, never weaker defaults), and helpers to connect users
 * and compare the ledger with what the simulator billed.
 */
import { randomBytes } from "node:crypto";
import { type LimitReset, type SimulatorOptions, startSimulator } from "@wattfare/openrouter-sim";
import OpenAI from "openai";
import { usdToNano } from "../money.js";
import { encryptFundingKey, fundingKeyFingerprint } from "../security/index.js";
import { createHarness, type Harness, type ManualClock, postChat } from "./harness.js";

type Simulator = Awaited<ReturnType<typeof startSimulator>>;

export interface ChatHarness extends Harness {
  sim: Simulator;
  /** Stops the simulator (idempotent), e.g. to make the upstream unreachable. */
  stopSimulator(): Promise<void>;
  url: string;
  appId: string;
  secretKey: string;
  /** Connects `user` with a fresh simulator key; returns the key. */
  connect(
    user: string,
    capUsd: number,
    key?: { credits?: number; byok?: boolean; limit?: number | null; limitReset?: LimitReset | null },
  ): Promise<string>;
  openai(user: string): OpenAI;
  /** Waits until every request served so far has settled (or been handed to the reconciler). */
  drain(): Promise<void>;
  /** Sum of every ledger entry, nano-USD. */
  ledgerTotal(): Promise<bigint>;
  openReservations(): Promise<number>;
  /** Advances the clock past every back-off and runs reconciler ticks until nothing is pending. */
  reconcile(): Promise<void>;
  post(body: unknown, headers?: Record<string, string>): Promise<Response>;
}

export async function createChatHarness(
  options: { sim?: SimulatorOptions; env?: Record<string, string>; clock?: ManualClock } = {},
): Promise<ChatHarness> {
  const sim = await startSimulator(options.sim);
  const h = await createHarness({
    env: { WATTFARE_UPSTREAM_URL: sim.apiUrl, ...options.env },
    ...(options.clock ? { clock: options.clock } : {}),
  });
  await h.app.listen({ host: "127.0.0.1", port: 0 });
  const address = h.app.server.address();
  const url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  const { appId, secretKey } = await h.createApp("Chat test app");
  let simClosed = false;
  const stopSimulator = async () => {
    if (!simClosed) {
      simClosed = true;
      await sim.close();
    }
  };
  await h.store.setAppLimits(appId, { chatPerMinute: 1_000_000 });

  return {
    ...h,
    sim,
    url,
    appId,
    secretKey,
    async close() {
      await h.close();
      await stopSimulator();
    },
    stopSimulator,
    async connect(user, capUsd, key = {}) {
      const fundingKey = sim.control.createKey({
        credits: key.credits ?? 100,
        byok: key.byok ?? false,
        limit: key.limit ?? null,
        limitReset: key.limitReset ?? null,
      });
      const fundingId = `fnd_${randomBytes(8).toString("hex")}`;
      await h.store.devConnect({
        appId,
        appUserId: user,
        capNano: usdToNano(capUsd, "down"),
        payerEmail: `${user}@example.com`,
        funding: {
          id: fundingId,
          keyBlob: encryptFundingKey(h.deps.keyRing, fundingKey, fundingId),
          fingerprint: fundingKeyFingerprint(fundingKey),
          source: "dev",
        },
        now: h.clock.now(),
      });
      return fundingKey;
    },
    openai(user) {
      return new OpenAI({
        baseURL: `${url}/api/v1`,
        apiKey: secretKey,
        defaultHeaders: { "x-wattfare-user": user },
        maxRetries: 0,
      });
    },
    drain() {
      return h.app.chat.proxy.drain();
    },
    async ledgerTotal() {
      return (await h.store.ledger()).reduce((sum, e) => sum + e.amountNano, 0n);
    },
    async openReservations() {
      return (await h.store.openReservations()).length;
    },
    async reconcile() {
      const reconciler = h.app.chat.reconciler;
      for (let i = 0; i < 200 && reconciler.pending > 0; i++) {
        h.clock.advance(60_000);
        await reconciler.tick();
      }
    },
    post(body, headers = {}) {
      return postChat(url, secretKey, body, { headers });
    },
  };
}
