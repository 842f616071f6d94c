import type { FastifyInstance } from "fastify";
import type { AppDeps } from "../../deps.js";
import { ApiError } from "../../errors.js";

/**
 * /healthz: the process is alive. /readyz: it can serve — the store answers, and writes again if a commit
 * failed for the store's sake (a lock held elsewhere, a full disk): chat cannot admit without a write.
 */
export function registerHealthRoutes(app: FastifyInstance, deps: AppDeps): void {
  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/readyz", async () => {
    try {
      await deps.store.ping();
    } catch (error) {
      throw new ApiError("unavailable", "The store cannot be read or written.", { cause: error });
    }
    return { status: "ready" };
  });
}
