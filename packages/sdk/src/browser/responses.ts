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
 * event inside the stream as an `UpstreamError`. Leaving the loop early cancels the response body.
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
  let aborted = false;
  const control: StreamControl = {
    // The page's fetch owns the request; stopping means cancelling the body, which the reader does.
    abort: () => {
      aborted = true;
    },
    get aborted() {
      return aborted || options.signal?.aborted === true;
    },
    get userAborted() {
      return options.signal?.aborted === true;
    },
    release: () => {},
  };
  return new Stream<ChatCompletionChunk>(response, control);
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
