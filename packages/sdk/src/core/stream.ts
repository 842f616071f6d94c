/**
 * A streamed chat completion: an async iterable of chunks that stops the HTTP request when the loop
 * ends early, or a web `ReadableStream` of SSE bytes to hand to a browser. Single consumer, like the
 * response body under it.
 */
import {
  APIConnectionError,
  APIUserAbortError,
  isWattfareError,
  UpstreamError,
  type WattfareError,
} from "./errors.js";
import { decodeSse, encodeSse, type SseItem } from "./sse.js";

/** How a stream controls the request it reads from. */
export interface StreamControl {
  /** Aborts the HTTP request. */
  abort(): void;
  /** True once the request was aborted, by anyone. */
  readonly aborted: boolean;
  /** True when the caller's own `signal` fired. */
  readonly userAborted: boolean;
  /** Detaches timers and signal listeners; called once the stream ends, however it ends. */
  release(): void;
}

const DONE = "[DONE]";

/** The error event each mid-stream `UpstreamError` was read from, so `toReadableStream` can pass it on as sent. */
const failedEvents = new WeakMap<object, SseItem>();

/** What the last chunk said about itself, for an error event of our own to carry. */
interface ChunkIdentity {
  id: string;
  model: string;
  created: number;
}

/**
 * The last event when the stream broke without an error event of its own: OpenRouter's mid-stream error
 * chunk (its one choice finishes with "error" beside a top-level `error`), as Wattfare sends it.
 */
function failureEvent(error: WattfareError, last: ChunkIdentity | undefined): string {
  return JSON.stringify({
    id: last?.id ?? "",
    object: "chat.completion.chunk",
    created: last?.created ?? Math.floor(Date.now() / 1000),
    model: last?.model ?? "",
    choices: [{ index: 0, delta: { content: "" }, finish_reason: "error" }],
    error: { code: error.code, message: error.message },
  });
}

function identityOf(chunk: unknown, previous: ChunkIdentity | undefined): ChunkIdentity | undefined {
  if (typeof chunk !== "object" || chunk === null) return previous;
  const { id, model, created } = chunk as { id?: unknown; model?: unknown; created?: unknown };
  return typeof id === "string" && typeof model === "string" && typeof created === "number"
    ? { id, model, created }
    : previous;
}

/**
 * The chunks of a streamed response. Iterate it with `for await`; leaving the loop early (`break`,
 * `return`, a thrown error) aborts the request, so Wattfare stops the model and bills only what was
 * generated. An error event inside the stream is thrown from the loop as an `UpstreamError`.
 *
 * @example
 * ```ts
 * const stream = await wattfare.chat.completions.create(
 *   { model: "openai/gpt-4o-mini", messages: [{ role: "user", content: "Hi" }], stream: true },
 *   { user: "user_123" },
 * );
 * for await (const chunk of stream) process.stdout.write(chunk.choices[0]?.delta.content ?? "");
 * ```
 */
export class Stream<Item> implements AsyncIterable<Item> {
  readonly #response: Response;
  readonly #control: StreamControl;
  #consumed = false;

  /** @internal Streams are created by `chat.completions.create({ stream: true })`. */
  constructor(response: Response, control: StreamControl) {
    this.#response = response;
    this.#control = control;
  }

  /**
   * Iterates the parsed chunks. Only one consumer: iterate once, or call `toReadableStream()` once.
   *
   * @example
   * ```ts
   * for await (const chunk of stream) if (chunk.usage) console.log(chunk.usage.total_tokens);
   * ```
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<Item, void, undefined> {
    for await (const event of this.#take()) if (event.chunk !== undefined) yield event.chunk;
  }

  /**
   * The stream as SSE bytes (`data: {…}` events, keep-alive comments, a final `data: [DONE]`), ready to
   * be the body of your own response to a browser. Event data is forwarded byte for byte, an error event
   * too (it is the last). If the connection to Wattfare breaks part-way, a last event in OpenRouter's
   * mid-stream error shape says so (`choices[0].finish_reason: "error"` beside `error: {code, message}`,
   * under the last chunk's id and model), as Wattfare's own. Cancelling the returned stream (the browser
   * went away) aborts the request.
   *
   * @example
   * ```ts
   * // In a Fetch-API route (Next.js, Hono, Remix, …):
   * return new Response(stream.toReadableStream(), {
   *   headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
   * });
   * ```
   */
  toReadableStream(): ReadableStream<Uint8Array> {
    const events = this.#take();
    const encoder = new TextEncoder();
    const control = this.#control;
    let cancelled = false;
    let identity: ChunkIdentity | undefined;
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        let bytes: string;
        let last = false;
        try {
          const next = await events.next();
          if (next.done) {
            bytes = encodeSse({ kind: "data", data: DONE });
            last = true;
          } else {
            bytes = encodeSse(next.value.item);
            identity = identityOf(next.value.chunk, identity);
          }
        } catch (error) {
          if (!isWattfareError(error)) throw error;
          const event = failedEvents.get(error);
          bytes = encodeSse(event ?? { kind: "data", data: failureEvent(error, identity) });
          last = true;
        }
        if (cancelled) return;
        controller.enqueue(encoder.encode(bytes));
        if (last) controller.close();
      },
      async cancel() {
        cancelled = true;
        // Abort first: a pull may be waiting on the network, and return() would queue behind it.
        control.abort();
        await events.return(undefined);
      },
    });
  }

  /**
   * Stops the stream and its HTTP request; a loop over it ends quietly.
   *
   * @example
   * ```ts
   * setTimeout(() => stream.abort(), 10_000);
   * ```
   */
  abort(): void {
    this.#control.abort();
  }

  #take(): AsyncGenerator<{ item: SseItem; chunk: Item | undefined }, void, undefined> {
    if (this.#consumed) {
      throw new TypeError("This stream was already consumed: iterate it or call toReadableStream() once.");
    }
    this.#consumed = true;
    return this.#events();
  }

  async *#events(): AsyncGenerator<{ item: SseItem; chunk: Item | undefined }, void, undefined> {
    const control = this.#control;
    const body = this.#response.body;
    let done = false;
    try {
      if (body === null) throw new APIConnectionError({ message: "Wattfare answered without a body." });
      for await (const item of decodeSse(body)) {
        if (item.kind === "comment") {
          yield { item, chunk: undefined };
          continue;
        }
        if (item.data === DONE) break;
        yield { item, chunk: this.#parse(item) };
      }
      done = true;
    } catch (error) {
      if (control.userAborted) throw new APIUserAbortError();
      if (isWattfareError(error)) throw error;
      if (control.aborted) return; // abort() was called on purpose
      throw new APIConnectionError({ message: "The connection to Wattfare broke mid-stream.", cause: error });
    } finally {
      // Leaving early (break, return, an error): stop the request so the model stops generating.
      if (!done) control.abort();
      control.release();
    }
  }

  #parse(item: SseItem & { kind: "data" }): Item {
    let parsed: unknown;
    try {
      parsed = JSON.parse(item.data);
    } catch {
      throw this.#upstreamError("The stream carried an event that is not JSON.");
    }
    const error =
      typeof parsed === "object" && parsed !== null ? (parsed as { error?: unknown }).error : null;
    if (error !== undefined && error !== null) {
      const message = (error as { message?: unknown }).message;
      const failure = this.#upstreamError(
        typeof message === "string" ? message : "The model provider failed mid-stream.",
      );
      failedEvents.set(failure, item);
      throw failure;
    }
    return parsed as Item;
  }

  /**
   * Wattfare sends `{"error":{"code":"upstream",…}}` when the provider's stream breaks, and passes on the
   * provider's own error events (OpenRouter's numeric `code`); either way the provider failed.
   */
  #upstreamError(message: string): WattfareError {
    return new UpstreamError({ status: 502, message, headers: this.#response.headers });
  }
}
