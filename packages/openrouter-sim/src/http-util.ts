/** Small helpers over node:http: one error envelope, one way to send JSON, a bounded body reader. */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";

/** OpenRouter answers browsers too; the OAuth exchange in particular is called from SPAs. */
export const CORS_HEADERS: OutgoingHttpHeaders = { "access-control-allow-origin": "*" };

const MAX_BODY_BYTES = 32 * 1024 * 1024;

export class BodyTooLargeError extends Error {}

export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new BodyTooLargeError("request body too large"));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () =>
      resolve(chunks.length === 1 ? chunks[0]!.toString("utf8") : Buffer.concat(chunks).toString("utf8")),
    );
    req.on("error", reject);
  });
}

export function sendJson(
  res: ServerResponse,
  status: number,
  json: string,
  headers: OutgoingHttpHeaders = {},
): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(json),
    ...CORS_HEADERS,
    ...headers,
  });
  res.end(json);
}

/** OpenRouter's error envelope: `{error:{code:<int>, message, metadata?}}` with the HTTP status as `code`. */
export function errorJson(status: number, message: string, metadata?: Record<string, unknown>): string {
  return JSON.stringify({
    error: metadata ? { code: status, message, metadata } : { code: status, message },
  });
}

export function sendError(
  res: ServerResponse,
  status: number,
  message: string,
  options: { metadata?: Record<string, unknown>; headers?: OutgoingHttpHeaders } = {},
): void {
  sendJson(res, status, errorJson(status, message, options.metadata), options.headers);
}

/** `Bearer <key>` → key; anything else → undefined. */
export function bearerToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (!header || header.length < 8 || header.slice(0, 7).toLowerCase() !== "bearer ") return undefined;
  const token = header.slice(7).trim();
  return token === "" ? undefined : token;
}
