/**
 * Every way a request can fail, and proof that each ends its reservation with exactly what the
 * upstream billed (or, where the upstream cannot be asked, conservatively at the reservation).
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import type { ConnectionRecord } from "../../store/port.js";
import { type ChatHarness, createChatHarness } from "../../testing/chat-harness.js";
import { ManualClock, postChat } from "../../testing/harness.js";
import { Upstream } from "./upstream.js";

let h: ChatHarness;
afterEach(async () => h?.close());

const hello = [{ role: "user" as const, content: "Tell me a story" }];
const U = { "x-wattfare-user": "alice" };

async function start(sim: Parameters<typeof createChatHarness>[0] = {}): Promise<string> {
  const clock = new ManualClock();
  h = await createChatHarness({
    clock,
    sim: { responseTokens: 20, now: () => clock.now(), ...sim.sim },
    ...(sim.env ? { env: sim.env } : {}),
  });
  return h.connect("alice", 5);
}

async function errorOf(res: Response): Promise<{ code: string; message: string }> {
  return ((await res.json()) as { error: { code: string; message: string } }).error;
}

async function expectExact(key: string): Promise<void> {
  await h.drain();
  await h.reconcile();
  expect(await h.openReservations()).toBe(0);
  expect(await h.ledgerTotal()).toBe(h.sim.control.billedNano(key));
}

/**
 * Alice's stream, aborted after two chunks, whose /generation record stays hidden for `hiddenForMs`
 * (3 hours): past the 15-minute deadline it is charged at its reservation, flagged unreconciled.
 * Returns the simulator key.
 */
async function unreconciledCharge(hiddenForMs = 3 * 3_600_000): Promise<string> {
  const key = await start({
    sim: { interTokenMs: 20, responseTokens: 100, generationNotFoundMs: hiddenForMs },
  });
  const controller = new AbortController();
  const res = await abortable(
    { model: "openai/gpt-4o-mini", messages: hello, stream: true, max_tokens: 500 },
    controller,
  );
  await readAndAbort(res, controller, 2);
  await h.drain();
  await h.reconcile();
  return key;
}

/** A chat request as alice that the test can abort. */
function abortable(body: Record<string, unknown>, controller: AbortController): Promise<Response> {
  return postChat(h.url, h.secretKey, body, { headers: U, signal: controller.signal });
}

/** Reads an SSE response until `stopAfter` content chunks, then aborts; returns the text seen. */
async function readAndAbort(res: Response, controller: AbortController, stopAfter: number): Promise<string> {
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = "";
  let chunks = 0;
  while (chunks < stopAfter) {
    const { value, done } = await reader.read();
    if (done) break;
    const piece = decoder.decode(value);
    text += piece;
    chunks += piece.split("\n").filter((l) => l.includes('"content"')).length;
  }
  controller.abort();
  await reader.cancel().catch(() => undefined);
  return text;
}

describe("upstream errors before the body", () => {
  it.each([500, 502, 503, 504, 524, 529, 408] as const)(
    "maps an upstream %i to 502 upstream, safe to retry (nothing was billed), and releases the reservation",
    async (status) => {
      const key = await start();
      h.sim.control.setFaults({ status });
      const res = await h.post({ model: "openai/gpt-4o-mini", messages: hello }, U);
      expect(res.status).toBe(502);
      expect(res.headers.get("x-should-retry")).toBe("true");
      expect((await errorOf(res)).code).toBe("upstream");
      await expectExact(key);
      expect(await h.ledgerTotal()).toBe(0n);
    },
  );

  it("passes Retry-After through on an upstream 429", async () => {
    await start();
    h.sim.control.setFaults({ status: 429 });
    const res = await h.post({ model: "openai/gpt-4o-mini", messages: hello }, U);
    expect(res.status).toBe(502);
    expect(res.headers.get("retry-after")).toBe("7");
  });

  it("answers 402 funding_invalid and marks funding insufficient when the key lacks credits", async () => {
    h = await createChatHarness();
    await h.connect("alice", 5, { credits: 0.0000001 });
    const res = await h.post({ model: "openai/gpt-4o-mini", messages: hello }, U);
    expect(res.status).toBe(402);
    expect(res.headers.get("x-should-retry")).toBe("false");
    expect((await errorOf(res)).code).toBe("funding_invalid");
    const state = h.store.db.prepare("SELECT state FROM funding").get() as { state: string };
    expect(state.state).toBe("insufficient");
    expect(await h.openReservations()).toBe(0);
  });

  it("answers a request too large for the key's credits with OpenRouter's advice, and still admits a smaller one", async () => {
    h = await createChatHarness();
    const key = await h.connect("alice", 5, { credits: 0.0001 }); // ≈ 160 output tokens of gpt-4o-mini
    const large = await h.post({ model: "openai/gpt-4o-mini", messages: hello, max_tokens: 4000 }, U);
    expect(large.status).toBe(402);
    expect(await errorOf(large)).toMatchObject({
      code: "funding_invalid",
      message: expect.stringMatching(/can only afford \d+/),
    });
    const state = h.store.db.prepare("SELECT state FROM funding").get() as { state: string };
    expect(state.state).toBe("ok");
    const small = await h.post({ model: "openai/gpt-4o-mini", messages: hello, max_tokens: 16 }, U);
    expect(small.status).toBe(200);
    await small.arrayBuffer();
    await h.drain();
    expect(await h.ledgerTotal()).toBe(h.sim.control.billedNano(key));
  });

  it("re-reads the key's limit after a 402 that can only afford a smaller request, so the next request is sized to it, without marking the funding out of credits", async () => {
    h = await createChatHarness();
    const key = await h.connect("alice", 5, { credits: 100 }); // no limit of its own when connected
    h.clock.advance(60_000);
    h.sim.control.setLimit(key, 0.0001); // the payer sets a $0.0001 limit on openrouter.ai
    const first = await h.post({ model: "openai/gpt-4o-mini", messages: hello }, U);
    expect(first.status).toBe(402);
    expect((await errorOf(first)).message).toMatch(/can only afford [1-9]\d*/);
    const funding = (await h.store.chatAccount(h.appId, "alice"))?.funding;
    expect(funding).toMatchObject({ state: "ok", limitRemainingNano: 100_000n });
    // No wait: the next request without max_tokens is sized to the fresh limit instead of refused again.
    const second = await h.post({ model: "openai/gpt-4o-mini", messages: hello }, U);
    expect(second.status).toBe(200);
    expect(Number(second.headers.get("x-wattfare-max-tokens"))).toBeLessThan(4096);
    await second.arrayBuffer();
    await h.drain();
  });

  it("re-reads the key after 402s that can only afford a smaller request at most every 30 seconds", async () => {
    h = await createChatHarness();
    await h.connect("alice", 5, { credits: 0.0001 }); // the account's credits bind: /key cannot see them
    h.clock.advance(60_000);
    const upstream = (h.app as unknown as { chat: { upstream: { get: (path: string) => unknown } } }).chat
      .upstream;
    const get = vi.spyOn(upstream, "get");
    const keyReads = () => get.mock.calls.filter(([path]) => path === "/key").length;
    const ask = async () => {
      const res = await h.post({ model: "openai/gpt-4o-mini", messages: hello }, U);
      expect(res.status).toBe(402);
      await res.arrayBuffer();
    };
    await ask();
    await ask();
    await ask();
    expect(keyReads()).toBe(1);
    h.clock.advance(30_000);
    await ask();
    expect(keyReads()).toBe(2);
    get.mockRestore();
    const state = h.store.db.prepare("SELECT state FROM funding").get() as { state: string };
    expect(state.state).toBe("ok");
  });

  it("treats a 403 key limit exceeded as funding_invalid", async () => {
    h = await createChatHarness();
    const key = await h.connect("alice", 5);
    // Spend through the key directly at the simulator, then set its limit below what it has spent.
    const direct = () =>
      fetch(`${h.sim.apiUrl}/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "openai/gpt-4o-mini", messages: hello, max_tokens: 16 }),
      });
    const spent = await direct();
    await spent.arrayBuffer();
    expect(spent.status).toBe(200);
    h.sim.control.setLimit(key, 0.000000001);
    const upstream = await direct();
    expect(upstream.status).toBe(403);
    expect(await upstream.text()).toContain("Key limit exceeded");

    const res = await h.post({ model: "openai/gpt-4o-mini", messages: hello, max_tokens: 16 }, U);
    expect(res.status).toBe(402);
    expect((await errorOf(res)).code).toBe("funding_invalid");
    const state = h.store.db.prepare("SELECT state FROM funding").get() as { state: string };
    expect(state.state).toBe("insufficient");
    expect(await h.openReservations()).toBe(0);
  });

  it("marks funding invalid only once /key confirms the upstream 401", async () => {
    await start();
    // Replace the payer's key with one the simulator has never seen.
    const { encryptFundingKey } = await import("../../security/index.js");
    const row = h.store.db.prepare("SELECT id FROM funding").get() as { id: string };
    h.store.db
      .prepare("UPDATE funding SET key_blob = ? WHERE id = ?")
      .run(encryptFundingKey(h.deps.keyRing, `sk-or-v1-${"0".repeat(64)}`, row.id), row.id);
    const res = await h.post({ model: "openai/gpt-4o-mini", messages: hello }, U);
    expect(res.status).toBe(402);
    expect((await errorOf(res)).code).toBe("funding_invalid");
    expect((h.store.db.prepare("SELECT state FROM funding").get() as { state: string }).state).toBe(
      "invalid",
    );
    const again = await h.post({ model: "openai/gpt-4o-mini", messages: hello }, U);
    expect(again.status).toBe(402);
  });

  it("answers a funding key it cannot decrypt (a retired server secret) with 402 and marks the funding invalid", async () => {
    await start();
    h.store.db.prepare("UPDATE funding SET key_blob = 'v1.unknownkid.AAAA.AAAA'").run();
    const res = await h.post({ model: "openai/gpt-4o-mini", messages: hello }, U);
    expect(res.status).toBe(402);
    expect((await errorOf(res)).code).toBe("funding_invalid");
    await h.drain();
    expect((h.store.db.prepare("SELECT state FROM funding").get() as { state: string }).state).toBe(
      "invalid",
    );
    expect(h.sim.control.requests()).toHaveLength(0);
  });

  it("turns a moderation block into 400 invalid_request with the reason", async () => {
    const key = await start();
    const res = await h.post(
      { model: "openai/gpt-4o-mini", messages: [{ role: "user", content: "TRIGGER_MODERATION now" }] },
      U,
    );
    expect(res.status).toBe(400);
    expect((await errorOf(res)).code).toBe("invalid_request");
    await expectExact(key);
  });

  it("refuses with 503 unavailable while no price catalogue could ever be fetched", async () => {
    await start();
    await h.stopSimulator();
    const res = await h.post({ model: "openai/gpt-4o-mini", messages: hello }, U);
    expect(res.status).toBe(503);
    expect(res.headers.get("x-should-retry")).toBe("true");
    expect((await errorOf(res)).code).toBe("unavailable");
    expect(await h.openReservations()).toBe(0);
  });

  it("releases at once when the upstream cannot be reached", async () => {
    const key = await start();
    await (await h.post({ model: "openai/gpt-4o-mini", messages: hello, max_tokens: 16 }, U)).arrayBuffer();
    await h.drain();
    const before = await h.ledgerTotal();
    expect(before).toBe(h.sim.control.billedNano(key));
    await h.stopSimulator();
    const res = await h.post({ model: "openai/gpt-4o-mini", messages: hello }, U);
    expect(res.status).toBe(502);
    expect(res.headers.get("x-should-retry")).toBe("true");
    expect((await errorOf(res)).code).toBe("upstream");
    expect(await h.openReservations()).toBe(0);
    expect(await h.ledgerTotal()).toBe(before);
  });

  it("charges the reservation, flagged unreconciled, when the upstream resets before answering", async () => {
    await start();
    h.sim.control.setFaults({ resetBeforeHeaders: true });
    const res = await h.post({ model: "openai/gpt-4o-mini", messages: hello, max_tokens: 50 }, U);
    expect(res.status).toBe(502);
    expect(res.headers.get("x-should-retry")).toBe("false");
    await h.drain();
    const [entry] = await h.store.ledger();
    expect(entry?.unreconciled).toBe(true);
    expect(entry?.amountNano).toBeGreaterThan(0n);
    expect(await h.openReservations()).toBe(0);
  });

  it("gives up on an upstream that never answers after the headers timeout", async () => {
    await start({ env: { WATTFARE_UPSTREAM_HEADERS_TIMEOUT_MS: "300" } });
    await h
      .post({ model: "openai/gpt-4o-mini", messages: hello, max_tokens: 16 }, U)
      .then((r) => r.arrayBuffer());
    h.sim.control.setFaults({ hangBeforeHeaders: true });
    const res = await h.post({ model: "openai/gpt-4o-mini", messages: hello }, U);
    expect(res.status).toBe(502);
    expect(await h.openReservations()).toBe(0);
  });
});

describe("failures after the headers", () => {
  it("forwards the upstream's mid-stream error event and charges nothing, as the upstream bills nothing for it", async () => {
    const key = await start();
    h.sim.control.setFaults({ errorAfterChunks: 3 });
    const res = await h.post({ model: "openai/gpt-4o-mini", messages: hello, stream: true }, U);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toContain('"finish_reason":"error"');
    await expectExact(key);
    expect(h.sim.control.billedNano(key)).toBe(0n); // zero completion insurance: finish_reason "error"
    expect(await h.ledgerTotal()).toBe(0n);
  });

  it("ends a stream whose upstream resets with OpenRouter's mid-stream error chunk, finish_reason error and code upstream, under the generation id and model, and reconciles the cost", async () => {
    const key = await start();
    h.sim.control.setFaults({ resetAfterChunks: 3 });
    const res = await h.post({ model: "openai/gpt-4o-mini", messages: hello, stream: true }, U);
    const text = await res.text();
    const lastEvent = text.trim().split("\n\n").at(-1) ?? "";
    expect(JSON.parse(lastEvent.replace(/^data: /, ""))).toEqual({
      id: res.headers.get("x-generation-id"),
      object: "chat.completion.chunk",
      created: expect.any(Number),
      model: "openai/gpt-4o-mini",
      choices: [{ index: 0, delta: { content: "" }, finish_reason: "error" }],
      error: {
        code: "upstream",
        message: "The model provider's stream was interrupted.",
        metadata: { error_type: "provider_unavailable" },
      },
    });
    expect(res.headers.get("x-generation-id")).toMatch(/^gen-/);
    await expectExact(key);
  });

  it("ends a stream whose upstream falls silent past the read timeout with the mid-stream error chunk, error_type timeout", async () => {
    const key = await start({ env: { WATTFARE_UPSTREAM_READ_TIMEOUT_MS: "300" } });
    h.sim.control.setFaults({ hangAfterChunks: 3 });
    const res = await h.post({ model: "openai/gpt-4o-mini", messages: hello, stream: true }, U);
    const text = await res.text();
    const last = JSON.parse((text.trim().split("\n\n").at(-1) ?? "").replace(/^data: /, ""));
    expect(last.choices).toEqual([{ index: 0, delta: { content: "" }, finish_reason: "error" }]);
    expect(last.error).toMatchObject({ code: "upstream", metadata: { error_type: "timeout" } });
    h.sim.control.setFaults({});
    await expectExact(key);
  });
});

describe("client aborts", () => {
  it("aborts the upstream when the client leaves mid-stream and bills only what was produced", async () => {
    const key = await start({ sim: { interTokenMs: 20, responseTokens: 200 } });
    const controller = new AbortController();
    const res = await abortable({ model: "openai/gpt-4o-mini", messages: hello, stream: true }, controller);
    await readAndAbort(res, controller, 2);
    await expectExact(key);
    const [generation] = h.sim.control.generations(key);
    expect(generation?.cancelled).toBe(true);
    expect(generation?.completionTokens).toBeLessThan(200);
  });

  it("stops the upstream stream when its generation id cannot be written, and still ends the reservation", async () => {
    await start({ sim: { interTokenMs: 20, responseTokens: 200 } });
    let generationId = "";
    h.store.recordGenerationId = (_reservationId, id) => {
      generationId = id;
      return Promise.reject(new Error("disk full"));
    };
    const res = await h.post({ model: "openai/gpt-4o-mini", messages: hello, stream: true }, U);
    expect(res.status).toBe(500);
    await h.drain();
    await h.reconcile();
    expect(await h.openReservations()).toBe(0);
    // No durable generation id, so nothing to ask /generation about: charged at the reservation, flagged.
    const [entry] = await h.store.ledger();
    expect(entry?.unreconciled).toBe(true);
    // The upstream was stopped, not left paused on its connection until a timeout.
    expect((await h.sim.control.waitForGeneration(generationId)).cancelled).toBe(true);
  });

  it("meters the full response of a non-cancellable model after an abort", async () => {
    const key = await start({ sim: { interTokenMs: 5, responseTokens: 60 } });
    const controller = new AbortController();
    const res = await abortable(
      { model: "wattfare/non-cancellable", messages: hello, stream: true },
      controller,
    );
    await readAndAbort(res, controller, 1);
    // The provider cannot be stopped: its record appears once it has finished (in real time here, while
    // the reconciler's clock is the test's).
    await h.sim.control.waitForGeneration(res.headers.get("x-generation-id") ?? "");
    await expectExact(key);
    expect(h.sim.control.generations(key)[0]?.completionTokens).toBe(60);
  });

  it("never settles from a usage object nested in an echoed request (debug), but asks /generation", async () => {
    const key = await start({ sim: { interTokenMs: 5, responseTokens: 60 } });
    const controller = new AbortController();
    const tools = [
      {
        type: "function",
        function: {
          name: "meter",
          parameters: { type: "object", properties: { usage: { cost: 0 } } },
        },
      },
    ];
    const res = await abortable(
      {
        model: "wattfare/non-cancellable",
        messages: hello,
        stream: true,
        tools,
        debug: { echo_upstream_body: true },
      },
      controller,
    );
    expect(await readAndAbort(res, controller, 1)).toContain('"echo_upstream_body"');
    await h.sim.control.waitForGeneration(res.headers.get("x-generation-id") ?? "");
    await expectExact(key);
    expect(await h.ledgerTotal()).toBeGreaterThan(0n);
  });

  it("meters a non-stream request in full when its client leaves early", async () => {
    const key = await start({ sim: { ttftMs: 150 } });
    const controller = new AbortController();
    const res = fetch(`${h.url}/api/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${h.secretKey}`, "content-type": "application/json", ...U },
      body: JSON.stringify({ model: "openai/gpt-4o-mini", messages: hello }),
      signal: controller.signal,
    }).catch(() => undefined);
    // Leave once the simulator has the request (it answers only after ttftMs).
    while (h.sim.control.requests().length === 0) await new Promise((r) => setTimeout(r, 1));
    controller.abort();
    await res;
    await expectExact(key);
    expect(h.sim.control.generations(key)[0]?.completionTokens).toBe(20);
  });
});

describe("a full upstream pool", () => {
  /** One upstream connection, held by alice's long stream A until the test aborts it. */
  async function poolHeldByStream(env: Record<string, string> = {}) {
    const key = await start({
      sim: { interTokenMs: 50, responseTokens: 1000 },
      env: { WATTFARE_UPSTREAM_CONNECTIONS: "1", ...env },
    });
    const a = new AbortController();
    const stream = await abortable({ model: "openai/gpt-4o-mini", messages: hello, stream: true }, a);
    expect(stream.status).toBe(200);
    return { key, a };
  }

  it("never sends a request whose client left while it waited for a connection, and releases it at once", async () => {
    // No queue timeout to fall back on: only the client's leaving can end B's wait.
    const { key, a } = await poolHeldByStream({ WATTFARE_UPSTREAM_QUEUE_TIMEOUT_MS: "3600000" });
    const b = new AbortController();
    const queued = abortable({ model: "openai/gpt-4o-mini", messages: hello }, b).catch(() => undefined);
    while ((await h.openReservations()) < 2) await new Promise((resolve) => setTimeout(resolve, 1));
    b.abort();
    await queued;
    while ((await h.openReservations()) > 1) await new Promise((resolve) => setTimeout(resolve, 1));
    a.abort();
    await h.drain();
    await h.reconcile();
    expect(h.sim.control.requests()).toHaveLength(1); // A only: B was never written
    expect(await h.openReservations()).toBe(0);
    expect(await h.ledgerTotal()).toBe(h.sim.control.billedNano(key));
  });

  it("answers 503 unavailable, never sent and safe to retry, once a request waited past the queue timeout", async () => {
    const { key, a } = await poolHeldByStream({ WATTFARE_UPSTREAM_QUEUE_TIMEOUT_MS: "20" });
    const res = await h.post({ model: "openai/gpt-4o-mini", messages: hello }, U);
    expect(res.status).toBe(503);
    expect(res.headers.get("x-should-retry")).toBe("true");
    expect((await errorOf(res)).code).toBe("unavailable");
    expect(await h.openReservations()).toBe(1); // A's
    a.abort();
    await h.drain();
    await h.reconcile();
    expect(h.sim.control.requests()).toHaveLength(1);
    expect(await h.ledgerTotal()).toBe(h.sim.control.billedNano(key));
  });
});

describe("reconciliation", () => {
  it("keeps asking /generation while it answers 404, then settles the real cost", async () => {
    const key = await start({
      sim: { interTokenMs: 20, responseTokens: 100, generationNotFoundMs: 5 * 60_000 },
    });
    const controller = new AbortController();
    const res = await abortable({ model: "openai/gpt-4o-mini", messages: hello, stream: true }, controller);
    await readAndAbort(res, controller, 2);
    await h.drain();
    await h.app.chat.reconciler.tick();
    expect(await h.openReservations()).toBe(1);
    await expectExact(key);
    expect((await h.store.ledger())[0]?.unreconciled).toBe(false);
  });

  it("settles at the reservation, flagged unreconciled, when /generation never answers before the deadline", async () => {
    await unreconciledCharge(365 * 86_400_000);
    const [entry] = await h.store.ledger();
    expect(entry?.unreconciled).toBe(true);
    expect(await h.openReservations()).toBe(0);
  });

  it("counts the deadline from when the reconciler takes a request over, so a stream longer than the deadline is still settled from /generation", async () => {
    const key = await start({
      sim: { interTokenMs: 20, responseTokens: 100, generationNotFoundMs: 5 * 60_000 },
    });
    const controller = new AbortController();
    const res = await abortable({ model: "openai/gpt-4o-mini", messages: hello, stream: true }, controller);
    h.clock.advance(20 * 60_000); // the stream has run for 20 minutes when its client leaves
    await readAndAbort(res, controller, 2);
    await h.drain();
    await h.reconcile(); // its record appears 5 minutes after the stream ended
    expect((await h.store.ledger()).map((e) => e.unreconciled)).toEqual([false]);
    await expectExact(key);
  });

  it("adjusts an unreconciled charge to the real cost when /generation answers within 7 days", async () => {
    const key = await unreconciledCharge();
    const charged = await h.ledgerTotal();
    expect(charged).toBeGreaterThan(h.sim.control.billedNano(key));
    await h.app.chat.reconciler.recheckUnreconciled(); // still 404: nothing changes
    expect(await h.ledgerTotal()).toBe(charged);
    h.clock.advance(4 * 3_600_000);
    await h.app.chat.reconciler.recheckUnreconciled();
    await h.app.chat.reconciler.recheckUnreconciled(); // idempotent
    expect(await h.ledgerTotal()).toBe(h.sim.control.billedNano(key));
    expect((await h.store.ledger()).map((e) => e.kind)).toEqual(["settle", "adjust"]);
    const status = (await (
      await fetch(`${h.url}/api/v1/status?appUserId=alice`, {
        headers: { authorization: `Bearer ${h.secretKey}` },
      })
    ).json()) as { usage: { monthlyUsd: number } };
    expect(status.usage.monthlyUsd).toBeLessThan(0.001);
  });
});

describe("a replaced or removed funding key", () => {
  /** Alice's unreconciled charge (aborted, /generation silent for 3 h), then her payer's key replaced or removed. */
  async function chargedThen(change: "replaced" | "removed"): Promise<{ key: string; oldFundingId: string }> {
    const key = await unreconciledCharge();
    expect((await h.store.ledger()).map((e) => e.unreconciled)).toEqual([true]);
    const account = await h.store.chatAccount(h.appId, "alice");
    const oldFundingId = account?.funding?.id ?? "";
    if (change === "removed") {
      await h.store.replacePayerFunding(account?.connection.payerId ?? "", null, h.clock.now());
      return { key, oldFundingId };
    }
    const { encryptFundingKey } = await import("../../security/index.js");
    const newKey = h.sim.control.createKey();
    await h.store.replacePayerFunding(
      account?.connection.payerId ?? "",
      {
        id: "fnd_replacement01",
        keyBlob: encryptFundingKey(h.deps.keyRing, newKey, "fnd_replacement01"),
        fingerprint: "sk-or-v1-…new",
        openRouterKeyHash: "new",
        source: "pasted",
        state: "ok",
        limitRemainingNano: null,
        checkedAt: h.clock.now(),
      },
      h.clock.now(),
    );
    return { key, oldFundingId };
  }

  it("still corrects an unreconciled charge it paid, then is erased once nothing can need it", async () => {
    const { key, oldFundingId } = await chargedThen("replaced");
    h.clock.advance(4 * 3_600_000);
    await h.app.chat.reconciler.recheckUnreconciled();
    expect(await h.ledgerTotal()).toBe(h.sim.control.billedNano(key));
    // Adjusted: the re-check needs the key no more, and erases it.
    expect((await h.store.getFunding(oldFundingId))?.keyBlob).toBe("erased");
  });

  it("is kept while its charge may still be corrected, and erased when the 7-day re-check window closes", async () => {
    const { oldFundingId } = await chargedThen("replaced");
    await h.app.chat.reconciler.recheckUnreconciled(); // still 404
    expect((await h.store.getFunding(oldFundingId))?.keyBlob).not.toBe("erased");
    h.clock.advance(7 * 86_400_000);
    await h.app.chat.reconciler.recheckUnreconciled();
    expect((await h.store.getFunding(oldFundingId))?.keyBlob).toBe("erased");
  });

  it("is kept only while a request it pays for runs when the payer removes it, never for the re-check", async () => {
    await start({ sim: { interTokenMs: 20, responseTokens: 100, generationNotFoundMs: 3 * 3_600_000 } });
    const account = await h.store.chatAccount(h.appId, "alice");
    const fundingId = account?.funding?.id ?? "";
    const controller = new AbortController();
    const res = await abortable(
      { model: "openai/gpt-4o-mini", messages: hello, stream: true, max_tokens: 500 },
      controller,
    );
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    await h.store.replacePayerFunding(account?.connection.payerId ?? "", null, h.clock.now());
    expect((await h.store.getFunding(fundingId))?.keyBlob).not.toBe("erased"); // the stream still needs it
    controller.abort();
    await reader.cancel().catch(() => undefined);
    await h.drain();
    await h.reconcile(); // charged at the reservation, unreconciled
    expect((await h.store.ledger()).map((e) => e.unreconciled)).toEqual([true]);
    await h.app.chat.reconciler.recheckUnreconciled();
    expect((await h.store.getFunding(fundingId))?.keyBlob).toBe("erased");
  });

  it("is erased at once when the payer removes it rather than replacing it, charge or not", async () => {
    const { oldFundingId } = await chargedThen("removed");
    expect((await h.store.getFunding(oldFundingId))?.keyBlob).toBe("erased");
  });
});

describe("BYOK", () => {
  it("meters cost plus the upstream inference cost for a bring-your-own-key payer", async () => {
    h = await createChatHarness();
    const key = await h.connect("alice", 5, { byok: true });
    const res = await h.post({ model: "openai/gpt-4o-mini", messages: hello, stream: true }, U);
    await res.text();
    await expectExact(key);
    const [generation] = h.sim.control.generations(key);
    expect(generation?.isByok).toBe(true);
    expect(await h.ledgerTotal()).toBe((generation?.costNano ?? 0n) + (generation?.upstreamCostNano ?? 0n));
  });

  it("charges the reservation, flagged, never the 5 % fee alone, when the provider's cost is not reported", async () => {
    await start();
    const key = await h.connect("bob", 5, { byok: true });
    h.sim.control.setFaults({ byokUpstreamCostNull: true });
    const res = await h.post({ model: "openai/gpt-4o-mini", messages: hello }, { "x-wattfare-user": "bob" });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    await h.drain();
    await h.reconcile();
    expect(await h.openReservations()).toBe(0);
    const [entry] = await h.store.ledger();
    expect(entry?.unreconciled).toBe(true);
    // The payer really paid fee + provider; the reservation bounds both.
    expect(entry?.amountNano).toBeGreaterThanOrEqual(h.sim.control.billedNano(key));
  });
});

describe("the funding key's cached limit", () => {
  it("refuses on a cached key limit, then re-reads it once 30 s old and admits when it was reset", async () => {
    await start();
    await h.connect("bob", 5, { limit: 1 }); // the key's real limit: $1 left
    const fundingId = (await h.store.chatAccount(h.appId, "bob"))?.funding?.id ?? "";
    // What Wattfare last read of the key: nearly spent, as just before a daily reset.
    await h.store.setFundingState(fundingId, "ok", 1n, h.clock.now());
    const ask = () => h.post({ model: "openai/gpt-4o-mini", messages: hello }, { "x-wattfare-user": "bob" });

    const refused = await ask();
    expect(refused.status).toBe(402);
    expect((await errorOf(refused)).code).toBe("funding_invalid");
    expect((await h.store.getFunding(fundingId))?.limitRemainingNano).toBe(1n); // not re-read yet

    h.clock.advance(30_000);
    const admitted = await ask();
    expect(admitted.status).toBe(200);
    await admitted.arrayBuffer();
    expect((await h.store.getFunding(fundingId))?.limitRemainingNano).toBe(1_000_000_000n);
    await h.drain();
    expect(await h.openReservations()).toBe(0);
  });

  it("takes what the key spent through Wattfare off its cached limit, so a request is sized to what is left instead of meeting the upstream's 402", async () => {
    await start();
    const key = await h.connect("bob", 5, { limit: 1.2 });
    const fundingId = (await h.store.chatAccount(h.appId, "bob"))?.funding?.id ?? "";
    await h.store.setFundingState(fundingId, "ok", 1_200_000_000n, h.clock.now()); // as read at connect
    const ask = async (body: Record<string, unknown>) => {
      const res = await h.post(
        { model: "wattfare/expensive", messages: hello, ...body },
        { "x-wattfare-user": "bob" },
      );
      await res.arrayBuffer();
      return res.status;
    };
    for (let i = 0; i < 5; i++) expect(await ask({ max_tokens: 16 })).toBe(200);
    await h.drain();
    // No max_tokens: Wattfare sets what the key has left, not what it had when last read.
    expect(await ask({})).toBe(200);
    expect(await h.store.getFunding(fundingId)).toMatchObject({
      state: "ok",
      limitRemainingNano: 1_200_000_000n,
    });
    await h.drain();
    await expectExact(key);
  });

  it("never admits concurrent requests whose bounds together exceed the key's cached limit", async () => {
    await start();
    const key = await h.connect("bob", 50, { limit: 1 });
    const fundingId = (await h.store.chatAccount(h.appId, "bob"))?.funding?.id ?? "";
    await h.store.setFundingState(fundingId, "ok", 1_000_000_000n, h.clock.now());
    const statuses = await Promise.all(
      Array.from({ length: 10 }, async () => {
        const res = await h.post(
          { model: "wattfare/expensive", messages: hello, max_tokens: 16 },
          { "x-wattfare-user": "bob" },
        );
        await res.arrayBuffer();
        return res.status;
      }),
    );
    await h.drain();
    // Each bound is ≈ $0.2, so not all ten fit in $1: the rest are refused here, never sent upstream to
    // meet its 402 (which would mark the key insufficient).
    const admitted = statuses.filter((s) => s === 200).length;
    expect(admitted).toBeGreaterThan(0);
    expect(statuses.filter((s) => s === 402)).toHaveLength(10 - admitted);
    expect(h.sim.control.requests()).toHaveLength(admitted);
    expect(await h.store.getFunding(fundingId)).toMatchObject({ state: "ok" });
    await expectExact(key);
  });

  it("refuses a key over its daily limit until the simulator's day turns, then re-reads /key and admits", async () => {
    await start();
    h.clock.ms = Date.UTC(2026, 6, 2, 23, 59, 0);
    const key = await h.connect("bob", 5, { limit: 1, limitReset: "daily" });
    const sent = () => h.sim.control.requests().length;
    const ask = async () => {
      const res = await h.post(
        { model: "openai/gpt-4o-mini", messages: hello, max_tokens: 16 },
        { "x-wattfare-user": "bob" },
      );
      if (res.status === 200) await res.arrayBuffer();
      return { status: res.status, error: res.status === 200 ? undefined : await errorOf(res) };
    };
    for (let i = 0; i < 5; i++) expect((await ask()).status).toBe(200);
    // The payer lowers the key's daily limit to what it has already spent today.
    const spent = h.sim.control.keyState(key).usageNano;
    h.sim.control.setLimit(key, Number(spent - 1000n) / 1e9, "daily");

    const overLimit = await ask(); // upstream 403 "Key limit exceeded (daily limit)"
    expect(overLimit).toMatchObject({ status: 402, error: { code: "funding_invalid" } });
    const before = sent();
    expect((await ask()).status).toBe(402); // known insufficient: not sent upstream again
    expect(sent()).toBe(before);

    h.clock.advance(60_000); // 00:00 UTC, and the state is 60 s old: past the 30 s re-check
    expect((await ask()).status).toBe(200);
    const fundingId = (await h.store.chatAccount(h.appId, "bob"))?.funding?.id ?? "";
    expect(await h.store.getFunding(fundingId)).toMatchObject({ state: "ok" });
    await expectExact(key);
  });

  /**
   * Bob's chat request, with `act` run while the proxy's `/key` read is on the network (the read then
   * goes on); checks that nothing was sent upstream or left reserved. Resolves with the response and
   * how many `/key` reads were made.
   */
  const askWhileKeyIsRead = async (act: () => Promise<unknown>) => {
    const get = Upstream.prototype.get;
    const reads = vi.spyOn(Upstream.prototype, "get").mockImplementation(async function (
      this: Upstream,
      ...args
    ) {
      if (args[0] === "/key") await act();
      return get.apply(this, args);
    });
    let res: Response;
    let keyReads: number;
    try {
      res = await h.post({ model: "openai/gpt-4o-mini", messages: hello }, { "x-wattfare-user": "bob" });
      keyReads = reads.mock.calls.filter(([path]) => path === "/key").length;
    } finally {
      reads.mockRestore(); // which forgets the calls
    }
    expect(h.sim.control.requests()).toHaveLength(0);
    expect(await h.openReservations()).toBe(0);
    return { res, keyReads };
  };

  it.each([
    [
      "lowers the cap below the request",
      "budget_exceeded",
      (c: ConnectionRecord) => h.store.lowerCap(c.id, 1000n, h.clock.now()),
    ],
    [
      "pauses all spending",
      "budget_exceeded",
      (c: ConnectionRecord) => h.store.setPayerPaused(c.payerId, true),
    ],
    [
      "revokes the connection",
      "not_connected",
      (_c: ConnectionRecord) => h.store.revokeConnection(h.appId, "bob", h.clock.now()),
    ],
  ])("admits nothing when the payer %s while the key's limit is re-read", async (_what, code, act) => {
    await start();
    await h.connect("bob", 5, { limit: 1 });
    const connection = (await h.store.chatAccount(h.appId, "bob"))?.connection as ConnectionRecord;
    const fundingId = (await h.store.chatAccount(h.appId, "bob"))?.funding?.id ?? "";
    await h.store.setFundingState(fundingId, "ok", 1n, h.clock.now() - 60_000); // stale, refuses
    const { res, keyReads } = await askWhileKeyIsRead(() => act(connection));
    expect(res.status).toBe(402);
    expect((await errorOf(res)).code).toBe(code);
    expect(keyReads).toBe(1);
  });

  it("applies a pause made while an insufficient key is re-checked, before admitting", async () => {
    await start();
    await h.connect("bob", 5);
    const account = await h.store.chatAccount(h.appId, "bob");
    // Marked out of credits a minute ago: this request re-reads /key first (the key has credits again).
    await h.store.setFundingState(
      account?.funding?.id ?? "",
      "insufficient",
      undefined,
      h.clock.now() - 60_000,
    );
    const { res } = await askWhileKeyIsRead(() =>
      h.store.setPayerPaused(account?.connection.payerId ?? "", true),
    );
    expect(res.status).toBe(402);
    expect(await errorOf(res)).toMatchObject({
      code: "budget_exceeded",
      message: "Spending paused by the payer.",
    });
  });

  it("answers 503, safe to retry, when the payer replaces their funding while its key is re-read", async () => {
    await start();
    await h.connect("bob", 5, { limit: 1 });
    const account = await h.store.chatAccount(h.appId, "bob");
    await h.store.setFundingState(account?.funding?.id ?? "", "ok", 1n, h.clock.now() - 60_000);
    const replacement = {
      id: "fnd_next",
      keyBlob: "v1.x.y.z",
      fingerprint: "sk-or-v1-…next",
      openRouterKeyHash: "c".repeat(64),
      source: "pasted" as const,
      state: "ok" as const,
      limitRemainingNano: null,
      checkedAt: h.clock.now(),
    };
    const { res } = await askWhileKeyIsRead(() =>
      h.store.replacePayerFunding(account?.connection.payerId ?? "", replacement, h.clock.now()),
    );
    expect(res.status).toBe(503);
    expect(res.headers.get("x-should-retry")).toBe("true");
    expect((await errorOf(res)).code).toBe("unavailable");
  });

  it("makes one /key read for a burst of requests refused by the same stale limit", async () => {
    await start();
    await h.connect("bob", 5, { limit: 1 });
    const fundingId = (await h.store.chatAccount(h.appId, "bob"))?.funding?.id ?? "";
    await h.store.setFundingState(fundingId, "ok", 1n, h.clock.now() - 60_000);
    const reads = vi.spyOn(Upstream.prototype, "get");
    try {
      const statuses = await Promise.all(
        Array.from({ length: 8 }, async () => {
          const res = await h.post(
            { model: "openai/gpt-4o-mini", messages: hello },
            { "x-wattfare-user": "bob" },
          );
          await res.arrayBuffer();
          return res.status;
        }),
      );
      expect(statuses).toEqual(Array(8).fill(200));
      expect(reads.mock.calls.filter(([path]) => path === "/key")).toHaveLength(1);
    } finally {
      reads.mockRestore();
    }
  });

  it("tells the payer to reconnect when the re-read finds the key rejected", async () => {
    await start();
    await h.connect("bob", 5, { limit: 1 });
    const fundingId = (await h.store.chatAccount(h.appId, "bob"))?.funding?.id ?? "";
    await h.store.setFundingState(fundingId, "ok", 1n, h.clock.now() - 60_000);
    // The key was revoked upstream meanwhile: the simulator has never seen this one.
    const { encryptFundingKey } = await import("../../security/index.js");
    h.store.db
      .prepare("UPDATE funding SET key_blob = ? WHERE id = ?")
      .run(encryptFundingKey(h.deps.keyRing, `sk-or-v1-${"0".repeat(64)}`, fundingId), fundingId);
    const res = await h.post({ model: "openai/gpt-4o-mini", messages: hello }, { "x-wattfare-user": "bob" });
    expect(res.status).toBe(402);
    expect(await errorOf(res)).toMatchObject({
      code: "funding_invalid",
      message: expect.stringMatching(/reconnect/),
    });
    expect((await h.store.getFunding(fundingId))?.state).toBe("invalid");
    expect(await h.openReservations()).toBe(0);
  });
});
