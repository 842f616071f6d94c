/**
 * The one error handler: every error leaves as `{error:{code,message}}` with a status from the table in
 * errors.ts. Client mistakes get a precise message; anything unexpected is a generic 500 that never
 * leaks internals (it is logged with the request id instead).
 */
import type { Socket } from "node:net";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { ApiError, errorBody } from "../errors.js";
import { H } from "./headers.js";
import { newRequestId } from "./request-id.js";

/** `20 MiB`, `64 KiB`, or `1500 bytes` when not a whole number of either. */
function byteSize(bytes: number): string {
  if (bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`;
  if (bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} bytes`;
}

/**
 * 413 naming the endpoint's limit and, when the operator can change it, the setting that does.
 *
 * @example
 * payloadTooLarge(65536).message; // "The request body is larger than this endpoint accepts (at most 64 KiB)."
 */
export function payloadTooLarge(limitBytes: number, setting?: string): ApiError {
  const changedBy = setting === undefined ? "" : `; the server's ${setting} sets it`;
  return new ApiError(
    "payload_too_large",
    `The request body is larger than this endpoint accepts (at most ${byteSize(limitBytes)}${changedBy}).`,
  );
}

/**
 * Maps Fastify's own request errors (body parsing, limits, content type) onto our table; `bodyLimit`
 * (the route's, in bytes) is named in a 413.
 */
export function toApiError(error: unknown, bodyLimit?: number): ApiError {
  if (error instanceof ApiError) return error;
  const e = error as Partial<FastifyError> & { message?: string };
  switch (e.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return bodyLimit === undefined
        ? new ApiError("payload_too_large", "The request body is larger than this endpoint accepts.")
        : payloadTooLarge(bodyLimit);
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return new ApiError("invalid_request", "Content-Type must be application/json.");
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return new ApiError("invalid_request", "The request body is empty; send a JSON object.");
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return new ApiError("invalid_request", "Content-Length does not match the body.");
    case "FST_ERR_CTP_INVALID_JSON_BODY":
      return new ApiError("invalid_request", "The request body is not valid JSON.");
    case "FST_ERR_BAD_URL":
      return new ApiError("invalid_request", "The URL is malformed (an invalid percent-encoding).");
    default:
      break;
  }
  if (e.statusCode === 400 && (error instanceof SyntaxError || e.name === "SyntaxError")) {
    return new ApiError("invalid_request", "The request body is not valid JSON.");
  }
  if (e.statusCode === 413) return new ApiError("payload_too_large");
  if (typeof e.statusCode === "number" && e.statusCode >= 400 && e.statusCode < 500) {
    return new ApiError("invalid_request", "The request is malformed.");
  }
  return new ApiError("internal", undefined, { cause: error });
}

export function sendError(reply: FastifyReply, error: ApiError): FastifyReply {
  return reply.code(error.status).headers(error.headers).send(errorBody(error));
}

/** Fastify's `frameworkErrors`: raised while routing, before the onRequest hooks ran. */
export function sendFrameworkError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  reply.header(H.requestId, request.id).header("cache-control", "no-store");
  sendError(reply, toApiError(error));
}

const CLIENT_ERRORS: Record<string, string> = {
  HPE_HEADER_OVERFLOW: "The request headers are larger than this server accepts.",
  ERR_HTTP_REQUEST_TIMEOUT: "The request was not received in time.",
};

/**
 * Node's `clientError`: the request could not be parsed, so there is no request to reply to. Answers
 * 400 in the envelope on the raw socket and closes it.
 */
export function answerClientError(
  this: FastifyInstance,
  error: Error & { code?: string },
  socket: Socket & { _httpMessage?: { headersSent?: boolean } },
): void {
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  // As Node's own handler: not into a response already under way on this connection (a stream).
  if (socket.writable && socket._httpMessage?.headersSent !== true) {
    const requestId = newRequestId();
    const message = CLIENT_ERRORS[error.code ?? ""] ?? "The request is not valid HTTP.";
    this.log.debug({ err: error, requestId }, "unparseable request");
    const body = JSON.stringify(errorBody(new ApiError("invalid_request", message)));
    socket.write(
      `HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${H.requestId}: ${requestId}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}

/** Other OpenAI-style APIs a client may try: their 404 says what to use instead. */
const OTHER_OPENAI_APIS = /^\/api\/v1\/(responses|completions|embeddings)(?:\/|$)/;

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const apiError = toApiError(error, request.routeOptions.bodyLimit);
    if (apiError.status >= 500) request.log.error({ err: error }, "request failed");
    return sendError(reply, apiError);
  });
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split("?")[0] ?? "";
    const other = OTHER_OPENAI_APIS.exec(path)?.[1];
    const hint =
      other === undefined
        ? ""
        : ` Wattfare forwards POST /api/v1/chat/completions only, not /${other}; with the Vercel AI SDK's @ai-sdk/openai provider, use provider.chat(model).`;
    return sendError(reply, new ApiError("not_found", `No route for ${request.method} ${path}.${hint}`));
  });
}
