/**
 * Invariant 1 (no overshoot) and Invariant 2 (every reservation ends) under load, with exact equality
 * between Wattfare's ledger and what the upstream billed.
 */
import { afterEach, describe, expect, it } from "vitest";
import { nanoToUsd, usdToNano } from "../../money.js";
import { type ChatHarness, createChatHarness } from "../../testing/chat-harness.js";
import { ManualClock } from "../../testing/harness.js";

let h: ChatHarness;
afterEach(async () => h?.close());

const hello = [{ role: "user" as const, content: "Count to three" }];
const U = { "x-wattfare-user": "alice" };

async function streamAll(count: number, body: Record<string, unknown>): Promise<number[]> {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const res = await h.post({ stream: true, ...body }, U);
      await res.arrayBuffer();
      return res.status;
    }),
  );
}

describe("budget invariants", () => {
  it("never settles more than a few-cent cap across 100 concurrent streams, and meters them exactly", async () => {
    h = await createChatHarness({ sim: { responseTokens: 16, interTokenMs: 1 } });
    const capUsd = 0.05;
    const key = await h.connect("alice", capUsd);
    // wattfare/fee-model adds a $0.001 request fee: 100 requests would cost $0.10+, twice the cap.
    const statuses = await streamAll(100, { model: "wattfare/fee-model", messages: hello, max_tokens: 16 });
    await h.drain();
    const settled = await h.ledgerTotal();
    expect(settled).toBeLessThanOrEqual(usdToNano(capUsd, "down"));
    expect(await h.openReservations()).toBe(0);
    expect(settled).toBe(h.sim.control.billedNano(key));
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThan(0);
    expect(statuses.filter((s) => s === 402).length).toBeGreaterThan(0);
    expect(statuses.every((s) => s === 200 || s === 402)).toBe(true);
  });

  it("keeps the cap when real cost is close to the bound (expensive model, many at once)", async () => {
    h = await createChatHarness({ sim: { responseTokens: 16 } });
    const key = await h.connect("alice", 3);
    const statuses = await streamAll(60, { model: "wattfare/expensive", messages: hello, max_tokens: 16 });
    await h.drain();
    const settled = await h.ledgerTotal();
    expect(settled).toBeLessThanOrEqual(usdToNano(3, "down"));
    expect(settled).toBe(h.sim.control.billedNano(key));
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(5);
    expect(await h.openReservations()).toBe(0);
  });

  it("keeps the cap when a fallback chain falls over to its dearest model, its cheap primary being down", async () => {
    h = await createChatHarness({ sim: { responseTokens: 16 } });
    const key = await h.connect("alice", 1);
    h.sim.control.setFaults({ downModels: ["openai/gpt-4o-mini"] });
    const body = {
      model: "openai/gpt-4o-mini",
      models: ["wattfare/expensive"],
      messages: hello,
      max_tokens: 16,
    };
    const statuses = await streamAll(20, body);
    await h.drain();
    const settled = await h.ledgerTotal();
    // Priced by its primary alone, each would have been admitted for a fraction of a cent.
    expect(settled).toBeLessThanOrEqual(usdToNano(1, "down"));
    expect(settled).toBe(h.sim.control.billedNano(key));
    expect(h.sim.control.generations(key).every((g) => g.model === "wattfare/expensive")).toBe(true);
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThan(0);
    expect(statuses.filter((s) => s === 402).length).toBeGreaterThan(0);
    expect(await h.openReservations()).toBe(0);
  });

  it("forwards provider.max_price at the prices it reserved for, so OpenRouter cannot route to a dearer provider", async () => {
    h = await createChatHarness({ sim: { responseTokens: 4 } });
    await h.connect("alice", 1);
    const res = await h.post(
      {
        model: "openai/gpt-4o-mini",
        models: ["wattfare/fee-model"],
        messages: hello,
        stream: true,
        debug: { echo_upstream_body: true },
      },
      U,
    );
    const first = (await res.text()).split("\n").find((line) => line.startsWith("data: {"));
    const sent = JSON.parse(first?.slice(6) ?? "{}") as {
      debug?: { echo_upstream_body?: { provider?: unknown } };
    };
    // /models lists each model at one price; its providers may charge more. Per million tokens for
    // prompt and completion, per request and per image: each the dearest of the chain, a billionth up and
    // at least one pico-USD (so an endpoint at exactly that price qualifies however floats compare them).
    expect(sent.debug?.echo_upstream_body?.provider).toEqual({
      max_price: { prompt: 1.000001, completion: 2.000001, request: 0.001000000001, image: 0.000500000001 },
    });
    await h.drain();
  });

  it("is served at a listed price that floats round up (the simulator compares max_price as floats), and billed exactly", async () => {
    h = await createChatHarness();
    const key = await h.connect("alice", 1);
    // $3.30 per million: 0.0000033 × 1e6 is 3.3000000000000003, above a max_price written as 3.3.
    const res = await h.post({ model: "wattfare/odd-price", messages: hello }, U);
    expect(res.status).toBe(200);
    await h.drain();
    expect(await h.ledgerTotal()).toBe(h.sim.control.billedNano(key));
    expect(await h.ledgerTotal()).toBeGreaterThan(0n);
  });

  it("admits nothing new once the cap is lowered mid-flight, while in-flight streams finish and meter exactly", async () => {
    // Streams of ~2 s: long enough that all five still run once the last is admitted, even under load.
    h = await createChatHarness({ sim: { responseTokens: 100, interTokenMs: 20 } });
    const key = await h.connect("alice", 5);
    const inFlight = streamAll(5, { model: "openai/gpt-4o-mini", messages: hello, max_tokens: 100 });
    // Wait until all five are admitted (their reservations are durable), then lower the cap to nothing.
    for (let i = 0; i < 2000 && (await h.openReservations()) < 5; i++) {
      await new Promise((r) => setTimeout(r, 1));
    }
    expect(await h.openReservations()).toBe(5);
    h.store.db.prepare("UPDATE connections SET cap_nano = 1").run();
    const refused = await h.post({ model: "openai/gpt-4o-mini", messages: hello }, U);
    expect(refused.status).toBe(402);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("budget_exceeded");
    expect(await inFlight).toEqual([200, 200, 200, 200, 200]);
    await h.drain();
    expect(await h.openReservations()).toBe(0);
    expect(await h.ledgerTotal()).toBe(h.sim.control.billedNano(key));
  });

  it("settles a request admitted on the last second of a month into that month", async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 30, 23, 59, 59, 900));
    h = await createChatHarness({ clock, sim: { responseTokens: 40, interTokenMs: 5 } });
    const key = await h.connect("alice", 1);
    const res = await h.post(
      { model: "openai/gpt-4o-mini", messages: hello, stream: true, max_tokens: 40 },
      U,
    );
    clock.advance(1000); // midnight passes while the stream runs
    await res.arrayBuffer();
    await h.drain();
    const [entry] = await h.store.ledger();
    expect(entry?.period).toBe("2026-11");
    expect(await h.ledgerTotal()).toBe(h.sim.control.billedNano(key));
    // December starts from zero: the whole cap is available again.
    const status = (await (
      await fetch(`${h.url}/api/v1/status?appUserId=alice`, {
        headers: { authorization: `Bearer ${h.secretKey}` },
      })
    ).json()) as { usage: { monthlyUsd: number }; remainingUsd: number; period: { start: number } };
    expect(status.period.start).toBe(Date.UTC(2026, 11, 1) / 1000);
    expect(status.usage.monthlyUsd).toBe(0);
    expect(status.remainingUsd).toBe(1);
  });

  it("reports in GET /status exactly what the ledger holds", async () => {
    h = await createChatHarness({ sim: { responseTokens: 16 } });
    await h.connect("alice", 2);
    await streamAll(7, { model: "anthropic/claude-3.5-haiku", messages: hello, max_tokens: 32 });
    await h.drain();
    const total = await h.ledgerTotal();
    const status = (await (
      await fetch(`${h.url}/api/v1/status?appUserId=alice`, {
        headers: { authorization: `Bearer ${h.secretKey}` },
      })
    ).json()) as { usage: { monthlyUsd: number }; remainingUsd: number; connected: boolean };
    expect(status.connected).toBe(true);
    expect(status.usage.monthlyUsd).toBe(nanoToUsd(total, "up"));
    expect(status.remainingUsd).toBe(nanoToUsd(usdToNano(2, "down") - total, "down"));
  });
});

describe("a refusal's message", () => {
  const refusedWith = async (capUsd: number, content: string) => {
    h = await createChatHarness();
    await h.connect("alice", capUsd);
    const res = await h.post({ model: "wattfare/expensive", messages: [{ role: "user", content }] }, U);
    expect(res.status).toBe(402);
    return ((await res.json()) as { error: { code: string; message: string } }).error;
  };

  it("names the request's worst case and what is left when the cap is not used up", async () => {
    const error = await refusedWith(0.01, "x".repeat(20_000));
    expect(error.code).toBe("budget_exceeded");
    const amounts =
      /^This request could cost up to \$(\d+\.\d{6}) even with 16 output tokens .*, more than the \$(\d+\.\d{6}) left of the spending cap this period\./.exec(
        error.message,
      );
    expect(amounts?.[2]).toBe("0.010000");
    expect(Number(amounts?.[1])).toBeGreaterThan(0.01);
    expect(await h.ledgerTotal()).toBe(0n);
  });

  it("says the cap is reached when nothing is left of it", async () => {
    h = await createChatHarness();
    await h.connect("alice", 1);
    const connection = (await h.store.chatAccount(h.appId, "alice"))?.connection;
    await h.store.lowerCap(connection?.id ?? "", 0n, h.clock.now());
    const res = await h.post({ model: "openai/gpt-4o-mini", messages: hello }, U);
    expect(res.status).toBe(402);
    expect(await res.json()).toMatchObject({
      error: { code: "budget_exceeded", message: "Spending cap reached for this period." },
    });
  });
});
