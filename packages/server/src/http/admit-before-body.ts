import type { FastifyReply, FastifyRequest } from "fastify";

export interface BeforeBody<T> {
  /** The `preParsing` hook: runs `admit` and keeps what it returns for the handler. */
  preParsing: (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
  /** What `admit` returned for this request (throws if the hook did not run: a wiring mistake). */
  of: (request: FastifyRequest) => T;
}

/** True when a body follows the headers (a declared non-zero length, or a chunked one). */
function bodyFollows(request: FastifyRequest): boolean {
  const length = request.headers["content-length"];
  return (length !== undefined && length !== "0") || request.headers["transfer-encoding"] !== undefined;
}

/**
 * Admits a request from its headers alone — authentication, origin, rate limit — in `preParsing`, before
 * a byte of the body is read, and hands the handler what `admit` found: a request refused there gets
 * its 401, 403 or 429 whatever body it sent (malformed, of another type, too large), as chat does. As
 * chat does too, a refusal with a body still unread closes the connection, so the server neither reads
 * that body to its end nor parses it as the next request.
 *
 * @example
 * const callers = admitBeforeBody((request) => authenticate(request));
 * app.post("/api/v1/x", { preParsing: callers.preParsing }, async (request) => act(callers.of(request)));
 */
export function admitBeforeBody<T>(
  admit: (request: FastifyRequest, reply: FastifyReply) => Promise<T>,
): BeforeBody<T> {
  const admitted = new WeakMap<FastifyRequest, T>();
  return {
    async preParsing(request, reply) {
      try {
        admitted.set(request, await admit(request, reply));
      } catch (error) {
        if (bodyFollows(request)) reply.header("connection", "close");
        throw error;
      }
    },
    of(request) {
      if (!admitted.has(request)) {
        throw new Error(`${request.method} ${request.routeOptions.url} reached its handler unadmitted`);
      }
      return admitted.get(request) as T;
    },
  };
}
