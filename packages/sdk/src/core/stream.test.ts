import { describe, expect, it } from "vitest";
import { APIConnectionError, APIUserAbortError, UpstreamError } from "./errors.js";
import { Stream, type StreamControl } from "./stream.js";

interface Chunk {
  n: number;
}

/**
 * A stream over a body that sends `events` and then either ends or stays open (like a slow model),
 * with a control that errors the body on abort, as fetch does.
 */
function setup(events: string[], options: { end?: boolean; userSignal?: AbortSignal } = {}) {
  const encoder = new TextEncoder();
  let body!: ReadableStreamDefaultController<Uint8Array>;
  const log = { aborts: 0, releases: 0, cancelled: false };
  const response = new Response(
    new ReadableStream<Uint8Array>({
      start(controller) {
        body = controller;
        for (const event of events) controller.enqueue(encoder.encode(event));
        if (options.end !== false) controller.close();
      },
      cancel() {
        log.cancelled = true;
      },
    }),
    { headers: { "x-request-id": "req_s" } },
  );
  let aborted = false;
  const control: StreamControl = {
    abort() {
      log.aborts++;
      if (aborted) return;
      aborted = true;
      try {
        body.error(new DOMException("aborted", "AbortError"));
      } catch {
        // already closed
      }
    },
    get aborted() {
      return aborted;
    },
    get userAborted() {
      return options.userSignal?.aborted === true;
    },
    release() {
      log.releases++;
    },
  };
  options.userSignal?.addEventListener("abort", () => control.abort());
  /** The socket dies: the body errors without anyone aborting. */
  const breakConnection = () => body.error(new TypeError("terminated"));
  return { stream: new Stream<Chunk>(response, control), log, breakConnection };
}

async function collect(stream: Stream<Chunk>): Promise<number[]> {
  const seen: number[] = [];
  for await (const chunk of stream) seen.push(chunk.n);
  return seen;
}

async function readAll(readable: ReadableStream<Uint8Array>): Promise<string> {
  return new Response(readable).text();
}

const event = (n: number) => `data: {"n":${n}}\n\n`;
const DONE = "data: [DONE]\n\n";

describe("iterating a stream", () => {
  it("yields each chunk parsed, skips comments, and stops at [DONE]", async () => {
    const { stream, log } = setup([": OPENROUTER PROCESSING\n\n", event(1), event(2), DONE]);
    expect(await collect(stream)).toEqual([1, 2]);
    expect(log.aborts).toBe(0);
    expect(log.releases).toBe(1);
  });

  it("aborts the request when the loop breaks early", async () => {
    const { stream, log } = setup([event(1), event(2)], { end: false });
    for await (const chunk of stream) {
      expect(chunk.n).toBe(1);
      break;
    }
    expect(log.aborts).toBe(1);
    expect(log.releases).toBe(1);
  });

  it("throws an UpstreamError from the loop on Wattfare's mid-stream error event", async () => {
    const { stream, log } = setup([
      event(1),
      'data: {"id":"gen-1","object":"chat.completion.chunk","created":1,"model":"openai/gpt-4o-mini","choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}],"error":{"code":"upstream","message":"The model provider\'s stream was interrupted.","metadata":{"error_type":"provider_unavailable"}}}\n\n',
    ]);
    const seen: number[] = [];
    const error = await (async () => {
      for await (const chunk of stream) seen.push(chunk.n);
    })().catch((e: unknown) => e);
    expect(seen).toEqual([1]);
    expect(error).toBeInstanceOf(UpstreamError);
    expect(error).toMatchObject({
      code: "upstream",
      status: 502,
      requestId: "req_s",
      message: "The model provider's stream was interrupted.",
    });
    expect(log.releases).toBe(1);
  });

  it("throws an UpstreamError on OpenRouter's own error chunk with a numeric code", async () => {
    const { stream } = setup([
      'data: {"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}],"error":{"code":502,"message":"Provider returned error"}}\n\n',
    ]);
    await expect(collect(stream)).rejects.toMatchObject({
      code: "upstream",
      message: "Provider returned error",
    });
  });

  it("treats an event that is not JSON as an upstream failure", async () => {
    const { stream } = setup(["data: {oops\n\n"]);
    await expect(collect(stream)).rejects.toBeInstanceOf(UpstreamError);
  });

  it("ends quietly when abort() is called", async () => {
    const { stream } = setup([event(1)], { end: false });
    const seen: number[] = [];
    for await (const chunk of stream) {
      seen.push(chunk.n);
      stream.abort();
    }
    expect(seen).toEqual([1]);
  });

  it("throws APIUserAbortError when the caller's signal aborts mid-stream", async () => {
    const controller = new AbortController();
    const { stream } = setup([event(1)], { end: false, userSignal: controller.signal });
    const error = await (async () => {
      for await (const _ of stream) controller.abort();
    })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(APIUserAbortError);
  });

  it("throws APIConnectionError when the connection breaks mid-stream", async () => {
    const { stream, breakConnection } = setup([event(1)], { end: false });
    const error = await (async () => {
      for await (const _ of stream) breakConnection();
    })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(APIConnectionError);
    expect((error as APIConnectionError).cause).toBeInstanceOf(TypeError);
  });

  it("refuses a second consumer", async () => {
    const { stream } = setup([event(1), DONE]);
    await collect(stream);
    expect(() => stream.toReadableStream()).toThrow(/already consumed/);
  });
});

describe("toReadableStream", () => {
  it("forwards comments and event data byte for byte and ends with [DONE]", async () => {
    const original = '{"n":1,  "spaced":"kept as sent"}';
    const { stream } = setup([": keep-alive\n\n", `data: ${original}\n\n`, DONE]);
    expect(await readAll(stream.toReadableStream())).toBe(
      `: keep-alive\n\ndata: ${original}\n\ndata: [DONE]\n\n`,
    );
  });

  it("passes a mid-stream error event on as it came, as the last event", async () => {
    const failed =
      'data: {"id":"gen-1","choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}],"error":{"code":502,"message":"Provider returned error"}}\n\n';
    const { stream } = setup([event(1), failed, DONE]);
    expect(await readAll(stream.toReadableStream())).toBe(`${event(1)}${failed}`);
  });

  it("ends with OpenRouter's mid-stream error chunk, under the last chunk's id and model, when the connection breaks", async () => {
    const chunk = '{"id":"gen-7","object":"chat.completion.chunk","created":5,"model":"m/x","choices":[]}';
    const { stream, breakConnection } = setup([`data: ${chunk}\n\n`], { end: false });
    const reader = stream.toReadableStream().getReader();
    const decoder = new TextDecoder();
    let text = decoder.decode((await reader.read()).value);
    breakConnection();
    for (let next = await reader.read(); !next.done; next = await reader.read())
      text += decoder.decode(next.value);
    const last = JSON.parse(
      text
        .trim()
        .split("\n\n")
        .at(-1)
        ?.replace(/^data: /, "") ?? "",
    );
    expect(last).toEqual({
      id: "gen-7",
      object: "chat.completion.chunk",
      created: 5,
      model: "m/x",
      choices: [{ index: 0, delta: { content: "" }, finish_reason: "error" }],
      error: { code: "connection_error", message: "The connection to Wattfare broke mid-stream." },
    });
  });

  it("aborts the request when the reader cancels (the browser left)", async () => {
    const { stream, log } = setup([event(1)], { end: false });
    const reader = stream.toReadableStream().getReader();
    expect((await reader.read()).done).toBe(false);
    await reader.cancel();
    expect(log.aborts).toBeGreaterThanOrEqual(1);
    expect(log.releases).toBe(1);
  });
});
