/**
 * Streaming is passthrough: the client receives the upstream's bytes, as they arrive, unchanged, and a
 * slow client slows the upstream instead of growing Wattfare's memory.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import v8 from "node:v8";
import vm from "node:vm";
import OpenAI from "openai";
import { afterEach, describe, expect, it } from "vitest";
import { type ChatHarness, createChatHarness } from "../../testing/chat-harness.js";
import { createHarness, type Harness, postChat } from "../../testing/harness.js";

const CATALOGUE = JSON.stringify({
  data: [
    {
      id: "test/model",
      pricing: { prompt: "0.000001", completion: "0.000002", request: "0", image: "0" },
      top_provider: { context_length: 8192, max_completion_tokens: 4096, is_moderated: false },
    },
    {
      id: "test/long-context",
      pricing: { prompt: "0.0000001", completion: "0.0000002", request: "0", image: "0" },
      top_provider: { context_length: 2_000_000, max_completion_tokens: 4096, is_moderated: false },
    },
  ],
});

/** A scripted upstream: /models plus a chat handler the test provides; closed after the test. */
async function scriptedUpstream(
  chat: (req: http.IncomingMessage, res: http.ServerResponse) => void,
  generationCost?: string,
) {
  const server = http.createServer((req, res) => {
    if (req.url?.split("?")[0]?.endsWith("/models")) {
      res.writeHead(200, { "content-type": "application/json" }).end(CATALOGUE);
      return;
    }
    if (req.url?.includes("/generation?id=") && generationCost !== undefined) {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        `{"data":{"id":"gen-x","total_cost":${generationCost},"is_byok":false,"tokens_prompt":5,"tokens_completion":3}}`,
      );
      return;
    }
    req.resume();
    req.on("end", () => chat(req, res));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  upstreamClose = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return { apiUrl: `http://127.0.0.1:${port}/api/v1` };
}

let h: Harness | undefined;
let ch: ChatHarness | undefined;
let upstreamClose: (() => Promise<void>) | undefined;
afterEach(async () => {
  await h?.close();
  await ch?.close();
  await upstreamClose?.();
  h = undefined;
  ch = undefined;
  upstreamClose = undefined;
});

/** Waits for the proxy's requests to end, then runs reconciler ticks a minute apart until none is pending. */
async function drainAndReconcile(harness: Harness, maxTicks = 20): Promise<void> {
  await harness.app.chat.proxy.drain();
  for (let i = 0; i < maxTicks && harness.app.chat.reconciler.pending > 0; i++) {
    harness.clock.advance(60_000);
    await harness.app.chat.reconciler.tick();
  }
}

async function wattfareIn(front: { apiUrl: string }, env: Record<string, string> = {}) {
  h = await createHarness({ env: { WATTFARE_UPSTREAM_URL: front.apiUrl, ...env } });
  await h.app.listen({ host: "127.0.0.1", port: 0 });
  const url = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
  const { appId, secretKey } = await h.createApp();
  await h.store.devConnect({
    appId,
    appUserId: "alice",
    capNano: 10_000_000_000n,
    payerEmail: "a@example.com",
    funding: {
      id: "fnd_test",
      keyBlob: (await import("../../security/index.js")).encryptFundingKey(
        h.deps.keyRing,
        "sk-or-v1-test",
        "fnd_test",
      ),
      fingerprint: "x",
      source: "dev",
    },
    now: h.clock.now(),
  });
  const post = (body: unknown, signal?: AbortSignal) =>
    postChat(url, secretKey, body, {
      headers: { "x-wattfare-user": "alice" },
      ...(signal ? { signal } : {}),
    });
  return Object.assign(post, { url, secretKey });
}

const usageEvent = `data: {"id":"gen-1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8,"cost":1.1e-7,"is_byok":false}}\n\n`;

/** Writes `chunk` `count` times as fast as the reader takes it, then ends with `closing`. */
function pump(
  res: http.ServerResponse,
  chunk: Buffer,
  count: number,
  closing: string,
  onBlocked: () => void = () => undefined,
): () => number {
  let written = 0;
  const next = () => {
    while (written < count) {
      written++;
      if (!res.write(chunk)) {
        onBlocked();
        res.once("drain", next);
        return;
      }
    }
    res.end(closing);
  };
  next();
  return () => written;
}

/**
 * An upstream answers `opening`, then far more than a client buffers, then `closing`; the client reads
 * once and never again. Wattfare must cut it off after the stall limit, stop the upstream, and reconcile
 * the request from /generation (0.000004 USD), since the answer's own usage never arrived.
 */
async function expectStalledClientCutOffAndReconciled(answer: {
  contentType: string;
  opening: string;
  chunk: Buffer;
  closing: string;
  stream: boolean;
}) {
  let upstreamClosedEarly = false;
  const upstream = await scriptedUpstream((_req, res) => {
    res.writeHead(200, { "content-type": answer.contentType, "x-generation-id": "gen-stall" });
    res.on("close", () => {
      upstreamClosedEarly = !res.writableFinished;
    });
    res.write(answer.opening);
    pump(res, answer.chunk, 2048, answer.closing);
  }, "0.000004");
  const post = await wattfareIn(upstream, { WATTFARE_CLIENT_WRITE_STALL_MS: "100" });
  const res = await post({
    model: "test/model",
    messages: [{ role: "user", content: "hi" }],
    stream: answer.stream,
  });
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  await reader.read(); // then never again
  for (let i = 0; i < 200 && !upstreamClosedEarly; i++) await new Promise((r) => setTimeout(r, 10));
  expect(upstreamClosedEarly).toBe(true);
  const harness = h as Harness;
  await harness.app.chat.proxy.drain();
  harness.clock.advance(60_000);
  await harness.app.chat.reconciler.tick();
  expect((await harness.store.ledger())[0]?.amountNano).toBe(4_000n);
  expect(await harness.store.openReservations()).toHaveLength(0);
  await reader.cancel().catch(() => undefined);
}

describe("an answer Wattfare cannot meter", () => {
  it("still ends its reservation when its generation id cannot be written", async () => {
    const upstream = await scriptedUpstream((_req, res) => {
      res.writeHead(200, { "content-type": "text/html", "x-generation-id": "gen-z" });
      res.end("<html>…</html>");
    }, "0.000011");
    const chat = await wattfareIn(upstream);
    if (h === undefined) throw new Error("no harness");
    h.store.recordGenerationId = () => Promise.reject(new Error("disk full"));
    const res = await chat({ model: "test/model", messages: [{ role: "user", content: "Hi" }] });
    expect(res.status).toBe(500);
    await drainAndReconcile(h);
    expect(await h.store.openReservations()).toEqual([]);
  });

  it.each([
    ["an HTML page, without a generation id", { "content-type": "text/html" }, "<html>login</html>", false],
    [
      "a compressed JSON body with a generation id",
      { "content-type": "application/json", "content-encoding": "gzip", "x-generation-id": "gen-z" },
      "\u001f\u008b…",
      true,
    ],
  ])(
    "answers %s with 502 upstream instead of passing it on",
    async (_name, headers, body, fromOpenRouter) => {
      const upstream = await scriptedUpstream((_req, res) => {
        res.writeHead(200, headers as http.OutgoingHttpHeaders);
        res.end(body);
      }, "0.000011");
      const chat = await wattfareIn(upstream);
      const res = await chat({ model: "test/model", messages: [{ role: "user", content: "Hi" }] });
      expect(res.status).toBe(502);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("upstream");
      // Behind a generation id OpenRouter may have billed: reconciled from /generation, never retried.
      expect(res.headers.get("x-should-retry")).toBe(fromOpenRouter ? "false" : "true");
      await drainAndReconcile(h as Harness);
      const ledger = await h?.store.ledger();
      expect(ledger?.map((e) => e.amountNano)).toEqual(fromOpenRouter ? [11_000n] : []);
      expect(await h?.store.openReservations()).toEqual([]);
    },
  );
});

describe("SSE passthrough", () => {
  it("delivers the upstream's bytes unchanged, however they are split, and meters the usage event", async () => {
    // Comment lines, CRLF, an event split mid-line and mid-UTF-8 character, several events per write.
    const script = [
      ": OPENROUTER PROCESSING\r\n\r\n",
      'data: {"id":"gen-1","choices":[{"index":0,"delta":{"content":"h',
      'é"}}]}\n\ndata: {"id":"gen-1","choices":[{"index":0,"delta":{"content":"ll\\u00f6 ',
      Buffer.from("日本", "utf8").subarray(0, 4),
      Buffer.concat([Buffer.from("日本", "utf8").subarray(4), Buffer.from('"}}]}\n\n: keep-alive\n\n')]),
      usageEvent.slice(0, 40),
      usageEvent.slice(40),
      "data: [DONE]\n\n",
    ].map((p) => (typeof p === "string" ? Buffer.from(p) : p));
    const expected = Buffer.concat(script);
    const upstream = await scriptedUpstream((_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream", "x-generation-id": "gen-1" });
      let i = 0;
      const next = () => {
        const piece = script[i++];
        if (!piece) return res.end();
        res.write(piece);
        setImmediate(next);
      };
      next();
    });
    const post = await wattfareIn(upstream);
    const res = await post({
      model: "test/model",
      messages: [{ role: "user", content: "hi" }],
      stream: true,
    });
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    expect(res.headers.get("x-accel-buffering")).toBe("no");
    expect(res.headers.get("cache-control")).toBe("no-cache");
    expect(res.headers.get("x-generation-id")).toBe("gen-1");
    const received = Buffer.from(await res.arrayBuffer());
    expect(received.equals(expected)).toBe(true);
    await h?.app.chat.proxy.drain();
    const [entry] = await (h as Harness).store.ledger();
    expect(entry?.amountNano).toBe(110n); // 1.1e-7 USD = 110 nano-USD, read from the text, not a float
  });

  it.each([
    [
      "ended with [DONE]",
      'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"cost":1.1e-7}}\n\ndata: [DONE]\n\n',
    ],
    [
      "reported its own mid-stream error",
      'data: {"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}],"error":{"code":502,"message":"Provider disconnected"}}\n\n',
    ],
    [
      // OpenRouter's last data chunk: only `[DONE]` was lost, the answer and its usage are whole.
      "sent its final usage chunk",
      'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"cost":1.1e-7}}\n\n',
    ],
  ])("adds no error event of its own to a stream whose upstream %s before breaking off", async (_, last) => {
    const script = `data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n${last}`;
    const upstream = await scriptedUpstream((_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream", "x-generation-id": "gen-end" });
      // Everything, then the connection breaks before the chunked body's terminator.
      res.write(script, () => setTimeout(() => res.socket?.destroy(), 20));
    }, "0.00000011");
    const post = await wattfareIn(upstream);
    const res = await post({
      model: "test/model",
      messages: [{ role: "user", content: "hi" }],
      stream: true,
    });
    expect(await res.text()).toBe(script);
  });

  describe("broken off between an event's last line and the blank line that ends it", () => {
    /** An upstream that sends `events`, then breaks the connection; Wattfare in front, read by the openai client. */
    async function readWithOpenAI(events: string) {
      const upstream = await scriptedUpstream((_req, res) => {
        res.writeHead(200, { "content-type": "text/event-stream", "x-generation-id": "gen-open" });
        res.write(events, () => setTimeout(() => res.socket?.destroy(), 20));
      }, "0.00000011");
      const post = await wattfareIn(upstream);
      const client = new OpenAI({
        baseURL: `${post.url}/api/v1`,
        apiKey: post.secretKey,
        defaultHeaders: { "x-wattfare-user": "alice" },
        maxRetries: 0,
      });
      const stream = await client.chat.completions.create({
        model: "test/model",
        messages: [{ role: "user", content: "hi" }],
        stream: true,
      });
      const chunks: OpenAI.ChatCompletionChunk[] = [];
      try {
        for await (const chunk of stream) chunks.push(chunk);
        return { chunks, error: undefined };
      } catch (error) {
        return { chunks, error: error as Error };
      }
    }
    const content = 'data: {"id":"gen-open","choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n';

    it("still delivers the final usage chunk whose blank line was lost, as a whole answer", async () => {
      const { chunks, error } = await readWithOpenAI(
        `${content}data: {"id":"gen-open","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"cost":1.1e-7}}\n`,
      );
      expect(error).toBeUndefined();
      expect(chunks.at(-1)?.usage).toMatchObject({ prompt_tokens: 5, completion_tokens: 3 });
    });

    it("delivers the chunk, then Wattfare's interrupted-stream error, not one event made of both", async () => {
      const { chunks, error } = await readWithOpenAI(
        `${content}data: {"id":"gen-open","choices":[{"index":0,"delta":{"content":" there"}}]}\n`,
      );
      expect(chunks.map((c) => c.choices[0]?.delta.content)).toEqual(["Hi", " there"]);
      expect(error?.message).toContain("The model provider's stream was interrupted.");
    });
  });

  it("settles from the usage event even when a later event carries usage: null (OpenAI's chunk shape)", async () => {
    const upstream = await scriptedUpstream((_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream", "x-generation-id": "gen-null" });
      res.end(
        `${usageEvent}data: {"id":"gen-1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}\n\ndata: [DONE]\n\n`,
      );
    }); // no /generation record: a usage lost here would be charged at the whole reservation
    const post = await wattfareIn(upstream);
    const res = await post({
      model: "test/model",
      messages: [{ role: "user", content: "hi" }],
      stream: true,
    });
    await res.text();
    const harness = h as Harness;
    await harness.app.chat.proxy.drain();
    expect(harness.app.chat.reconciler.pending).toBe(0);
    const [entry] = await harness.store.ledger();
    expect(entry?.amountNano).toBe(110n);
    expect(entry?.unreconciled).toBe(false);
  });

  it("lets a slow client hold back the upstream instead of buffering its stream", async () => {
    const chunk = Buffer.from(
      `data: ${JSON.stringify({ choices: [{ delta: { content: "x".repeat(16 * 1024) } }] })}\n\n`,
    );
    let written = () => 0;
    let blocked = false;
    const total = 4096; // 64 MiB if nothing pushed back
    const upstream = await scriptedUpstream((_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream", "x-generation-id": "gen-bp" });
      written = pump(res, chunk, total, usageEvent, () => {
        blocked = true;
      });
    });
    const post = await wattfareIn(upstream);
    const res = await post({
      model: "test/model",
      messages: [{ role: "user", content: "hi" }],
      stream: true,
    });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    // Do not read for a while: give the upstream every chance to push everything.
    for (let i = 0; i < 50; i++) await new Promise((r) => setTimeout(r, 2));
    expect(blocked).toBe(true);
    expect(written() * chunk.length).toBeLessThan(24 * 1024 * 1024);
    let bytes = 0;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      bytes += value.length;
    }
    expect(written()).toBe(total);
    expect(bytes).toBeGreaterThan((total - 10) * chunk.length);
  });
});

describe("memory while answers stream", () => {
  it("holds no copy of a large prompt beyond the one undici sends, for as long as the answer streams", async () => {
    v8.setFlagsFromString("--expose-gc");
    const gc = vm.runInNewContext("gc") as () => void;
    const retained = () => {
      gc();
      gc();
      const m = process.memoryUsage();
      return m.heapUsed + m.external;
    };
    const streams = 16;
    const promptBytes = 512 * 1024;
    const open: http.ServerResponse[] = [];
    const upstream = await scriptedUpstream((_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream", "x-generation-id": `gen-${open.length}` });
      res.write(": OPENROUTER PROCESSING\n\n");
      open.push(res);
    });
    const post = await wattfareIn(upstream);
    // One string for every request, written by node:http (which keeps no copy once it is sent): what
    // grows is Wattfare's.
    const body = JSON.stringify({
      model: "test/long-context",
      stream: true,
      max_tokens: 16,
      messages: [{ role: "user", content: "x".repeat(promptBytes) }],
    });
    const agent = new http.Agent({ keepAlive: true });
    const { port } = new URL(post.url);
    const before = retained();
    const answers = Array.from(
      { length: streams },
      () =>
        new Promise<number>((resolve, reject) => {
          const req = http.request(
            {
              host: "127.0.0.1",
              port,
              method: "POST",
              path: "/api/v1/chat/completions",
              agent,
              headers: {
                authorization: `Bearer ${post.secretKey}`,
                "x-wattfare-user": "alice",
                "content-type": "application/json",
              },
            },
            (res) => {
              res.resume();
              res.on("end", () => resolve(res.statusCode ?? 0));
            },
          );
          req.on("error", reject);
          req.end(body);
        }),
    );
    while (open.length < streams) await new Promise((r) => setTimeout(r, 5));
    const perStream = (retained() - before) / streams;
    for (const res of open) res.end(`${usageEvent}data: [DONE]\n\n`);
    expect(await Promise.all(answers)).toEqual(Array(streams).fill(200));
    agent.destroy();
    // undici keeps the upstream body it writes until the answer ends (one copy); the request's bytes,
    // their parse and the rendered upstream body would each add another.
    expect(perStream).toBeGreaterThan(0);
    expect(perStream).toBeLessThan(1.6 * promptBytes);
  });
});

describe("a client that stops reading", () => {
  it("is cut off mid-stream after the stall limit, the upstream is stopped, and the request is reconciled", async () => {
    await expectStalledClientCutOffAndReconciled({
      contentType: "text/event-stream",
      opening: "",
      chunk: Buffer.from(
        `data: ${JSON.stringify({ choices: [{ delta: { content: "z".repeat(16 * 1024) } }] })}\n\n`,
      ),
      closing: usageEvent,
      stream: true,
    });
  });

  it("is cut off mid-way through a JSON body past the buffer, and the request is reconciled", async () => {
    await expectStalledClientCutOffAndReconciled({
      contentType: "application/json",
      opening: '{"id":"gen-stall","choices":[{"message":{"content":"',
      chunk: Buffer.from("y".repeat(64 * 1024)),
      closing: '"}}]}',
      stream: false,
    });
  });
});

describe("JSON passthrough", () => {
  it("forwards a body larger than the buffer limit in chunks and still meters its usage", async () => {
    const content = "y".repeat(3 * 1024 * 1024);
    const body = JSON.stringify({
      id: "gen-big",
      choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
      usage: {
        prompt_tokens: 5,
        completion_tokens: 3,
        total_tokens: 8,
        cost: 0.000123456789,
        is_byok: false,
      },
    });
    const upstream = await scriptedUpstream((_req, res) => {
      res.writeHead(200, { "content-type": "application/json", "x-generation-id": "gen-big" });
      res.end(body);
    });
    const post = await wattfareIn(upstream);
    const res = await post({ model: "test/model", messages: [{ role: "user", content: "hi" }] });
    expect(res.headers.get("content-length")).toBeNull();
    expect(await res.text()).toBe(body);
    await h?.app.chat.proxy.drain();
    const [entry] = await (h as Harness).store.ledger();
    expect(entry?.amountNano).toBe(123_457n); // rounded up to the nano
  });

  /** A JSON answer of `size` bytes whose usage costs 1,000 nano-USD. */
  const jsonOf = (size: number) => {
    const usage = { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8, cost: 0.000001, is_byok: false };
    const shape = (content: string) =>
      JSON.stringify({ id: "gen-x", choices: [{ message: { content } }], usage });
    return shape("y".repeat(size - shape("").length));
  };

  const readAndSettle = async (post: Awaited<ReturnType<typeof wattfareIn>>, body: string) => {
    const res = await post({ model: "test/model", messages: [{ role: "user", content: "hi" }] });
    expect(res.headers.get("x-accel-buffering")).toBe("no"); // nginx in front must not hold it back
    expect(await res.text()).toBe(body);
    await h?.app.chat.proxy.drain();
    expect((await (h as Harness).store.ledger())[0]?.amountNano).toBe(1_000n);
  };

  it("forwards a body past the buffer whose rest arrives later, after the first part was written", async () => {
    const body = jsonOf(8000);
    const upstream = await scriptedUpstream((_req, res) => {
      res.writeHead(200, { "content-type": "application/json", "x-generation-id": "gen-x" });
      res.write(body.slice(0, 3000));
      setTimeout(() => res.end(body.slice(3000)), 20);
    });
    await readAndSettle(await wattfareIn(upstream, { WATTFARE_NONSTREAM_BUFFER_BYTES: "1024" }), body);
  });

  it("forwards a body past the buffer that arrived whole, ended before the rest was forwarded", async () => {
    const body = jsonOf(4000);
    const upstream = await scriptedUpstream((_req, res) => {
      res.writeHead(200, { "content-type": "application/json", "x-generation-id": "gen-x" });
      res.end(body);
    });
    await readAndSettle(await wattfareIn(upstream, { WATTFARE_NONSTREAM_BUFFER_BYTES: "1024" }), body);
  });

  it("sends a small body in one write with its content-length", async () => {
    ch = await createChatHarness();
    await ch.connect("alice", 1);
    const res = await ch.post(
      { model: "openai/gpt-4o-mini", messages: [{ role: "user", content: "hi" }] },
      { "x-wattfare-user": "alice" },
    );
    const text = await res.text();
    expect(res.headers.get("content-length")).toBe(String(Buffer.byteLength(text)));
    expect(res.headers.get("x-accel-buffering")).toBeNull(); // sent whole: nothing for a proxy to hold back
  });
});

describe("JSON responses that cannot be settled from their body", () => {
  it("reconciles a JSON response the client abandoned mid-body from /generation, not at the bound", async () => {
    let finish: (() => void) | undefined;
    const upstream = await scriptedUpstream((_req, res) => {
      // OpenRouter sends headers (and blank lines) early for slow non-stream requests.
      res.writeHead(200, { "content-type": "application/json", "x-generation-id": "gen-slow" });
      res.write("\n");
      finish = () => res.end('{"id":"gen-slow","choices":[],"usage":{"cost":0.00001}}');
    }, "0.00001");
    const post = await wattfareIn(upstream);
    const controller = new AbortController();
    const res = post({ model: "test/model", messages: [{ role: "user", content: "hi" }] }, controller.signal);
    while (finish === undefined) await new Promise((r) => setTimeout(r, 1));
    controller.abort();
    await res.catch(() => undefined);
    finish();
    const harness = h as Harness;
    await drainAndReconcile(harness, 50);
    const [entry] = await harness.store.ledger();
    expect(entry?.amountNano).toBe(10_000n);
    expect(entry?.unreconciled).toBe(false);
    expect(await harness.store.openReservations()).toHaveLength(0);
  });

  it("does not trust an unreadable cost (a negative one) and asks /generation instead", async () => {
    const upstream = await scriptedUpstream((_req, res) => {
      res.writeHead(200, { "content-type": "application/json", "x-generation-id": "gen-neg" });
      res.end('{"id":"gen-neg","choices":[],"usage":{"cost":-0.001}}');
    }, "0.000002");
    const post = await wattfareIn(upstream);
    const res = await post({ model: "test/model", messages: [{ role: "user", content: "hi" }] });
    expect(res.status).toBe(200);
    await res.text();
    const harness = h as Harness;
    await harness.app.chat.proxy.drain();
    harness.clock.advance(60_000);
    await harness.app.chat.reconciler.tick();
    expect((await harness.store.ledger())[0]?.amountNano).toBe(2_000n);
    expect(await harness.store.openReservations()).toHaveLength(0);
  });
});

describe("latency", () => {
  it("delivers the first chunk while the upstream is still generating", async () => {
    ch = await createChatHarness({ sim: { interTokenMs: 40, responseTokens: 25 } });
    const key = await ch.connect("alice", 1);
    const res = await ch.post(
      { model: "openai/gpt-4o-mini", messages: [{ role: "user", content: "hi" }], stream: true },
      { "x-wattfare-user": "alice" },
    );
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let seen = "";
    while (!seen.includes('"content"')) {
      const { value, done } = await reader.read();
      if (done) throw new Error("stream ended before any content");
      seen += decoder.decode(value);
    }
    // The simulator records a generation only when it ends: none yet means it is still generating.
    expect(ch.sim.control.generations(key)).toHaveLength(0);
    while (!(await reader.read()).done) {
      /* drain */
    }
    expect(ch.sim.control.generations(key)).toHaveLength(1);
  });

  describe("a non-stream answer the model is still generating", () => {
    const ask = { model: "openai/gpt-4o-mini", messages: [{ role: "user" as const, content: "hi" }] };

    const scripted = { model: "test/model", messages: [{ role: "user", content: "hi" }] };
    const decode = (read: { value?: Uint8Array | undefined }) => new TextDecoder().decode(read.value);

    it("gets its headers before any body byte, then the upstream's blank lines and its JSON as each arrives, and is metered", async () => {
      let send: ((text: string, end: boolean) => void) | undefined;
      const upstream = await scriptedUpstream((_req, res) => {
        res.writeHead(200, { "content-type": "application/json", "x-generation-id": "gen-slow" });
        res.flushHeaders();
        send = (text, end) => (end ? res.end(text) : res.write(text));
      });
      const post = await wattfareIn(upstream);
      const res = await post(scripted); // resolves only once Wattfare has sent its headers on their own
      expect(res.status).toBe(200);
      expect(res.headers.get("x-generation-id")).toBe("gen-slow");
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      send?.("\n\n", false);
      expect(decode(await reader.read())).toBe("\n\n");
      send?.('{"id":"gen-slow","choices":[],"usage":{"cost":0.00001}}', true);
      let rest = "";
      for (let read = await reader.read(); !read.done; read = await reader.read()) rest += decode(read);
      expect(JSON.parse(rest)).toMatchObject({ usage: { cost: 0.00001 } });
      await h?.app.chat.proxy.drain();
      expect((await (h as Harness).store.ledger())[0]?.amountNano).toBe(10_000n);
    });

    it("is cut off, with no error appended to half its JSON, when the upstream breaks off mid-JSON, and is reconciled", async () => {
      const upstream = await scriptedUpstream((_req, res) => {
        res.writeHead(200, { "content-type": "application/json", "x-generation-id": "gen-broken" });
        res.write('\n{"id":"gen-broken","choi', () => setTimeout(() => res.socket?.destroy(), 20));
      }, "0.00001");
      const post = await wattfareIn(upstream);
      const res = await post(scripted);
      expect(res.status).toBe(200);
      await expect(res.text()).rejects.toThrow();
      const harness = h as Harness;
      await drainAndReconcile(harness, 50);
      expect((await harness.store.ledger())[0]).toMatchObject({ amountNano: 10_000n, unreconciled: false });
    });

    it("is delivered whole and settled from its usage, not cut off, when the upstream breaks off after the whole JSON", async () => {
      const body = '{"id":"gen-whole","choices":[],"usage":{"cost":0.00001}}';
      const upstream = await scriptedUpstream((_req, res) => {
        res.writeHead(200, { "content-type": "application/json", "x-generation-id": "gen-whole" });
        res.write("\n");
        // Only the chunked body's terminator is lost: an OpenAI client would fail (and retry) a whole answer.
        setTimeout(() => res.write(body, () => setTimeout(() => res.socket?.destroy(), 20)), 20);
      }); // no /generation record: the cost can only come from the body
      const post = await wattfareIn(upstream);
      const res = await post(scripted);
      expect(JSON.parse(await res.text())).toMatchObject({ usage: { cost: 0.00001 } });
      const harness = h as Harness;
      await harness.app.chat.proxy.drain();
      expect(harness.app.chat.reconciler.pending).toBe(0);
      expect((await harness.store.ledger())[0]).toMatchObject({ amountNano: 10_000n, unreconciled: false });
    });

    it("does not run out the official openai client's timeout, which counts until the headers", async () => {
      ch = await createChatHarness({ sim: { ttftMs: 2_500, nonStreamBlankLines: 1 } });
      const key = await ch.connect("alice", 1);
      const client = new OpenAI({
        baseURL: `${ch.url}/api/v1`,
        apiKey: ch.secretKey,
        defaultHeaders: { "x-wattfare-user": "alice" },
        timeout: 1_200,
        maxRetries: 0,
      });
      const completion = await client.chat.completions.create(ask);
      expect(completion.choices[0]?.finish_reason).toBe("stop");
      await ch.drain();
      expect(await ch.ledgerTotal()).toBe(ch.sim.control.billedNano(key));
    });

    it("ends with the error envelope, status 200 already sent, when the upstream breaks off before any JSON, and is reconciled", async () => {
      ch = await createChatHarness({ sim: { ttftMs: 100, interTokenMs: 10, nonStreamBlankLines: 1 } });
      const key = await ch.connect("alice", 1);
      ch.sim.control.setFaults({ resetAfterChunks: 3 });
      const res = await ch.post(ask, { "x-wattfare-user": "alice" });
      expect(res.status).toBe(200);
      expect(JSON.parse(await res.text())).toEqual({
        error: {
          code: "upstream",
          message: "The model provider's response was interrupted.",
          type: "api_error",
        },
      });
      await ch.drain();
      await ch.reconcile();
      expect(await ch.openReservations()).toBe(0);
      expect(await ch.ledgerTotal()).toBe(ch.sim.control.billedNano(key));
    });
  });
});
