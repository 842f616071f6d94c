/**
 * The metered chat proxy. createChat() wires the upstream pool, price catalogue, reconciler and proxy;
 * the app registers its routes and closes it on shutdown.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { FastifyInstance } from "fastify";
import type { AppDeps } from "../../deps.js";
import { FundingKeyReads } from "../funding/index.js";
import type { Metrics } from "../metrics/index.js";
import { ModelCatalogue } from "./catalogue.js";
import { createChatHttpHandler } from "./http-handler.js";

export { isChatRequest } from "./http-handler.js";

import { ChatProxy } from "./proxy.js";
import { Reconciler } from "./reconciler.js";
import { registerChatRouteForInject, registerModelRoutes } from "./routes.js";
import { Upstream } from "./upstream.js";

export interface Chat {
  proxy: ChatProxy;
  reconciler: Reconciler;
  catalogue: ModelCatalogue;
  upstream: Upstream;
  /** Upstream `/key` re-reads of funding keys, shared with the consent popup. */
  keyReads: FundingKeyReads;
  /** The node:http handler for POST /api/v1/chat/completions (dispatched before Fastify). */
  handleHttp: (req: IncomingMessage, res: ServerResponse) => void;
  close(): Promise<void>;
}

export async function createChat(
  app: FastifyInstance,
  deps: AppDeps,
  metrics: Metrics,
  closing: AbortSignal,
): Promise<Chat> {
  const { config } = deps;
  const upstream = new Upstream({
    baseUrl: config.upstreamUrl,
    connections: config.upstream.connections,
    headersTimeoutMs: config.upstream.headersTimeoutMs,
    readTimeoutMs: config.upstream.readTimeoutMs,
    queueTimeoutMs: config.upstream.queueTimeoutMs,
    referer: config.publicUrl,
  });
  const catalogue = new ModelCatalogue(
    async () => {
      // Upstream lists text-output models only by default: ask for all, so image and audio models are priced.
      const res = await upstream.get("/models?output_modalities=all");
      if (res.status !== 200) throw new Error(`upstream /models answered ${res.status}`);
      return res.text;
    },
    config.upstream.modelsCacheMs,
    deps.clock,
  );
  let proxy: ChatProxy | undefined;
  const reconciler = new Reconciler({
    store: deps.store,
    upstream,
    keyRing: deps.keyRing,
    clock: deps.clock,
    logger: deps.logger,
    instanceId: deps.instanceId,
    leaseMs: config.reservations.leaseMs,
    heartbeatMs: config.reservations.heartbeatMs,
    tickMs: config.reservations.reconcilerTickMs,
    backoffMs: config.reservations.generationBackoffMs,
    deadlineMs: config.reservations.reconcileDeadlineMs,
    recheckMs: config.reservations.unreconciledRecheckMs,
    isInFlight: (id) => proxy?.inFlight.has(id) ?? false,
    metrics,
  });
  const keyReads = new FundingKeyReads({ ...deps, upstream });
  proxy = new ChatProxy({ ...deps, upstream, catalogue, reconciler, metrics, keyReads });
  metrics.watchChat({
    inFlight: () => proxy?.inFlight.size ?? 0,
    reconcilerPending: () => reconciler.pending,
  });
  registerModelRoutes(app, deps, catalogue);
  const handleHttp = createChatHttpHandler(deps, proxy, metrics, closing);
  registerChatRouteForInject(app, handleHttp);
  await reconciler.start();
  return {
    proxy,
    reconciler,
    catalogue,
    upstream,
    keyReads,
    handleHttp,
    async close() {
      await proxy.drain();
      reconciler.stop();
      await upstream.close();
    },
  };
}
