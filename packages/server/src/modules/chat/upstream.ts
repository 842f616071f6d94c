/**
 * The one way out to OpenRouter (or the simulator): an undici Pool with keep-alive to the configured
 * upstream only (never a URL from a request — no SSRF surface). Timeouts count only pending upstream
 * reads: `headersTimeout` until the status line, `bodyTimeout` between body chunks.
 */
import { type Dispatcher, Pool } from "undici";
import { PoolQueue } from "./pool-queue.js";
import { UpstreamResponse } from "./upstream-response.js";

export interface UpstreamOptions {
  baseUrl: string;
  connections: number;
  headersTimeoutMs: number;
  readTimeoutMs: number;
  /** How long a chat request may wait for a free pool connection before it is given up, never sent. */
  queueTimeoutMs: number;
  /** Sent as HTTP-Referer for OpenRouter's app attribution. */
  referer: string;
}

export interface UpstreamText {
  status: number;
  text: string;
  headers: Dispatcher.ResponseData["headers"];
}

const SIDE_CALL_TIMEOUT_MS = 15_000;

/** Header values must be visible ASCII: an app name with emoji or CJK would make undici refuse the request. */
export function headerSafe(text: string): string {
  return (
    text
      .replace(/[^\x20-\x7e]+/g, " ")
      .trim()
      .slice(0, 100) || "Wattfare app"
  );
}

/**
 * Stops reading an upstream body. undici's BodyReadable emits an AbortError when destroyed before its
 * end; nobody is listening any more, so swallow it instead of letting it crash the process.
 */
function discardBody(body: Dispatcher.ResponseData["body"]): void {
  body.on("error", () => undefined);
  body.destroy();
}
const MAX_SIDE_BODY_BYTES = 32 * 1024 * 1024;

export class Upstream {
  private readonly pool: Pool;
  /** Chat requests wait here, not in undici's queue, for a free connection: see PoolQueue. */
  private readonly queue: PoolQueue;
  private readonly basePath: string;

  constructor(private readonly options: UpstreamOptions) {
    const url = new URL(options.baseUrl);
    this.basePath = url.pathname.replace(/\/+$/, "");
    this.pool = new Pool(url.origin, {
      connections: options.connections,
      headersTimeout: options.headersTimeoutMs,
      bodyTimeout: options.readTimeoutMs,
    });
    this.queue = new PoolQueue(options.connections, options.queueTimeoutMs);
  }

  private readonly titles = new Map<string, string>();

  /** headerSafe(app name), remembered: one regex pass per app, not per request. */
  private titleOf(name: string): string {
    let title = this.titles.get(name);
    if (title === undefined) {
      title = headerSafe(name);
      if (this.titles.size >= 1000) this.titles.clear();
      this.titles.set(name, title);
    }
    return title;
  }

  /**
   * POST /chat/completions with the payer's key; the response's `ready` resolves at its headers. The
   * caller owns it: it must read or discard the body, and discarding it while it still waits for a
   * connection keeps it from ever being sent.
   */
  chat(body: string, fundingKey: string, title: string): UpstreamResponse {
    return UpstreamResponse.send(
      this.pool,
      {
        method: "POST",
        path: `${this.basePath}/chat/completions`,
        headers: {
          authorization: `Bearer ${fundingKey}`,
          "content-type": "application/json",
          "http-referer": this.options.referer,
          "x-title": this.titleOf(title),
        },
        body,
      },
      this.queue,
    );
  }

  /** A small GET (`/models`, `/generation?id=`, `/key`), read whole as text. */
  get(pathAndQuery: string, fundingKey?: string): Promise<UpstreamText> {
    return this.side(pathAndQuery, {
      method: "GET",
      path: `${this.basePath}${pathAndQuery}`,
      headers: fundingKey === undefined ? {} : { authorization: `Bearer ${fundingKey}` },
    });
  }

  /**
   * A small JSON POST (`/auth/keys`, the OAuth PKCE code exchange), read whole as text. The body may
   * carry one-time secrets (the code and verifier): it is never logged or put in an error message.
   */
  post(path: string, body: unknown, fundingKey?: string): Promise<UpstreamText> {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (fundingKey !== undefined) headers.authorization = `Bearer ${fundingKey}`;
    return this.side(path, {
      method: "POST",
      path: `${this.basePath}${path}`,
      headers,
      body: JSON.stringify(body),
    });
  }

  /** A side call: it takes a connection without waiting its turn, and holds it until read whole. */
  private async side(
    pathAndQuery: string,
    options: Pick<Dispatcher.RequestOptions, "method" | "path" | "headers" | "body">,
  ): Promise<UpstreamText> {
    this.queue.enterNow();
    try {
      const res = await this.pool.request({
        ...options,
        headersTimeout: SIDE_CALL_TIMEOUT_MS,
        bodyTimeout: SIDE_CALL_TIMEOUT_MS,
      });
      return await this.readSmall(res, pathAndQuery);
    } finally {
      this.queue.leave();
    }
  }

  private async readSmall(res: Dispatcher.ResponseData, pathAndQuery: string): Promise<UpstreamText> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_SIDE_BODY_BYTES) {
        discardBody(res.body);
        throw new Error(
          `upstream ${pathAndQuery.split("?")[0]} answered more than ${MAX_SIDE_BODY_BYTES} bytes`,
        );
      }
      chunks.push(chunk);
    }
    return { status: res.statusCode, text: Buffer.concat(chunks).toString("utf8"), headers: res.headers };
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
