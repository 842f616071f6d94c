/**
 * UpstreamResponse against a real undici Pool and real node:http servers on both sides: the upstream
 * it reads from and, for `forwardTo`, the client-facing response it writes to.
 */
import { EventEmitter, once } from "node:events";
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { type Dispatcher, Pool } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { PoolQueue } from "./pool-queue.js";
import { NOT_SENT, QUEUE_TIMEOUT, UpstreamResponse } from "./upstream-response.js";

const servers: http.Server[] = [];
const pools: Pool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.destroy()));
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    server.close();
  }
});

/** Connections the upstream servers accepted. */
let accepted = 0;

async function serve(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  server.on("connection", () => {
    accepted++;
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function send(upstream: (req: http.IncomingMessage, res: http.ServerResponse) => void) {
  const pool = new Pool(await serve(upstream));
  pools.push(pool);
  return UpstreamResponse.send(pool, { method: "POST", path: "/chat", body: "{}" }, roomy()).ready;
}

/** A queue that never makes a request wait. */
const roomy = () => new PoolQueue(10, 60_000);

/** Resolves when the socket closes, however it ends (an aborted upstream resets it). */
const closed = (socket: Socket) => new Promise((resolve) => socket.once("close", resolve));

const text = (chunks: Buffer[]) => Buffer.concat(chunks).toString("utf8");

describe("UpstreamResponse", () => {
  it("resolves at the headers and hands a small body whole to readUpTo", async () => {
    const response = await send((_req, res) => {
      res.writeHead(200, { "content-type": "application/json", "x-generation-id": "gen-1" });
      res.end('{"ok":true}');
    });
    expect(response.statusCode).toBe(200);
    expect(response.headers["x-generation-id"]).toBe("gen-1");
    const head = await response.readUpTo(1024);
    expect(head.ended).toBe(true);
    expect(text(head.chunks)).toBe('{"ok":true}');
  });

  it("ignores an informational 1xx answer and resolves with the final status", async () => {
    const response = await send((_req, res) => {
      res.writeEarlyHints({ link: "</style.css>; rel=preload" });
      res.writeHead(201, { "content-type": "text/plain" });
      res.end("made");
    });
    expect(response.statusCode).toBe(201);
    expect(text((await response.readUpTo(1024)).chunks)).toBe("made");
  });

  it("rejects with the connection's error code when nothing listens", async () => {
    const closed = await serve(() => undefined);
    const server = servers.pop() as http.Server;
    await new Promise((resolve) => server.close(resolve));
    const pool = new Pool(closed);
    pools.push(pool);
    await expect(
      UpstreamResponse.send(pool, { method: "POST", path: "/chat", body: "{}" }, roomy()).ready,
    ).rejects.toMatchObject({
      code: "ECONNREFUSED",
    });
  });

  describe("a request waiting for a pool connection", () => {
    /**
     * A one-connection pool and queue (queue timeout `queueTimeoutMs`) whose connection is held by a
     * first request until `release()`; the upstream answers that one with `reply`.
     */
    async function fullPool(queueTimeoutMs = 60_000, reply = "done") {
      const bodies: string[] = [];
      let release!: () => void;
      const held = new Promise<void>((resolve) => {
        release = resolve;
      });
      const url = await serve((req, res) => {
        let body = "";
        req.on("data", (chunk: Buffer) => {
          body += chunk.toString();
        });
        req.on("end", () => {
          bodies.push(body);
          if (body === "first") {
            res.writeHead(200);
            res.write(reply.slice(0, 1));
            void held.then(() => res.end(reply.slice(1)));
          } else res.end("done");
        });
      });
      const pool = new Pool(url, { connections: 1 });
      pools.push(pool);
      const queue = new PoolQueue(1, queueTimeoutMs);
      const post = (body: string) =>
        UpstreamResponse.send(pool, { method: "POST", path: "/chat", body }, queue);
      accepted = 0;
      const first = post("first");
      while (bodies.length === 0) await new Promise((resolve) => setTimeout(resolve, 1));
      return { post, bodies, release, first, queue };
    }

    it.each([
      ["once discarded, its ready rejecting at once as not sent", 60_000, NOT_SENT],
      ["once it has waited longer than the queue timeout", 20, QUEUE_TIMEOUT],
    ])(
      "is never written %s, and the warm connection serves the next one",
      async (_name, queueTimeoutMs, code) => {
        const { post, bodies, release, first } = await fullPool(queueTimeoutMs);
        const second = post("second");
        if (code === NOT_SENT) second.discard();
        await expect(second.ready).rejects.toMatchObject({ code });
        release();
        await (await first.ready).readText(1024, 60_000);
        const third = await post("third").ready;
        await third.readText(1024, 60_000);
        expect(bodies).toEqual(["first", "third"]);
        expect(accepted).toBe(1);
      },
    );

    it("is not awaiting headers while its connection still opens, and a discard then keeps it from being written", async () => {
      // A dispatcher that takes the request and begins it only when told (as undici does once connected).
      let handler: Dispatcher.DispatchHandler | undefined;
      const connecting = {
        dispatch: (_options: unknown, taken: Dispatcher.DispatchHandler) => {
          handler = taken;
          return true;
        },
      };
      const response = UpstreamResponse.send(
        connecting as unknown as Dispatcher,
        { method: "POST", path: "/chat", body: "{}" },
        roomy(),
      );
      expect(handler).toBe(response);
      expect(response.awaitingHeaders).toBe(false);
      response.discard();
      let aborted: Error | undefined;
      const controller = {
        abort: (reason: Error) => {
          aborted = reason;
          handler?.onResponseError?.(controller as never, reason);
        },
      };
      handler?.onRequestStart?.(controller as never, {});
      expect(aborted).toMatchObject({ code: NOT_SENT });
      await expect(response.ready).rejects.toMatchObject({ code: NOT_SENT });
    });

    it("starts in arrival order as the connection comes free, each once", async () => {
      const { post, bodies, release, first, queue } = await fullPool();
      const waiting = ["second", "third", "fourth"].map((body) => post(body));
      expect(queue.stats).toEqual({ busy: 1, waiting: 3 });
      release();
      await (await first.ready).readText(1024, 60_000);
      for (const response of waiting) await (await response.ready).readText(1024, 60_000);
      expect(bodies).toEqual(["first", "second", "third", "fourth"]);
      expect(queue.stats).toEqual({ busy: 0, waiting: 0 });
    });

    it("starts when the response holding the connection is discarded part-way", async () => {
      const { post, bodies, first, queue } = await fullPool(60_000, "a long answer");
      const second = post("second");
      const head = await first.ready;
      head.discard();
      expect(await (await second.ready).readText(1024, 60_000)).toBe("done");
      expect(bodies).toEqual(["first", "second"]);
      expect(queue.stats).toEqual({ busy: 0, waiting: 0 });
    });
  });

  it("keeps what arrived before a reader and delivers it, in order, to the reader that comes later", async () => {
    const parts = Array.from({ length: 40 }, (_, i) => `${String(i).padStart(4, "0")}${"x".repeat(4096)}`);
    const response = await send((_req, res) => {
      res.writeHead(200);
      for (const part of parts) res.write(part);
      res.end();
    });
    // Let the whole body arrive (and past 64 KiB, pause the upstream) before anyone reads.
    await new Promise((resolve) => setImmediate(resolve));
    const head = await response.readUpTo(10 * 1024 * 1024);
    expect(head.ended).toBe(true);
    expect(text(head.chunks)).toBe(parts.join(""));
  });

  it("hands over past its limit: readUpTo gives the head and forwardTo the rest, byte for byte", async () => {
    const body = Array.from({ length: 300 }, (_, i) => `line ${i} ${"y".repeat(1000)}\n`).join("");
    const response = await send((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      // In pieces, so the limit falls part-way through what has arrived.
      let at = 0;
      const next = () => {
        if (at >= body.length) {
          res.end();
          return;
        }
        res.write(body.slice(at, at + 20_000), next);
        at += 20_000;
      };
      next();
    });
    const head = await response.readUpTo(50_000);
    expect(head.ended).toBe(false);
    expect(text(head.chunks).length).toBeGreaterThan(50_000);

    const seen: Buffer[] = [];
    const front = await serve((_req, res) => {
      res.writeHead(200);
      res.write(Buffer.concat(head.chunks));
      void response.forwardTo(res, 5_000, (chunk) => seen.push(chunk)).then(() => res.end());
    });
    const received = await (await fetch(front)).text();
    expect(received).toBe(body);
    expect(text(head.chunks) + text(seen)).toBe(body);
  });

  it("stays paused when the client fills up while held chunks are handed over, and goes on at each drain", async () => {
    const body = "w".repeat(400_000);
    const response = await send((_req, res) => {
      res.writeHead(200);
      res.end(body);
    });
    // Nobody reads yet: past 64 KiB the upstream is paused with the chunks held.
    while (!response.paused) await new Promise((resolve) => setImmediate(resolve));
    // A client whose buffer is always full: every write asks the writer to wait for 'drain'.
    const written: Buffer[] = [];
    const client = Object.assign(new EventEmitter(), {
      destroyed: false,
      writableNeedDrain: false,
      write: (chunk: Buffer) => written.push(chunk) < 0,
      destroy: () => undefined,
    });
    let finished = false;
    const forwarded = response
      .forwardTo(client as unknown as http.ServerResponse, 60_000, () => undefined)
      .then(() => {
        finished = true;
      });
    expect(written.length).toBeGreaterThan(0);
    expect(response.paused).toBe(true);
    while (!finished) {
      client.emit("drain");
      await new Promise((resolve) => setImmediate(resolve));
    }
    await forwarded;
    expect(text(written)).toBe(body);
  });

  it("holds the upstream back while the client does not read, and cuts the client off after the stall limit", async () => {
    let written = 0;
    let upstreamClosed: Promise<unknown> | undefined;
    const chunk = "z".repeat(64 * 1024);
    const response = await send((req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      const pump = () => {
        while (written < 64 * 1024 * 1024) {
          written += chunk.length;
          if (!res.write(chunk)) {
            res.once("drain", pump);
            return;
          }
        }
        res.end();
      };
      upstreamClosed = closed(req.socket);
      pump();
    });
    let forwarded: Promise<void> | undefined;
    const front = await serve((_req, res) => {
      res.writeHead(200);
      forwarded = response.forwardTo(res, 300, () => undefined);
    });
    // A client that connects, reads the headers and then never reads again.
    const client = http.request(front, { method: "GET" });
    client.on("error", () => undefined); // it is cut off: that is the point
    client.end();
    const [clientRes] = (await once(client, "response")) as [http.IncomingMessage];
    clientRes.on("error", () => undefined);
    clientRes.pause();
    await expect(forwarded).rejects.toThrow("client write stalled");
    // Back-pressure reached the upstream: far less than its 64 MiB was produced.
    expect(written).toBeLessThan(32 * 1024 * 1024);
    response.discard();
    await upstreamClosed;
    clientRes.destroy();
  });

  it("fails a waiting reader when discarded and aborts the upstream request", async () => {
    let upstreamClosed: Promise<unknown> | undefined;
    const response = await send((req, res) => {
      upstreamClosed = closed(req.socket);
      res.writeHead(200);
      res.write("part of it");
    });
    const reading = response.readUpTo(1024);
    response.discard();
    await expect(reading).rejects.toThrow("discarded");
    await upstreamClosed;
    await expect(response.readUpTo(1024)).rejects.toThrow("discarded");
  });

  it("reads nothing after a discard, even of a body that had already ended", async () => {
    const response = await send((_req, res) => {
      res.writeHead(200);
      res.end("all of it");
    });
    await new Promise((resolve) => setImmediate(resolve));
    response.discard();
    await expect(response.readUpTo(1024)).rejects.toThrow("discarded");
    await expect(response.readText(1024, 60_000)).resolves.toBe("");
  });

  it("gives at most max bytes of the text, and what came when the body breaks off", async () => {
    const response = await send((_req, res) => {
      res.writeHead(500, { "content-length": "100" });
      res.write("0123456789", () => res.destroy());
    });
    expect(response.statusCode).toBe(500);
    expect(await response.readText(4, 60_000)).toBe("0123");
  });

  it("stops reading text once max bytes are in, or its time is up, even of a body that never ends", async () => {
    const trickle = (res: http.ServerResponse) => {
      res.writeHead(500, { "content-type": "application/json" });
      res.write("0123456789");
      const drip = setInterval(() => res.write(" "), 5);
      res.once("close", () => clearInterval(drip));
    };
    const full = await send((_req, res) => trickle(res));
    expect(await full.readText(4, 60_000)).toBe("0123");
    const slow = await send((_req, res) => trickle(res));
    expect((await slow.readText(1024, 50)).startsWith("0123456789")).toBe(true);
  });

  it("rejects a reader with the upstream's failure when the body breaks off", async () => {
    const response = await send((_req, res) => {
      res.writeHead(200, { "content-length": "100" });
      res.write("0123456789", () => res.destroy());
    });
    await expect(response.readUpTo(1024)).rejects.toMatchObject({ code: "UND_ERR_SOCKET" });
  });
});
