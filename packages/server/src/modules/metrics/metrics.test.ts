import { afterEach, describe, expect, it } from "vitest";
import { newRequestId } from "../../http/request-id.js";
import { periodOf } from "../../period.js";
import { type ChatHarness, createChatHarness } from "../../testing/chat-harness.js";
import { createHarness, type Harness } from "../../testing/harness.js";
import { connectionAccount } from "../connections/index.js";

const TOKEN = "metrics-token-0123456789";

let h: Harness | undefined;
let ch: ChatHarness | undefined;
afterEach(async () => {
  await h?.close();
  await ch?.close();
  h = undefined;
  ch = undefined;
});

const scrape = (app: Harness["app"], authorization?: string) =>
  app.inject({
    method: "GET",
    url: "/metrics",
    headers: authorization === undefined ? {} : { authorization },
  });

/** The value of one sample line (`name{labels} value`) in a scrape, or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("GET /metrics", () => {
  it("does not exist without WATTFARE_METRICS_TOKEN", async () => {
    h = await createHarness();
    expect((await scrape(h.app, `Bearer ${TOKEN}`)).statusCode).toBe(404);
  });

  it("refuses a missing or wrong bearer token with 401 in Wattfare's error shape, asking for a Bearer token", async () => {
    h = await createHarness({ env: { WATTFARE_METRICS_TOKEN: TOKEN } });
    for (const authorization of [undefined, "Bearer nope", `Basic ${TOKEN}`, `Bearer ${TOKEN}x`]) {
      const res = await scrape(h.app, authorization);
      expect(res.statusCode, String(authorization)).toBe(401);
      expect(res.json()).toMatchObject({ error: { code: "auth" } });
      expect(res.headers["www-authenticate"]).toBe('Bearer realm="wattfare"');
      expect(res.body).not.toContain(TOKEN);
    }
  });

  it("serves Prometheus text with the process's metrics and Wattfare's own", async () => {
    h = await createHarness({ env: { WATTFARE_METRICS_TOKEN: TOKEN } });
    const res = await scrape(h.app, `Bearer ${TOKEN}`);
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(res.headers["cache-control"]).toBe("no-store");
    expect(sample(res.body, "process_cpu_user_seconds_total")).toBeGreaterThan(0);
    expect(sample(res.body, "wattfare_chat_in_flight")).toBe(0);
    expect(sample(res.body, "wattfare_reconciler_pending")).toBe(0);
    expect(sample(res.body, "wattfare_cost_over_reservation_total")).toBe(0);
  });

  it("counts chat errors by code and reservations charged in full for want of their cost", async () => {
    ch = await createChatHarness({ env: { WATTFARE_METRICS_TOKEN: TOKEN } });
    await ch.connect("alice", 5);
    const hello = [{ role: "user" as const, content: "Hi" }];
    expect((await ch.post({ model: "openai/gpt-4o-mini", messages: hello }, {})).status).toBe(400);
    expect(
      (await ch.post({ model: "openai/gpt-4o-mini", messages: hello }, { "x-wattfare-user": "bob" })).status,
    ).toBe(402);
    // Reset before the headers: the upstream may have billed and cannot be asked, so the bound is charged.
    ch.sim.control.setFaults({ resetBeforeHeaders: true });
    expect(
      (await ch.post({ model: "openai/gpt-4o-mini", messages: hello }, { "x-wattfare-user": "alice" }))
        .status,
    ).toBe(502);
    await ch.drain();
    const text = (await scrape(ch.app, `Bearer ${TOKEN}`)).body;
    expect(sample(text, 'wattfare_chat_errors_total{code="invalid_request"}')).toBe(1);
    expect(sample(text, 'wattfare_chat_errors_total{code="not_connected"}')).toBe(1);
    expect(sample(text, 'wattfare_chat_errors_total{code="upstream"}')).toBe(1);
    expect(sample(text, "wattfare_unreconciled_charges_total")).toBe(1);
  });

  it("counts a settlement whose real cost exceeded its reservation, once: settling it again counts nothing", async () => {
    ch = await createChatHarness({ env: { WATTFARE_METRICS_TOKEN: TOKEN } });
    await ch.connect("alice", 5);
    const hello = [{ role: "user" as const, content: "Hi" }];
    const res = await ch.post(
      { model: "openai/gpt-4o-mini", messages: hello },
      { "x-wattfare-user": "alice" },
    );
    const generationId = res.headers.get("x-generation-id") ?? "";
    await res.arrayBuffer();
    await ch.drain();
    // A reservation of one nano-dollar whose generation (the one above) really cost more: as when a
    // provider bills above the catalogue's price.
    const account = await ch.store.chatAccount(ch.appId, "alice");
    const now = ch.clock.now();
    const admitted = await ch.store.admit(
      {
        id: newRequestId(now),
        account: connectionAccount(account?.connection.id ?? ""),
        period: periodOf(now),
        appId: ch.appId,
        fundingId: account?.funding?.id ?? "",
        model: "openai/gpt-4o-mini",
        stream: false,
        createdAt: now,
        deadlineAt: now + 900_000,
      },
      5_000_000_000n,
      () => 1n,
      "elsewhere",
      now,
    );
    if (!admitted.admitted) throw new Error("not admitted");
    await ch.store.recordGenerationId(admitted.reservation.id, generationId);
    ch.app.chat.reconciler.track({ ...admitted.reservation, generationId });
    await ch.reconcile();
    const text = (await scrape(ch.app, `Bearer ${TOKEN}`)).body;
    expect(sample(text, "wattfare_cost_over_reservation_total")).toBe(1);
    expect(await ch.openReservations()).toBe(0);
    // Handed over a second time (as a reservation both a claim and its owner could settle): a no-op.
    ch.app.chat.reconciler.track({ ...admitted.reservation, generationId });
    await ch.reconcile();
    const again = (await scrape(ch.app, `Bearer ${TOKEN}`)).body;
    expect(sample(again, "wattfare_cost_over_reservation_total")).toBe(1);
  });
});
