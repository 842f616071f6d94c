/**
 * The promise every SDK method returns: await it for the data, or call `withResponse()` for the data
 * and the raw `Response` (headers such as `x-request-id` and `x-wattfare-max-tokens`), as in openai-node.
 */

/**
 * The data with the response it came from.
 *
 * @example
 * ```ts
 * const { data, requestId } = await wattfare.status("user_123").withResponse();
 * ```
 */
export interface WithResponse<T> {
  data: T;
  /** The HTTP response; for a stream its body is being read by the stream. */
  response: Response;
  /** Wattfare's `x-request-id`: quote it when asking for support. */
  requestId: string | undefined;
}

/**
 * A `Promise<T>` with one extra method, `withResponse()`.
 *
 * @example
 * ```ts
 * const { data: completion, response } = await wattfare.chat.completions
 *   .create({ model: "openai/gpt-4o-mini", messages: [{ role: "user", content: "Hi" }] }, { user: "user_123" })
 *   .withResponse();
 * // Wattfare lowered max_tokens to fit the user's remaining budget:
 * response.headers.get("x-wattfare-max-tokens");
 * ```
 */
export class APIPromise<T> extends Promise<T> {
  readonly #result: Promise<WithResponse<T>>;

  /** @internal */
  constructor(result: Promise<WithResponse<T>>) {
    // The base promise never settles and holds nothing: every method below delegates to `result`.
    super(() => {});
    this.#result = result;
  }

  /** Derived promises (`then`, `catch`, …) are plain promises, not APIPromises. */
  static override get [Symbol.species](): PromiseConstructor {
    return Promise;
  }

  /**
   * Resolves to the data together with the raw response and request id.
   *
   * @example
   * ```ts
   * const { data: session, requestId } = await wattfare.sessions.create({ appUserId: "u1" }).withResponse();
   * ```
   */
  withResponse(): Promise<WithResponse<T>> {
    return this.#result;
  }

  // biome-ignore lint/suspicious/noThenProperty: a Promise subclass must override then() to delegate.
  override then<A = T, B = never>(
    onfulfilled?: ((value: T) => A | PromiseLike<A>) | null,
    onrejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    return this.#result.then((result) => result.data).then(onfulfilled, onrejected);
  }

  override catch<B = never>(onrejected?: ((reason: unknown) => B | PromiseLike<B>) | null): Promise<T | B> {
    return this.then(undefined, onrejected);
  }

  override finally(onfinally?: (() => void) | null): Promise<T> {
    return this.then().finally(onfinally);
  }
}
