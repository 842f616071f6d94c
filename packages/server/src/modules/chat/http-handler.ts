/**
 * POST /api/v1/chat/completions as a plain node:http handler (DESIGN.md "The hot path": Fastify's generic
 * request path measurably cost CPU and time to first byte on this route; every other route stays on
 * Fastify). It keeps the same contract: a Wattfare request id on every response, the caller
 * authenticated and rate-limited from the headers before a byte of the body is read, the body limit,
 * the one error body shape and status table.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AppDeps } from "../../deps.js";
import { ApiError, errorBody, restartingError } from "../../errors.js";
import { payloadTooLarge, toApiError } from "../../http/error-handler.js";
import { H, headerValue } from "../../http/headers.js";
import { newRequestId } from "../../http/request-id.js";
import { APP_USER_ID, APP_USER_ID_MESSAGE } from "../../http/validation.js";
import {
  chatGrantKey,
  chatUserKey,
  type RateDecision,
  type RateRule,
  RL_CHAT,
} from "../../ratelimit/index.js";
import { authenticateSecretKey } from "../apps/index.js";
import { checkGrantUsable, findGrant } from "../grants/index.js";
import type { Metrics } from "../metrics/index.js";
import type { ChatCaller, ChatProxy } from "./proxy.js";

export const CHAT_PATH = "/api/v1/chat/completions";

/** True for the requests this handler serves (any query string is ignored, as Fastify would). */
export function isChatRequest(req: IncomingMessage): boolean {
  if (req.method !== "POST" || req.url === undefined) return false;
  const q = req.url.indexOf("?");
  return (q === -1 ? req.url : req.url.slice(0, q)) === CHAT_PATH;
}

const JSON_TYPE = /^application\/json\s*(;|$)/i;
const ignore = () => undefined;

export function createChatHttpHandler(
  deps: AppDeps,
  proxy: ChatProxy,
  metrics: Metrics,
  closing: AbortSignal,
): (req: IncomingMessage, res: ServerResponse) => void {
  const limit = deps.config.limits.chatBodyBytes;
  const tooLarge = () => payloadTooLarge(limit, "WATTFARE_CHAT_BODY_LIMIT_BYTES");

  /** RL_CHAT's verdict, keyed per user or per grant (separate namespaces). */
  const enforce = (decision: RateDecision, rule: RateRule) => {
    if (!decision.allowed) {
      throw new ApiError("rate_limited", `Too many chat requests (${rule.limit}/minute).`, {
        headers: { [H.retryAfter]: String(decision.retryAfterSeconds) },
      });
    }
  };

  const callerOf = async (req: IncomingMessage): Promise<ChatCaller> => {
    const now = deps.clock.now();
    const app = await authenticateSecretKey(deps.store, req.headers.authorization, now);
    const user = headerValue(req.headers[H.user]);
    const grant = headerValue(req.headers[H.grant]);
    if (user !== undefined && grant !== undefined) {
      throw new ApiError("invalid_request", `Send either ${H.user} or ${H.grant}, not both.`);
    }
    const rule =
      app.chatPerMinute === null ? RL_CHAT : { limit: app.chatPerMinute, windowMs: RL_CHAT.windowMs };
    if (grant !== undefined) {
      // Counted before its state is judged: a request refused on a revoked, expired or used-up grant
      // counts like any other answer, so a backend looping on one is slowed.
      const account = await findGrant(deps, app.id, grant);
      enforce(await deps.rateLimits.hit(chatGrantKey(app.id, account.grant.id), rule, now), rule);
      checkGrantUsable(account, now);
      return { app, kind: "grant", token: grant };
    }
    if (user === undefined) {
      throw new ApiError("invalid_request", `The ${H.user} header is required (your user's id).`, {
        param: H.user,
      });
    }
    if (!APP_USER_ID.test(user)) {
      throw new ApiError("invalid_request", `${H.user} ${APP_USER_ID_MESSAGE}.`, { param: H.user });
    }
    enforce(await deps.rateLimits.hit(chatUserKey(app.id, user), rule, now), rule);
    return { app, kind: "user", appUserId: user };
  };

  const readBody = (req: IncomingMessage): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      const declared = Number(req.headers["content-length"] ?? Number.NaN);
      if (declared > limit) {
        reject(tooLarge());
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      // Once settled, this scope (the chunks, and the promise holding the body) must not stay reachable
      // from `req`, which lives as long as the answer: its listeners go, a late error is ignored.
      const settled = () => {
        closing.removeEventListener("abort", onClosing);
        req.off("data", onData);
        req.off("end", onEnd);
        req.off("error", onError);
        req.on("error", ignore);
      };
      // Stops reading (what is left of the body is not wanted) and answers `error`.
      const refuse = (error: ApiError) => {
        settled();
        req.pause();
        reject(error);
      };
      // A body still arriving when the server starts closing is refused: nothing has been admitted yet,
      // and a slow client must not hold the drain (nor be admitted once it is done).
      const onClosing = () => refuse(restartingError());
      const onData = (chunk: Buffer) => {
        size += chunk.length;
        if (size > limit) {
          refuse(tooLarge());
          return;
        }
        chunks.push(chunk);
      };
      const onEnd = () => {
        settled();
        resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
      };
      const onError = (error: Error) => {
        settled();
        reject(error);
      };
      if (closing.aborted) {
        onClosing(); // it began to close while this request was being authenticated
        return;
      }
      closing.addEventListener("abort", onClosing, { once: true });
      req.on("data", onData);
      req.on("end", onEnd);
      req.on("error", onError);
    });

  const serve = async (req: IncomingMessage, res: ServerResponse, id: string) => {
    if (closing.aborted) throw restartingError();
    const caller = await callerOf(req);
    if (!JSON_TYPE.test(req.headers["content-type"] ?? "")) {
      throw new ApiError("invalid_request", "Content-Type must be application/json.");
    }
    // A value it does not know would be ignored, silently lowering max_tokens the caller meant to keep.
    const clamp = headerValue(req.headers[H.clamp]);
    if (clamp !== undefined && clamp.toLowerCase() !== "off") {
      throw new ApiError(
        "invalid_request",
        `${H.clamp}: the only value it takes is off, not ${JSON.stringify(clamp.slice(0, 100))}.`,
        { param: H.clamp },
      );
    }
    const body = await readBody(req);
    if (closing.aborted) throw restartingError(); // it ended as the server began to close: not admitted
    if (body.length === 0)
      throw new ApiError("invalid_request", "The request body is empty; send a JSON object.");
    // The proxy reads who pays (a grant again, a user's connection) once the body is in. Returned, not
    // awaited: this frame, and the body in it, need not live as long as the answer.
    return proxy.handle({ id, clampOff: clamp !== undefined, socket: req.socket }, res, caller, body);
  };

  return (req, res) => {
    const id = newRequestId();
    // Every response names the request id in the headers object given to writeHead (here and in the
    // proxy), never through an earlier setHeader: that would send writeHead down Node's slower merge path.
    serve(req, res, id).catch((error: unknown) => {
      const apiError = toApiError(error);
      metrics.chatError(apiError.code);
      if (apiError.status >= 500) deps.logger.error({ err: error, requestId: id }, "chat request failed");
      if (res.headersSent || res.destroyed) {
        res.destroy();
        return;
      }
      // A body we did not read (refused before, or too large) cannot be left on a keep-alive socket.
      const unread = !req.complete;
      const headers = Object.assign({}, apiError.headers, {
        "content-type": "application/json; charset=utf-8",
        [H.requestId]: id,
      });
      if (unread) headers.connection = "close";
      res.writeHead(apiError.status, headers);
      res.end(JSON.stringify(errorBody(apiError)));
    });
  };
}
