/**
 * Plays a planned generation onto the socket — stream or JSON — with the configured delays and faults,
 * and bills it by the rules OpenRouter documents (README "Billing rules").
 */
import type { OutgoingHttpHeaders, ServerResponse } from "node:http";
import { settleGeneration } from "./billing.js";
import type { GenerationPlan } from "./chat-plan.js";
import { ChunkWriter, completionJson, DONE_EVENT, PROCESSING_COMMENT } from "./chat-render.js";
import { CORS_HEADERS, sendJson } from "./http-util.js";
import type { SimState } from "./state.js";
import type { Faults, FinishReason } from "./types.js";

type StopKind = "complete" | "error" | "drop" | "hang";

interface StopPoint {
  kind: StopKind;
  /** Pieces produced before stopping. */
  at: number;
}

/** Where the response stops. If several after-N faults are set, the first of drop, error, hang wins. */
function stopPoint(faults: Faults, pieceCount: number): StopPoint {
  const clamp = (n: number): number => Math.max(0, Math.min(n, pieceCount));
  if (faults.resetAfterChunks !== null) return { kind: "drop", at: clamp(faults.resetAfterChunks) };
  if (faults.errorAfterChunks !== null) return { kind: "error", at: clamp(faults.errorAfterChunks) };
  if (faults.hangAfterChunks !== null) return { kind: "hang", at: clamp(faults.hangAfterChunks) };
  return { kind: "complete", at: pieceCount };
}

const SSE_HEADERS: OutgoingHttpHeaders = {
  "content-type": "text/event-stream",
  "cache-control": "no-cache",
  ...CORS_HEADERS,
};

/** Ends the connection mid-body once the bytes already written have reached the kernel. */
function dropAfter(res: ServerResponse, out: string): void {
  const socket = res.socket;
  if (!socket) return;
  if (out !== "") {
    res.write(out, () => socket.destroy());
    return;
  }
  // Nothing written yet (no comments, zero chunks): the headers still go out first, then the FIN.
  res.flushHeaders();
  socket.destroySoon();
}

export function streamCompletion(sim: SimState, plan: GenerationPlan, res: ServerResponse): void {
  const { ttftMs, interTokenMs, processingComments } = sim.settings;
  const stop = stopPoint(sim.faults, plan.pieces.length);
  const writer = new ChunkWriter(plan);
  let sent = 0;
  let settled = false;
  let timer: NodeJS.Timeout | undefined;
  let pending =
    PROCESSING_COMMENT.repeat(processingComments) +
    (plan.echoBody === null ? "" : writer.echo(plan.echoBody));

  const settle = (pieces: number, finishReason: FinishReason | null, cancelled: boolean) => {
    settled = true;
    return settleGeneration(sim, plan, { pieces, finishReason, cancelled });
  };

  res.on("close", () => {
    if (settled) return;
    sim.clearTimer(timer);
    // A cancellable provider stops at once; others keep generating and bill the whole response when it
    // would have finished (only then does /generation know it). A hung provider produced nothing more,
    // so it bills what it sent either way.
    if (plan.model.cancellable || stop.kind === "hang") settle(sent, null, true);
    else {
      const rest = (plan.pieces.length - sent) * interTokenMs;
      const finish = () => settle(plan.pieces.length, plan.finishReason, true);
      if (rest > 0) sim.setTimer(finish, rest);
      else finish();
    }
  });

  const step = (): void => {
    timer = undefined;
    let out = pending;
    pending = "";
    while (sent < stop.at) {
      out += writer.piece(plan.pieces[sent]!);
      sent += 1;
      if (interTokenMs > 0 && sent < stop.at) break;
    }
    if (sent < stop.at) {
      res.write(out);
      timer = sim.setTimer(step, interTokenMs);
      return;
    }
    switch (stop.kind) {
      case "complete": {
        const settlement = settle(sent, plan.finishReason, false);
        res.end(out + writer.finish(plan.finishReason) + writer.usage(settlement) + DONE_EVENT);
        return;
      }
      case "error":
        settle(sent, "error", false);
        res.end(out + writer.error());
        return;
      case "drop":
        settle(sent, null, false);
        dropAfter(res, out);
        return;
      case "hang":
        if (out !== "") res.write(out);
        return;
    }
  };

  res.writeHead(200, { ...SSE_HEADERS, "x-generation-id": plan.id });
  if (ttftMs > 0) {
    // Headers and keep-alive comments go out at once, as OpenRouter's do, before the first token.
    if (pending === "") res.flushHeaders();
    else res.write(pending);
    pending = "";
    timer = sim.setTimer(step, ttftMs);
  } else {
    step();
  }
}

export function jsonCompletion(sim: SimState, plan: GenerationPlan, res: ServerResponse): void {
  const { ttftMs, interTokenMs, nonStreamBlankLines } = sim.settings;
  const stop = stopPoint(sim.faults, plan.pieces.length);
  const headers = { "x-generation-id": plan.id };
  /** The JSON answer, after the blank lines when the headers already went out with them. */
  const answer = (json: string): void => {
    if (res.headersSent) res.end(json);
    else sendJson(res, 200, json, headers);
  };
  let responded = false;
  let clientGone = false;
  let settled = false;

  res.on("close", () => {
    if (responded) return;
    clientGone = true;
    // A hung provider never finishes, so the generation ends when the client gives up.
    if (stop.kind === "hang" && !settled) {
      settled = true;
      settleGeneration(sim, plan, { pieces: stop.at, finishReason: null, cancelled: true });
    }
  });

  const finish = (): void => {
    if (settled) return;
    switch (stop.kind) {
      case "complete": {
        // Non-stream requests are billed in full even when the client has left (OpenRouter docs).
        settled = true;
        responded = true;
        const settlement = settleGeneration(sim, plan, {
          pieces: plan.pieces.length,
          finishReason: plan.finishReason,
          cancelled: clientGone,
        });
        if (!clientGone) answer(completionJson(plan, stop.at, plan.finishReason, settlement));
        return;
      }
      case "error": {
        settled = true;
        responded = true;
        const settlement = settleGeneration(sim, plan, {
          pieces: stop.at,
          finishReason: "error",
          cancelled: clientGone,
        });
        if (!clientGone) answer(completionJson(plan, stop.at, "error", settlement));
        return;
      }
      case "drop":
        settled = true;
        responded = true;
        settleGeneration(sim, plan, { pieces: stop.at, finishReason: null, cancelled: false });
        res.socket?.resetAndDestroy();
        return;
      case "hang":
        return;
    }
  };

  const delay = stop.at === 0 ? ttftMs : ttftMs + interTokenMs * (stop.at - 1);
  if (delay > 0 && nonStreamBlankLines > 0) {
    // Observed of OpenRouter: a slow non-stream request gets its headers and blank lines at once.
    res.writeHead(200, { "content-type": "application/json", ...CORS_HEADERS, ...headers });
    res.write("\n".repeat(nonStreamBlankLines));
  }
  if (delay > 0) sim.setTimer(finish, delay);
  else finish();
}
