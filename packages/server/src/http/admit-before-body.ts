import type { FastifyRequest } from "fastify";

export interface BeforeBody<T> {
  /** The `preParsing` hook: runs `admit` and keeps what it returns for the handler. */
  preParsing: (request: FastifyRequest) => Promise<void>;
  /** What `admit` returned for this request (throws if the hook did not run: a wiring mistake). */
  of: (request: FastifyRequest) => T;
}

/**
 * Admits a request from its headers alone — authentication, origin, rate limit — in `preParsing`, before
 * a byte of the body is read, and hands the handler what `admit` found: a request refused there gets
 * its 401, 403 or 429 whatever body it sent (malformed, of another type, too large), as chat does.
 *
 * @example
 * const callers = admitBeforeBody((request) => authenticate(request));
 * app.post("/api/v1/x", { preParsing: callers.preParsing }, async (request) => act(callers.of(request)));
 */
export function admitBeforeBody<T extends object>(
  admit: (request: FastifyRequest) => Promise<T>,
): BeforeBody<T> {
  const admitted = new WeakMap<FastifyRequest, T>();
  return {
    async preParsing(request) {
      admitted.set(request, await admit(request));
    },
    of(request) {
      const value = admitted.get(request);
      if (value === undefined) {
        throw new Error(`${request.method} ${request.routeOptions.url} reached its handler unadmitted`);
      }
      return value;
    },
  };
}
