/**
 * GET /metrics in Prometheus' text format, for operators (DESIGN.md): served only when
 * WATTFARE_METRICS_TOKEN is set, and only to `Authorization: Bearer <that token>`. One registry per
 * app (tests build many apps in one process), with Node's process metrics and Wattfare's own:
 *
 * - `wattfare_chat_errors_total{code}`: chat requests answered with an error, by error code;
 * - `wattfare_cost_over_reservation_total`: settlements whose real cost exceeded the reservation (a
 *   provider surprise: the ledger records the true cost and further admission stops at the cap);
 * - `wattfare_unreconciled_charges_total`: reservations charged in full, flagged `unreconciled`, because
 *   the upstream could not tell their real cost;
 * - `wattfare_chat_in_flight`, `wattfare_reconciler_pending`: requests being served, and reservations
 *   waiting for `/generation`.
 *
 * Counting costs a property increment on the request path; labels are bound once per code.
 */
import { createHash } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import type { AppDeps } from "../../deps.js";
import { ApiError } from "../../errors.js";
import { safeEqualHash } from "../../security/index.js";
import { bearerToken } from "../apps/index.js";

export class Metrics {
  readonly registry = new Registry();
  private readonly chatErrors = new Counter({
    name: "wattfare_chat_errors_total",
    help: "Chat requests answered with an error, by Wattfare error code.",
    labelNames: ["code"] as const,
    registers: [this.registry],
  });
  private readonly chatErrorsByCode = new Map<string, { inc(): void }>();
  readonly costOverReservation = new Counter({
    name: "wattfare_cost_over_reservation_total",
    help: "Settlements whose real cost exceeded the reservation.",
    registers: [this.registry],
  });
  readonly unreconciledCharges = new Counter({
    name: "wattfare_unreconciled_charges_total",
    help: "Reservations charged in full, flagged unreconciled, because the upstream could not tell their cost.",
    registers: [this.registry],
  });

  /**
   * `processMetrics`: also Node's own (CPU, memory, event-loop lag, GC). Only when /metrics is served:
   * they watch every GC and never stop, which a process that is not scraped should not pay for.
   */
  constructor(processMetrics: boolean) {
    if (processMetrics) collectDefaultMetrics({ register: this.registry });
  }

  chatError(code: string): void {
    let child = this.chatErrorsByCode.get(code);
    if (child === undefined) {
      child = this.chatErrors.labels(code);
      this.chatErrorsByCode.set(code, child);
    }
    child.inc();
  }

  /** Gauges read when scraped, from the chat module's live state. */
  watchChat(chat: { inFlight(): number; reconcilerPending(): number }): void {
    this.gauge("wattfare_chat_in_flight", "Chat requests being served by this process.", chat.inFlight);
    this.gauge(
      "wattfare_reconciler_pending",
      "Reservations waiting for their cost from /generation.",
      chat.reconcilerPending,
    );
  }

  private gauge(name: string, help: string, read: () => number): void {
    new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.set(read());
      },
    });
  }
}

const digest = (text: string) => createHash("sha256").update(text).digest();

/** GET /metrics, when a metrics token is configured; without one the route does not exist (404). */
export function registerMetricsRoute(app: FastifyInstance, deps: AppDeps, metrics: Metrics): void {
  const token = deps.config.metricsToken;
  if (token === undefined) return;
  const expected = digest(token);
  app.get("/metrics", async (request, reply) => {
    const given = bearerToken(request.headers.authorization);
    if (given === null || !safeEqualHash(digest(given), expected)) {
      throw new ApiError("auth", "Send Authorization: Bearer <WATTFARE_METRICS_TOKEN>.");
    }
    reply.header("content-type", metrics.registry.contentType).header("cache-control", "no-store");
    return metrics.registry.metrics();
  });
}
