/**
 * Mounting Fetch-API handlers on Node's `http` objects (node:http, Express, Fastify, Koa, …). Only
 * `import type` from node:http, so the entry still loads in runtimes without Node's modules.
 */
import type { IncomingMessage, ServerResponse } from "node:http";

/**
 * Converts a Node request into a Fetch `Request`: method, URL, every header, and the body when it has
 * not been read yet (frameworks that parse bodies, like Fastify or Express with a body parser, leave
 * none). The URL's host comes from the `Host` header and is not trusted for anything else. Given the
 * Node response too, the request's `signal` aborts when the client disconnects before the response
 * has finished — pass it on to `chat.completions.create` to stop the model as soon as the user leaves.
 *
 * @example
 * ```ts
 * // Fastify
 * fastify.post("/api/wattfare/session", async (request, reply) =>
 *   reply.send(await handler(toFetchRequest(request.raw, reply.raw), request)),
 * );
 * ```
 */
export function toFetchRequest(req: IncomingMessage, res?: ServerResponse): Request {
  const scheme = (req.socket as { encrypted?: boolean } | null)?.encrypted ? "https" : "http";
  let url: URL;
  try {
    url = new URL(req.url ?? "/", `${scheme}://${req.headers.host ?? "localhost"}`);
  } catch {
    url = new URL(req.url ?? "/", `${scheme}://localhost`);
  }
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || name.startsWith(":")) continue; // HTTP/2 pseudo-headers are not headers
    if (Array.isArray(value)) for (const item of value) headers.append(name, item);
    else headers.set(name, value);
  }
  const method = req.method ?? "GET";
  // `duplex` is required by Node's fetch for a streamed body but missing from the DOM typings.
  const init: RequestInit & { duplex?: "half" } = { method, headers };
  if (method !== "GET" && method !== "HEAD" && !req.readableEnded) {
    init.body = toWebStream(req);
    init.duplex = "half";
  }
  if (res !== undefined) init.signal = disconnectSignal(res);
  return new Request(url, init);
}

/** Aborts when the response closes unfinished: the client went away. */
function disconnectSignal(res: ServerResponse): AbortSignal {
  const controller = new AbortController();
  const onClose = () => {
    if (!res.writableFinished) controller.abort(new Error("the client disconnected"));
  };
  if (res.destroyed) onClose();
  else res.once("close", onClose);
  return controller.signal;
}

/**
 * Mounts a Fetch-API handler as a Node `(req, res)` listener; the handler gets the Node request as its
 * second argument (for `req.user` and the like). Response bodies are streamed with back-pressure. When
 * the client disconnects, the request's `signal` aborts (a chat still waiting for Wattfare's answer
 * stops, if the handler passed the signal on) and a body being written is cancelled, which stops a
 * Wattfare stream at once. If the handler throws, `onError` is called and the client gets a bare 500.
 *
 * @example
 * ```ts
 * import { createServer } from "node:http";
 * const handler = createSessionHandler<IncomingMessage>((_request, req) => userOf(req));
 * createServer(toNodeHandler(handler)).listen(3000);
 * ```
 */
export function toNodeHandler<Req extends IncomingMessage = IncomingMessage>(
  handler: (request: Request, context: Req) => Promise<Response>,
  options: { onError?: (error: unknown) => void } = {},
): (req: Req, res: ServerResponse) => Promise<void> {
  const onError = options.onError ?? ((error: unknown) => console.error("[wattfare] handler failed", error));
  return async (req, res) => {
    let request: Request;
    try {
      request = toFetchRequest(req, res);
    } catch {
      // A method or URL Node accepts but a Fetch Request cannot hold (TRACE, a path like `//[`).
      res.writeHead(400, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { code: "invalid_request", message: "Unsupported request." } }));
      return;
    }
    try {
      await writeFetchResponse(res, await handler(request, req));
    } catch (error) {
      if (request.signal.aborted) return; // the client left: nobody to answer, and no handler fault
      onError(error);
      if (res.headersSent) {
        res.destroy();
        return;
      }
      res.writeHead(500, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { code: "internal", message: "Internal error." } }));
    }
  };
}

/** Writes a Fetch `Response` to a Node response, streaming the body with back-pressure. */
async function writeFetchResponse(res: ServerResponse, response: Response): Promise<void> {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of response.headers) if (name !== "set-cookie") headers[name] = value;
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) headers["set-cookie"] = cookies;
  if (res.destroyed) {
    // The client left while the handler worked: nobody will read the body, so stop what produces it.
    await response.body?.cancel().catch(() => {});
    return;
  }
  res.writeHead(response.status, headers);
  if (response.body === null) {
    res.end();
    return;
  }
  // An event stream's first event can take seconds (the model thinking): send the headers now.
  if (response.headers.get("content-type")?.startsWith("text/event-stream")) res.flushHeaders();
  const reader = response.body.getReader();
  const onClose = () => {
    if (!res.writableFinished) reader.cancel().catch(() => {});
  };
  res.once("close", onClose);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!res.write(value)) await drained(res);
      if (res.destroyed) {
        await reader.cancel().catch(() => {});
        return;
      }
    }
    res.end();
  } catch {
    res.destroy(); // the body failed part-way; the status has already gone out
  } finally {
    res.off("close", onClose);
  }
}

function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    if (res.destroyed) {
      resolve();
      return;
    }
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.once("drain", done);
    res.once("close", done);
  });
}

function toWebStream(source: AsyncIterable<Uint8Array>): ReadableStream<Uint8Array> {
  const iterator = source[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = await iterator.next();
      if (next.done) controller.close();
      else controller.enqueue(next.value);
    },
    async cancel() {
      await iterator.return?.();
    },
  });
}
