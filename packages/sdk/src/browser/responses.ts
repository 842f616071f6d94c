/**
 * Helpers for the page's calls to its own backend: turning an error answer into the SDK's typed error
 * (so `recover()` knows what to fix), reading a chat stream piped through the backend, and fetching
 * session tokens from the app's session endpoint.
 */
import type { ChatCompletionChunk } from "../core/chat-types.js";
import { APIError } from "../core/errors.js";
import { Stream, type StreamControl } from "../core/stream.js";
import type { Session } from "../core/types.js";

/**
 * The typed error for an error response from your backend that relays Wattfare's error body
 * (`{error:{code,message}}`, as the server SDK's handlers and the README's examples send it): a
 * `BudgetExceededError` for `budget_exceeded`, and so on. Any other body is typed by its status.
 *
 * @example
 * ```ts
 * const response = await fetch("/api/chat", { method: "POST", body });
 * if (!response.ok) throw await errorFromResponse(response);
 * ```
 */
export async function errorFromResponse(response: Response): Promise<APIError> {
  let body: unknown;
  try {
    body = JSON.parse(await response.text());
  } catch {
    body = undefined;
  }
  return APIError.generate(response.status, body, response.headers);
}

/**
 * Reads a chat completion stream that your backend piped through from Wattfare (the SSE bytes of the
 * server SDK's `stream.toReadableStream()`). An error answer is thrown as its typed error, an error
 * event inside the stream as an `UpstreamError`. Leaving the loop early, `stream.abort()` or the `signal`
 * cancels the response body at once, even while a read is waiting.
 *
 * @example
 * ```ts
 * const response = await fetch("/api/chat", { method: "POST", body: JSON.stringify({ messages }) });
 * for await (const chunk of await readChatStream(response)) {
 *   output.textContent += chunk.choices[0]?.delta.content ?? "";
 * }
 * ```
 */
export async function readChatStream(
  response: Response,
  options: { signal?: AbortSignal | undefined } = {},
): Promise<Stream<ChatCompletionChunk>> {
  if (!response.ok) throw await errorFromResponse(response);
  const { signal } = options;
  // The page's fetch owns the request; stopping means cancelling the body. The stream's reader holds
  // the body's lock, so it reads through a body of our own that `stop` can end at once, even while a
  // read is waiting on the network.
  const source = response.body?.getReader();
  let output: ReadableStreamDefaultController<Uint8Array> | undefined;
  let stopped = false;
  const body =
    source &&
    new ReadableStream<Uint8Array>({
      start(controller) {
        output = controller;
      },
      async pull(controller) {
        const { value, done } = await source.read();
        if (stopped) return;
        if (done) controller.close();
        else controller.enqueue(value);
      },
      cancel: (reason) => source.cancel(reason),
    });
  const stop = () => {
    if (stopped) return;
    stopped = true;
    signal?.removeEventListener("abort", stop);
    output?.error(new DOMException("The stream was aborted.", "AbortError"));
    source?.cancel().catch(() => undefined);
  };
  signal?.addEventListener("abort", stop, { once: true });
  if (signal?.aborted) stop();
  const control: StreamControl = {
    abort: stop,
    get aborted() {
      return stopped;
    },
    get userAborted() {
      return signal?.aborted === true;
    },
    release: () => signal?.removeEventListener("abort", stop),
  };
  const own = new Response(body ?? null, { status: response.status, headers: response.headers });
  return new Stream<ChatCompletionChunk>(own, control);
}

/**
 * A `getSessionToken` that POSTs to your session endpoint (such as one made with the server SDK's
 * `createSessionHandler`) with the page's cookies. An error answer is thrown as its typed error: a
 * signed-out user gets an `AuthError`.
 *
 * @example
 * ```ts
 * const wattfare = createWattfare({
 *   baseUrl: "https://wattfare.com",
 *   getSessionToken: sessionEndpoint("/api/wattfare/session"),
 * });
 * ```
 */
export function sessionEndpoint(url: string, init: RequestInit = {}): () => Promise<Session> {
  return async () => {
    const response = await fetch(url, { method: "POST", credentials: "same-origin", ...init });
    if (!response.ok) throw await errorFromResponse(response);
    return (await response.json()) as Session;
  };
}
