/**
 * Errors raised outside any route — by the router, by Node's HTTP parser, during shutdown — leave in
 * the same envelope as every other error, with a request id.
 */
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { createChatHarness } from "../testing/chat-harness.js";
import { createHarness, type Harness } from "../testing/harness.js";

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function listening(): Promise<{ harness: Harness; port: number }> {
  const harness = await createHarness();
  h = harness;
  await harness.app.listen({ host: "127.0.0.1", port: 0 });
  const address = harness.app.server.address();
  return { harness, port: typeof address === "object" && address ? address.port : 0 };
}

/** Opens a raw connection, lets `talk` write to it, and resolves with everything read until it closes. */
async function rawExchange(port: number, talk: (socket: net.Socket) => Promise<void>): Promise<Buffer> {
  const socket = net.connect(port, "127.0.0.1");
  const chunks: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => chunks.push(chunk));
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  socket.on("error", () => undefined);
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
  await talk(socket);
  await closed;
  return Buffer.concat(chunks);
}

/** The status, lower-cased headers and JSON body of each response in a raw exchange. */
function responses(raw: Buffer): { status: number; headers: Record<string, string>; body: unknown }[] {
  const out: { status: number; headers: Record<string, string>; body: unknown }[] = [];
  let rest = raw;
  while (rest.length > 0) {
    const headEnd = rest.indexOf("\r\n\r\n");
    const [statusLine = "", ...lines] = rest.subarray(0, headEnd).toString("latin1").split("\r\n");
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(":");
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = Number(headers["content-length"]);
    const body = rest.subarray(headEnd + 4, headEnd + 4 + length).toString("utf8");
    out.push({ status: Number(statusLine.split(" ")[1]), headers, body: JSON.parse(body) });
    rest = rest.subarray(headEnd + 4 + length);
  }
  return out;
}

const invalidRequest = (message: string) => ({
  error: { code: "invalid_request", message, type: "invalid_request_error" },
});

describe("errors outside any route", () => {
  it("answers an unknown route with 404 not_found naming it, and points other OpenAI APIs to /chat/completions", async () => {
    h = await createHarness();
    const unknown = await h.app.inject({ method: "GET", url: "/api/v1/nothing?x=1" });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toMatchObject({
      error: { code: "not_found", message: "No route for GET /api/v1/nothing." },
    });
    const responses = await h.app.inject({ method: "POST", url: "/api/v1/responses", payload: {} });
    expect(responses.statusCode).toBe(404);
    expect((responses.json() as { error: { message: string } }).error.message).toBe(
      "No route for POST /api/v1/responses. Wattfare forwards POST /api/v1/chat/completions only, not /responses; with the Vercel AI SDK's @ai-sdk/openai provider, use provider.chat(model).",
    );
  });

  it("answers a malformed URL with 400 invalid_request in the envelope, with a request id", async () => {
    h = await createHarness();
    const res = await h.app.inject({ method: "GET", url: "/api/v1/%E0%A4%A" });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual(invalidRequest("The URL is malformed (an invalid percent-encoding)."));
    expect(res.headers["x-request-id"]).toMatch(/^req_[0-9a-f]{32}$/);
    expect(res.headers["cache-control"]).toBe("no-store");
  });

  it("answers oversized request headers with 400 invalid_request and closes the connection", async () => {
    const { port } = await listening();
    const text = await rawExchange(port, async (socket) => {
      socket.write(
        `GET /api/v1/health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${"a".repeat(20_000)}\r\n\r\n`,
      );
    });
    const [res] = responses(text);
    expect(res?.status).toBe(400);
    expect(res?.body).toEqual(invalidRequest("The request headers are larger than this server accepts."));
    expect(res?.headers["x-request-id"]).toMatch(/^req_[0-9a-f]{32}$/);
    expect(res?.headers.connection).toBe("close");
  });

  it("answers bytes that are not HTTP with 400 invalid_request", async () => {
    const { port } = await listening();
    const text = await rawExchange(port, async (socket) => {
      socket.write("HELLO THERE\r\n\r\n");
    });
    expect(responses(text).map((r) => [r.status, r.body])).toEqual([
      [400, invalidRequest("The request is not valid HTTP.")],
    ]);
  });

  it("does not write its answer into a response already under way on the connection", async () => {
    const chat = await createChatHarness({ sim: { interTokenMs: 20, responseTokens: 50 } });
    try {
      await chat.connect("alice", 5);
      const body = JSON.stringify({
        model: "openai/gpt-4o-mini",
        messages: [{ role: "user", content: "hi" }],
        stream: true,
      });
      const raw = await rawExchange(Number(new URL(chat.url).port), async (socket) => {
        socket.write(
          `POST /api/v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${chat.secretKey}\r\nx-wattfare-user: alice\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
        );
        await new Promise((resolve) => socket.once("data", resolve));
        socket.write("NOT HTTP\r\n\r\n");
      });
      const text = raw.toString("latin1");
      expect(text.startsWith("HTTP/1.1 200 OK")).toBe(true);
      expect(text.match(/HTTP\/1\.1 /g)).toHaveLength(1);
      await chat.drain();
    } finally {
      await chat.close();
    }
  });

  it("reads many chat bodies at once without a listener-leak warning", async () => {
    const chat = await createChatHarness();
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.name);
    process.on("warning", onWarning);
    const sockets: net.Socket[] = [];
    try {
      await chat.connect("alice", 5);
      const port = Number(new URL(chat.url).port);
      for (let i = 0; i < 20; i++) {
        const socket = net.connect(port, "127.0.0.1");
        socket.on("error", () => undefined);
        sockets.push(socket);
        socket.write(
          `POST /api/v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${chat.secretKey}\r\n` +
            "x-wattfare-user: alice\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
        );
      }
      // Every body is being read once each request has been authenticated (a few event-loop turns).
      await new Promise((resolve) => setTimeout(resolve, 100));
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings).not.toContain("MaxListenersExceededWarning");
    } finally {
      process.off("warning", onWarning);
      for (const socket of sockets) socket.destroy();
      await chat.close();
    }
  });

  it("refuses a chat body still arriving when the server starts closing, with 503, so the close does not wait for it", async () => {
    const chat = await createChatHarness();
    try {
      await chat.connect("alice", 5);
      let closed: Promise<undefined> | undefined;
      const text = await rawExchange(Number(new URL(chat.url).port), async (socket) => {
        socket.write(
          `POST /api/v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${chat.secretKey}\r\n` +
            "x-wattfare-user: alice\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n" +
            '{"model":"openai/gpt-4o-mini",',
        );
        // The rest of the body never comes: only the shutdown can end this request.
        await new Promise((resolve) => setTimeout(resolve, 20));
        closed = chat.app.close();
      });
      await closed;
      const answer = text.toString("latin1");
      expect(answer).toMatch(/^HTTP\/1\.1 503 /);
      expect(answer).toMatch(/\r\nconnection: close\r\n/);
      expect(answer).toContain('"code":"unavailable"');
      expect(chat.sim.control.requests()).toHaveLength(0);
      expect(await chat.openReservations()).toBe(0);
    } finally {
      await chat.close();
    }
  });

  it("answers a request that arrives while the server shuts down with 503 unavailable in the envelope, readable cross-origin", async () => {
    const { harness, port } = await listening();
    const { secretKey } = await harness.createApp();
    let closing: Promise<undefined> | undefined;
    const text = await rawExchange(port, async (socket) => {
      // A request still being received keeps its connection open through the shutdown …
      socket.write(
        `POST /api/v1/sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${secretKey}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n`,
      );
      await new Promise((resolve) => setTimeout(resolve, 20));
      closing = harness.app.close();
      for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
      // … and a second one pipelined behind it arrives once the shutdown has begun.
      socket.write("{}GET /api/v1/connections HTTP/1.1\r\nHost: x\r\nOrigin: http://localhost:5173\r\n\r\n");
    });
    await closing;
    const [first, second] = responses(text);
    expect(first?.status).toBe(400); // admitted before the shutdown, answered once its body ("{}") came
    expect(second?.status).toBe(503);
    expect(second?.body).toEqual({
      error: { code: "unavailable", message: "Wattfare is restarting; retry shortly.", type: "api_error" },
    });
    expect(second?.headers["x-request-id"]).toMatch(/^req_[0-9a-f]{32}$/);
    expect(second?.headers.connection).toBe("close");
    expect(second?.headers["access-control-allow-origin"]).toBe("http://localhost:5173");
    expect(second?.headers["cache-control"]).toBe("no-store");
  });
});
