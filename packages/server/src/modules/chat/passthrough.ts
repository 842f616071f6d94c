/**
 * Passing an upstream answer on to the client once it is admitted and its headers are in: a stream
 * chunk by chunk as it arrives (the usage event sniffed inline), a JSON answer in one write when it came
 * whole, else as it comes with a bounded tail kept for its `usage`. Back-pressure is respected
 * throughout (one reader, `UpstreamResponse.forwardTo`); nothing here writes to the store — the caller
 * settles from the cost returned.
 */
import type { ServerResponse } from "node:http";
import type { Clock } from "../../deps.js";
import { ApiError, errorBody } from "../../errors.js";
import { H } from "../../http/headers.js";
import { SseUsageSniffer } from "./sse-sniffer.js";
import type { UpstreamResponse } from "./upstream-response.js";
import { costInBody, costInText, type UsageCost } from "./usage.js";

/** How much of a streamed JSON answer's end is kept to find its `usage` in. */
const TAIL_BYTES = 64 * 1024;
/** A stream event with no choices: OpenRouter's final usage chunk (its debug echo has no usage cost). */
const FINAL_CHUNK = /"choices"\s*:\s*\[\s*\]/;

/** One admitted answer on its way to the client. */
export interface Passthrough {
  upstream: UpstreamResponse;
  res: ServerResponse;
  /** The response's headers so far (content type, Wattfare's ids); sent with the status line. */
  headers: Record<string, string>;
  /** Whether the client has left (then nothing more is written). */
  clientGone: () => boolean;
  /** How long a write the client does not read may stall before it is dropped. */
  stallMs: number;
}

/**
 * SSE: forward every chunk as it arrives, sniff the usage event, respect back-pressure. `last` names the
 * stream (its chunks' id and model) for the error event that ends it if the upstream breaks off.
 */
export async function pipeStream(
  { upstream, res, headers, clientGone, stallMs }: Passthrough,
  last: { id: string; model: string },
  clock: Clock,
): Promise<UsageCost | undefined> {
  headers["cache-control"] = "no-cache";
  headers["x-accel-buffering"] = "no";
  res.writeHead(200, headers);
  res.flushHeaders();
  const sniffer = new SseUsageSniffer();
  let failure: unknown;
  let failed = false;
  try {
    await upstream.forwardTo(res, stallMs, (chunk) => sniffer.push(chunk));
  } catch (error) {
    failed = true;
    failure = error;
  }
  const event = sniffer.lastUsageEvent;
  const cost = event === undefined ? undefined : costInText(event);
  if (!clientGone() && !res.destroyed) {
    // OpenRouter's last data chunk carries the usage and no choices; only `[DONE]` follows it. A break
    // after it lost nothing: an error event would make OpenAI clients throw on a whole, billed answer
    // (and their callers retry it, paying twice).
    const whole = sniffer.ended || (cost !== undefined && FINAL_CHUNK.test(event as string));
    // Broken off between an event's last line and the blank line after it: end that event, or SSE
    // clients drop it (the usage chunk, say) or read the error event below as more of its data.
    if (failed && sniffer.endsInOpenEvent) res.write("\n");
    if (failed && !whole) {
      // Headers are gone, so the status cannot change: end with OpenRouter's mid-stream error chunk
      // (unless the upstream already ended the stream, or reported its own error, before it broke off).
      const created = Math.floor(clock.now() / 1000);
      res.write(interruptedEvent(last.id, last.model, created, failure));
    }
    res.end();
  } else {
    upstream.discard();
  }
  return cost;
}

/**
 * JSON. A body that came whole with its headers (a short answer usually does) and fits the buffer
 * limit is sent in one write with content-length. One still being generated is passed on as it comes,
 * headers first, as OpenRouter sends it (with blank lines while the model works), so that a client's
 * or a load balancer's timeout does not run out meanwhile; so is a body above the buffer limit. Both
 * keep a bounded tail to find `usage` in. `beforeBody` runs before the first byte is written, with the
 * cost when the whole body (and so its usage) is already known.
 */
export async function pipeJson(
  { upstream, res, headers, clientGone, stallMs }: Passthrough,
  limit: number,
  beforeBody: (cost: UsageCost | undefined) => Promise<void>,
): Promise<{ cost: UsageCost | undefined; settled: boolean }> {
  let before = false;
  const runBefore = (cost: UsageCost | undefined): Promise<void> | undefined => {
    if (before) return undefined;
    before = true;
    return beforeBody(cost);
  };
  /** Whether anything but whitespace has gone to the client: until then an error can still be told. */
  let begun = false;
  let tail = Buffer.alloc(0);
  try {
    let first: Buffer[] = [];
    if (upstream.complete) {
      const head = await upstream.readUpTo(limit);
      if (head.ended) {
        const whole = head.chunks.length === 1 ? (head.chunks[0] as Buffer) : Buffer.concat(head.chunks);
        const cost = costInBody(whole);
        await runBefore(cost);
        if (!clientGone()) {
          headers["content-length"] = String(whole.length);
          res.writeHead(200, headers);
          res.end(whole);
        }
        return { cost, settled: cost !== undefined };
      }
      first = head.chunks;
    }
    await runBefore(undefined);
    // Passed on as it comes (blank lines while the model works): a buffering proxy in front must not
    // hold them back, or a client's idle timeout runs out all the same.
    headers["x-accel-buffering"] = "no";
    res.writeHead(200, headers);
    const pass = (chunk: Buffer) => {
      begun ||= !isBlank(chunk);
      tail = Buffer.concat([tail, chunk]).subarray(-TAIL_BYTES);
    };
    if (first.length === 0) res.flushHeaders();
    for (const chunk of first) {
      pass(chunk);
      res.write(chunk);
    }
    await upstream.forwardTo(res, stallMs, pass);
    if (!clientGone()) res.end();
    return { cost: costInBody(tail), settled: false };
  } catch {
    // Broken or abandoned mid-body: stop reading (a paused body would hold its upstream socket), and
    // make the generation id durable so the cost can be reconciled.
    upstream.discard();
    await runBefore(undefined);
    // A readable top-level usage means the whole body came (it is read from a valid document, or
    // from one ending with its usage): only its end was lost. Finish it rather than cut a whole,
    // billed answer off (an OpenAI client would fail and retry it), and settle from it.
    const whole = begun ? costInBody(tail) : undefined;
    if (whole !== undefined) {
      if (!clientGone() && !res.destroyed) res.end();
      return { cost: whole, settled: false };
    }
    if (!clientGone() && !res.destroyed && !begun) {
      // Only blank lines so far, if anything: an error can still be told (after a 200 already sent).
      if (!res.headersSent) {
        res.writeHead(502, {
          "content-type": "application/json",
          [H.requestId]: headers[H.requestId] ?? "",
          [H.shouldRetry]: "false",
        });
      }
      res.end(
        JSON.stringify(errorBody(new ApiError("upstream", "The model provider's response was interrupted."))),
      );
    } else res.destroy();
    return { cost: undefined, settled: false };
  }
}

/**
 * The last event of a stream whose upstream broke off after the headers, in the shape of OpenRouter's
 * own mid-stream error (reference §3): a chunk whose one choice finishes with "error" (so a client that
 * reads `choices[0].finish_reason` sees it) beside a top-level `error`, whose `code` is Wattfare's.
 */
function interruptedEvent(id: string, model: string, created: number, failure: unknown): string {
  const timedOut = (failure as { code?: unknown } | undefined)?.code === "UND_ERR_BODY_TIMEOUT";
  return `data: ${JSON.stringify({
    id,
    object: "chat.completion.chunk",
    created,
    model,
    choices: [{ index: 0, delta: { content: "" }, finish_reason: "error" }],
    error: {
      code: "upstream",
      message: "The model provider's stream was interrupted.",
      metadata: { error_type: timedOut ? "timeout" : "provider_unavailable" },
    },
  })}\n\n`;
}

/** Only JSON whitespace: what OpenRouter sends ahead of a slow non-stream answer. */
function isBlank(chunk: Buffer): boolean {
  for (const byte of chunk)
    if (byte !== 0x0a && byte !== 0x0d && byte !== 0x20 && byte !== 0x09) return false;
  return true;
}
