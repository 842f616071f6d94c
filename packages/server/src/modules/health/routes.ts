import type { FastifyInstance } from "fastify";
import type { AppDeps } from "../../deps.js";
import { ApiError } from "../../errors.js";

/** /healthz: the process is alive. /readyz: it can serve (the store answers). */
export function registerHealthRoutes(app: FastifyInstance, deps: AppDeps): void {
  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/readyz", async () => {
    try {
      await deps.store.ping();
    } catch (error) {
      throw new ApiError("unavailable", "The store is not reachable.", { cause: error });
    }
    return { status: "ready" };
  });
}
