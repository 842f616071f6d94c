/**
 * `POST /connect/session`, the popup's first request: JSON, same-origin only, token + opener origin →
 * popup consent session, and the consent page to go on to.
 */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { AppDeps } from "../../deps.js";
import { ApiError } from "../../errors.js";
import { admitBeforeBody } from "../../http/admit-before-body.js";
import { clientNetwork } from "../../http/client-network.js";
import { parseOr400 } from "../../http/validation.js";
import { assertSameOrigin, securityHeaders } from "../web/index.js";
import { consentPage } from "./paths.js";
import { CONSENT_INTENTS, verifyExchange } from "./service.js";
import type { ConsentSessions } from "./session.js";

const SESSION_EXCHANGE_PATH = "/connect/session";
/** Popup exchanges per client address: far above a person opening consent popups, far below a flood. */
const EXCHANGES_PER_MINUTE = { limit: 60, windowMs: 60_000 };

/** The handshake page adds, once, that the payer can close the window and start again. */
const NOT_VERIFIED = "This request could not be verified: its session token is invalid or has expired.";

/** `POST /connect/session`: JSON in, JSON out (the popup's script reads the error message). */
export function registerSessionExchange(
  app: FastifyInstance,
  deps: AppDeps,
  consents: ConsentSessions,
): void {
  const body = z.strictObject({
    token: z.string({ error: "is required" }).min(1, "is required").max(4096),
    origin: z.string({ error: "is required" }).min(1, "is required").max(2048),
    intent: z.enum(CONSENT_INTENTS as [string, ...string[]], {
      error: `must be one of ${CONSENT_INTENTS.join(", ")}`,
    }),
    // No maximum here: verifyExchange lowers a larger one to it, as the popup cannot ask the page for
    // another number (an SDK's recover() suggests twice the cap), and the payer decides anyway.
    monthlyUsd: z.number({ error: "must be a number" }).positive("must be positive").optional(),
  });

  // From the headers, before the body is read: another site's request is 403 whatever it sent, and each
  // one from Wattfare's page counts, a malformed one included.
  const exchanges = admitBeforeBody(async (request, reply) => {
    reply.headers(securityHeaders(deps.config));
    assertSameOrigin(request, deps.config);
    // Each exchange verifies a token and writes a row: bounded per client address like sign-in.
    const decision = await deps.rateLimits.hit(
      `rl:consent-exchange:${clientNetwork(request.ip)}`,
      EXCHANGES_PER_MINUTE,
      deps.clock.now(),
    );
    if (!decision.allowed) {
      throw new ApiError("rate_limited", "Too many consent requests from this address; wait a minute.", {
        headers: { "retry-after": String(decision.retryAfterSeconds) },
      });
    }
  });

  app.post(SESSION_EXCHANGE_PATH, { preParsing: exchanges.preParsing }, async (request, reply) => {
    const input = parseOr400(body, request.body);
    const session = await verifyExchange(deps, {
      ...input,
      intent: input.intent as (typeof CONSENT_INTENTS)[number],
    }).catch((error: unknown) => {
      // The payer reads this in the popup: say what to do, not which JWT check failed.
      throw error instanceof ApiError && error.code === "auth" ? new ApiError("auth", NOT_VERIFIED) : error;
    });
    const started = await consents.start(reply, session);
    request.log.info({ appId: session.appId, intent: session.intent }, "consent session started");
    return { next: consentPage(started.idHash.toString("hex")) };
  });
}
