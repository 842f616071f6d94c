/**
 * Subject (b): the practical limit of a Node proxy — node:http in front of an undici Pool, no logic.
 * It reads the (small) request body whole, forwards it with the client's Authorization, and pipes the
 * upstream response back as it arrives (status, content-type, content-length and x-generation-id copied),
 * honouring back-pressure and aborting upstream when the client leaves. No auth, no accounting.
 *
 *   node bench/dist/bare-proxy.js --port 8790 --upstream http://127.0.0.1:8791/api/v1
 */
import { createServer, type IncomingMessage } from "node:http";
import { parseArgs } from "node:util";
import { Pool } from "undici";

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    upstream: { type: "string" },
    connections: { type: "string", default: "1024" },
  },
});
if (values.upstream === undefined)
  throw new Error("--upstream <url of the API, e.g. http://127.0.0.1:1234/api/v1> is required");
const upstream = new URL(values.upstream);
const chatPath = `${upstream.pathname.replace(/\/+$/, "")}/chat/completions`;
const pool = new Pool(upstream.origin, { connections: Number(values.connections), keepAliveTimeout: 30_000 });
const COPIED_HEADERS = ["content-type", "content-length", "x-generation-id"] as const;

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

const server = createServer((req, res) => {
  if (req.method !== "POST" || req.url !== "/api/v1/chat/completions") {
    res.writeHead(404).end();
    return;
  }
  const abort = new AbortController();
  res.once("close", () => {
    if (!res.writableFinished) abort.abort();
  });
  void (async () => {
    const body = await readBody(req);
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (req.headers.authorization !== undefined) headers.authorization = req.headers.authorization;
    const up = await pool.request({ method: "POST", path: chatPath, headers, body, signal: abort.signal });
    const out: Record<string, string> = {};
    for (const name of COPIED_HEADERS) {
      const value = up.headers[name];
      if (typeof value === "string") out[name] = value;
    }
    res.writeHead(up.statusCode, out);
    up.body.pipe(res);
  })().catch(() => {
    if (!res.headersSent) res.writeHead(502).end();
    else res.destroy();
  });
});
server.keepAliveTimeout = 65_000;
server.listen(Number(values.port), "127.0.0.1", () => {
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : values.port;
  process.stdout.write(`bare proxy listening on http://127.0.0.1:${port}\n`);
});
process.once("SIGTERM", () => {
  server.close();
  server.closeAllConnections();
  void pool.close().finally(() => process.exit(0));
});
