/**
 * The server client. Construction is the only place the environment is read; after that the secret key
 * lives in a private field and in the closure that writes the `Authorization` header, never in a
 * property that `JSON.stringify`, `util.inspect` or a logger could print.
 */
import { APIPromise } from "../core/api-promise.js";
import { API_PATH, parseWattfareOrigin } from "../core/base-url.js";
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionCreateParams,
  ChatCompletionCreateParamsNonStreaming,
  ChatCompletionCreateParamsStreaming,
} from "../core/chat-types.js";
import {
  type Fetch,
  HttpClient,
  type RequestOptions,
  retriesOption,
  type Sleep,
  timeoutOption,
  timerSleep,
} from "../core/http.js";
import { consoleWarnings, type Logger } from "../core/logger.js";
import type { Stream } from "../core/stream.js";
import type { ConnectionStatus, GrantStatus, GrantTerms, Session } from "../core/types.js";

/** Wattfare's hosted origin, from the API reference. */
const DEFAULT_BASE_URL = "https://wattfare.com";
/** Like openai-node: a long non-streamed completion arrives all at once, after generation. */
const DEFAULT_TIMEOUT_MS = 10 * 60 * 1000;
const DEFAULT_MAX_RETRIES = 2;
const USER_HEADER = "x-wattfare-user";
const GRANT_HEADER = "x-wattfare-grant";
/** `sk_{mode}_{appId}_{secret}`; checked loosely so a future key mode needs no SDK release. */
const SECRET_KEY = /^sk_[a-z]+_[a-z0-9]+_[A-Za-z0-9]+$/;

/**
 * Everything `new Wattfare()` accepts. Every field is optional; environment variables fill in the rest.
 *
 * @example
 * ```ts
 * const wattfare = new Wattfare({
 *   secretKey: process.env.MY_WATTFARE_KEY,
 *   baseUrl: "https://wattfare.example.com",
 *   timeoutMs: 60_000,
 *   maxRetries: 3,
 * });
 * ```
 */
export interface ClientOptions {
  /**
   * Your app's secret key, `sk_live_{appId}_{secret}`. Server-side only: it lets anyone spend your
   * users' budgets. Surrounding whitespace (a trailing newline from a secrets file) is ignored.
   *
   * Default: the `WATTFARE_SECRET_KEY` environment variable. One of the two is required.
   */
  secretKey?: string | undefined;
  /**
   * Wattfare's origin, such as `https://wattfare.com` or `http://localhost:8080`, without a path
   * (Wattfare serves its API and pages at the root). Not the API URL: the SDK appends `/api/v1`.
   *
   * Default: the `WATTFARE_BASE_URL` environment variable, else `https://wattfare.com`.
   */
  baseUrl?: string | undefined;
  /**
   * The `fetch` used for every request, e.g. to add tracing or a proxy agent.
   *
   * Default: `globalThis.fetch`.
   */
  fetch?: Fetch | undefined;
  /**
   * Time limit per attempt, in milliseconds: until the whole body has arrived for JSON answers, until
   * the headers for streams (a stream may then run as long as the model writes). Exceeding it throws
   * `APIConnectionTimeoutError`.
   *
   * Default: `600000` (10 minutes).
   */
  timeoutMs?: number | undefined;
  /**
   * How many times an idempotent call (`status`, `sessions.create`, `sessions.createGrant`,
   * `grants.current`) is retried after a network error, a timeout, a 503 marked `x-should-retry: true`
   * or a 429 (waiting as `Retry-After` says, up to 60 s; longer waits are thrown as
   * `RateLimitedError`). Chat completions are never retried: a retry could bill the user twice.
   *
   * Default: `2`.
   */
  maxRetries?: number | undefined;
  /**
   * Receives request lines (`debug`), retries (`info`) and configuration warnings (`warn`). No line
   * ever contains the secret key, a header value or a body.
   *
   * Default: `console`, warnings and errors only.
   */
  logger?: Logger | undefined;
  /**
   * Waits between retries, in milliseconds. Inject one to test retry behaviour without real time.
   *
   * Default: a `setTimeout` that the request's `signal` cancels.
   */
  sleep?: Sleep | undefined;
}

/**
 * Options for a chat completion: whose budget pays — a user's connected budget (`user`) or a one-time
 * grant (`grant`), exactly one of the two — plus the usual request options.
 *
 * @example
 * ```ts
 * const forUser: ChatRequestOptions = { user: "user_123", signal: request.signal };
 * const forGrant: ChatRequestOptions = { grant: grantTokenFromThePage };
 * ```
 */
export type ChatRequestOptions = Omit<RequestOptions, "maxRetries"> &
  (
    | {
        /**
         * Your user's id (1–256 printable ASCII characters, no spaces), sent as `x-wattfare-user`:
         * Wattfare bills this user's connected budget.
         */
        user: string;
        grant?: undefined;
      }
    | {
        /**
         * A one-time grant token (`gt_…`) the payer approved in the browser (`requestGrant()`), sent as
         * `x-wattfare-grant`: Wattfare bills the grant.
         */
        grant: string;
        user?: undefined;
      }
  );

/**
 * What `wattfare.sessions.create()` takes.
 *
 * @example
 * ```ts
 * const params: SessionCreateParams = { appUserId: "user_123", requestLimit: { monthlyUsd: 20 } };
 * ```
 */
export interface SessionCreateParams {
  /** Your user's id: 1–256 printable ASCII characters, no spaces. */
  appUserId: string;
  /**
   * The monthly cap to suggest in the consent popup, in USD. The payer may approve another amount
   * (above it only with an extra confirmation).
   */
  requestLimit?: { monthlyUsd: number } | undefined;
}

/**
 * Options for the official `openai` client and for `@ai-sdk/openai-compatible`, from `openaiOptions()`.
 *
 * @example
 * ```ts
 * const options: OpenAIClientOptions = wattfare.openaiOptions({ user: "user_123" });
 * ```
 */
export interface OpenAIClientOptions {
  /** Wattfare's API root, `{baseUrl}/api/v1`. */
  baseURL: string;
  /** The secret key: keep these options on the server. */
  apiKey: string;
  /** For `new OpenAI(…)`: identifies whose budget pays (`x-wattfare-user` or `x-wattfare-grant`). */
  defaultHeaders: Record<string, string>;
  /** For `createOpenAICompatible(…)`: the same header. */
  headers: Record<string, string>;
  /**
   * For `new OpenAI(…)`: no retries. The openai client retries timeouts and connection errors on any
   * request, and a retried chat completion can bill the user twice.
   */
  maxRetries: 0;
}

const loggers = new WeakMap<Wattfare, Logger>();

/** @internal The client's logger, for the session handler; not part of the public surface. */
export function loggerOf(client: Wattfare): Logger {
  return loggers.get(client) ?? consoleWarnings;
}

/**
 * The Wattfare client for app backends: mint session tokens for the browser SDK, check a user's
 * connection, and run chat completions billed to the user's own budget.
 *
 * @example
 * ```ts
 * import { Wattfare } from "@wattfare/sdk/server";
 *
 * const wattfare = new Wattfare(); // reads WATTFARE_SECRET_KEY and WATTFARE_BASE_URL
 * const completion = await wattfare.chat.completions.create(
 *   { model: "openai/gpt-4o-mini", messages: [{ role: "user", content: "Hello" }] },
 *   { user: "user_123" },
 * );
 * console.log(completion.choices[0]?.message.content);
 * ```
 */
export class Wattfare {
  /** Wattfare's origin this client talks to (no trailing slash, no `/api/v1`). */
  readonly baseUrl: string;
  /** Session tokens for the browser SDK. */
  readonly sessions: Sessions;
  /** One-time grants: check what a grant token has left. */
  readonly grants: Grants;
  /** OpenAI-compatible chat, billed to your users' budgets. */
  readonly chat: { readonly completions: ChatCompletions };
  readonly #secretKey: string;
  readonly #http: HttpClient;

  /**
   * @throws TypeError when there is no usable secret key or `baseUrl`, or when running in a browser.
   */
  constructor(options: ClientOptions = {}) {
    if (typeof (globalThis as { document?: unknown }).document !== "undefined") {
      throw new TypeError(
        "@wattfare/sdk/server holds your secret key and must never run in a browser; use @wattfare/sdk/browser there.",
      );
    }
    const env = typeof process === "undefined" ? {} : process.env;
    const secretKey = (options.secretKey ?? env.WATTFARE_SECRET_KEY ?? "").trim();
    if (secretKey === "") {
      throw new TypeError("Missing secret key: pass { secretKey } or set WATTFARE_SECRET_KEY.");
    }
    if (!SECRET_KEY.test(secretKey)) {
      // Never echo the value: it may be a real credential pasted into the wrong variable.
      throw new TypeError("The secret key is not a Wattfare secret key (expected sk_live_{appId}_{secret}).");
    }
    const logger = options.logger ?? consoleWarnings;
    // A blank variable counts as unset, as for the secret key (a compose file's `${WATTFARE_BASE_URL}`
    // is "" when the host has none); an explicit option is taken as given.
    const envBaseUrl = env.WATTFARE_BASE_URL?.trim() || undefined;
    this.baseUrl = normalizeBaseUrl(options.baseUrl ?? envBaseUrl ?? DEFAULT_BASE_URL, logger);
    this.#secretKey = secretKey;
    this.#http = new HttpClient({
      apiUrl: this.baseUrl + API_PATH,
      fetch: options.fetch ?? ((input, init) => fetch(input, init)),
      timeoutMs: timeoutOption(options.timeoutMs) ?? DEFAULT_TIMEOUT_MS,
      maxRetries: retriesOption(options.maxRetries) ?? DEFAULT_MAX_RETRIES,
      logger,
      sleep: options.sleep ?? timerSleep,
      random: Math.random,
      authorization: () => `Bearer ${secretKey}`,
    });
    this.sessions = new Sessions(this.#http);
    this.grants = new Grants(this.#http);
    this.chat = { completions: new ChatCompletions(this.#http) };
    loggers.set(this, logger);
  }

  /**
   * A user's connection to your app: whether they approved a budget, its cap, what is used and left.
   * Retried on network errors and 429s.
   *
   * @example
   * ```ts
   * const status = await wattfare.status("user_123");
   * if (!status.connected) return { needsConnect: true };
   * ```
   */
  status(appUserId: string, options: RequestOptions = {}): APIPromise<ConnectionStatus> {
    return new APIPromise(
      this.#http.json<ConnectionStatus>({
        ...options,
        method: "GET",
        path: "/status",
        query: { appUserId },
        idempotent: true,
      }),
    );
  }

  /**
   * Options that point the official `openai` client, or the Vercel AI SDK's
   * `@ai-sdk/openai-compatible` provider, at Wattfare on behalf of one user. Server-side only: they
   * contain the secret key. With the AI SDK, also pass `maxRetries: 0` to `generateText`/`streamText`
   * (it retries 5xx, and a retried completion can bill twice).
   *
   * @example
   * ```ts
   * import OpenAI from "openai";
   * const openai = new OpenAI(wattfare.openaiOptions({ user: "user_123" }));
   * const onGrant = new OpenAI(wattfare.openaiOptions({ grant: grantToken })); // a one-time grant pays
   *
   * import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
   * const provider = createOpenAICompatible({ name: "wattfare", ...wattfare.openaiOptions({ user: "user_123" }) });
   * ```
   */
  openaiOptions(options: { user: string } | { grant: string }): OpenAIClientOptions {
    const { user, grant } = options as { user?: string | undefined; grant?: string | undefined };
    const header = payerHeader(user, grant);
    return {
      baseURL: this.baseUrl + API_PATH,
      apiKey: this.#secretKey,
      defaultHeaders: { ...header },
      headers: { ...header },
      maxRetries: 0,
    };
  }

  /** What `JSON.stringify(client)` shows: never the key. */
  toJSON(): { baseUrl: string } {
    return { baseUrl: this.baseUrl };
  }

  /** What `util.inspect(client)` and `console.log(client)` show in Node: never the key. */
  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return `Wattfare { baseUrl: ${JSON.stringify(this.baseUrl)} }`;
  }
}

/**
 * `wattfare.sessions`: session tokens for the browser SDK.
 *
 * @example
 * ```ts
 * const { token, expiresAt } = await wattfare.sessions.create({ appUserId: "user_123" });
 * ```
 */
export class Sessions {
  readonly #http: HttpClient;

  /** @internal */
  constructor(http: HttpClient) {
    this.#http = http;
  }

  /**
   * Mints a 10-minute session token for one of your users, for the browser SDK. Call it from an
   * endpoint that knows who is signed in (see `createSessionHandler`), never with a user id the
   * browser chose.
   *
   * Retried on network errors and 429s: minting changes nothing on the server, so a duplicate only
   * produces a second short-lived token that nobody receives and that expires on its own.
   *
   * @example
   * ```ts
   * const session = await wattfare.sessions.create({ appUserId: "user_123", requestLimit: { monthlyUsd: 20 } });
   * return Response.json(session);
   * ```
   */
  create(params: SessionCreateParams, options: RequestOptions = {}): APIPromise<Session> {
    // Built field by field: Wattfare rejects unknown fields (grant sessions are `createGrant`).
    const body: { appUserId: string; requestLimit?: { monthlyUsd: number } } = {
      appUserId: params.appUserId,
    };
    if (params.requestLimit !== undefined) body.requestLimit = { monthlyUsd: params.requestLimit.monthlyUsd };
    return new APIPromise(
      this.#http.json<Session>({ ...options, method: "POST", path: "/sessions", body, idempotent: true }),
    );
  }

  /**
   * Mints a 10-minute *grant session* token for the browser SDK's `requestGrant()`: the payer sees
   * these terms in the consent popup and approves a one-time grant, for apps without user accounts.
   * `maxUsd` is for the grant's whole life; `maxUses` defaults to unlimited; `expiresInSeconds`
   * (counted from approval) defaults to 24 hours, at most 30 days.
   *
   * Retried on network errors and 429s, like `create`.
   *
   * @example
   * ```ts
   * const session = await wattfare.sessions.createGrant({ maxUsd: 1, maxUses: 5, expiresInSeconds: 3600 });
   * return Response.json(session);
   * ```
   */
  createGrant(terms: GrantTerms, options: RequestOptions = {}): APIPromise<Session> {
    // Field by field, so nothing but the terms reaches Wattfare (it refuses unknown fields).
    const grant: { maxUsd: number; maxUses?: number; expiresInSeconds?: number } = { maxUsd: terms.maxUsd };
    if (terms.maxUses !== undefined) grant.maxUses = terms.maxUses;
    if (terms.expiresInSeconds !== undefined) grant.expiresInSeconds = terms.expiresInSeconds;
    return new APIPromise(
      this.#http.json<Session>({
        ...options,
        method: "POST",
        path: "/sessions",
        body: { grant },
        idempotent: true,
      }),
    );
  }
}

/**
 * `wattfare.grants`: one-time grants approved by payers in the browser.
 *
 * @example
 * ```ts
 * const { status, remainingUsd } = await wattfare.grants.current(grantToken);
 * ```
 */
export class Grants {
  readonly #http: HttpClient;

  /** @internal */
  constructor(http: HttpClient) {
    this.#http = http;
  }

  /**
   * What a grant has left: `status` (`active`, `exhausted`, `expired`, `revoked`), `remainingUsd`,
   * `usesLeft` (null = unlimited) and `expiresAt` (unix seconds). An unknown grant, or another app's,
   * throws `GrantInvalidError`. Retried on network errors and 429s.
   *
   * @example
   * ```ts
   * const grant = await wattfare.grants.current(grantToken);
   * if (grant.status !== "active") return Response.json({ error: { code: "grant_invalid" } }, { status: 402 });
   * ```
   */
  current(grantToken: string, options: RequestOptions = {}): APIPromise<GrantStatus> {
    return new APIPromise(
      this.#http.json<GrantStatus>({
        ...options,
        method: "GET",
        path: "/grants/current",
        headers: { [GRANT_HEADER]: grantToken },
        idempotent: true,
      }),
    );
  }
}

/**
 * `wattfare.chat.completions`: OpenAI-compatible chat, billed to one user's budget.
 *
 * @example
 * ```ts
 * const completion = await wattfare.chat.completions.create(
 *   { model: "openai/gpt-4o-mini", messages: [{ role: "user", content: "Hi" }] },
 *   { user: "user_123" },
 * );
 * ```
 */
export class ChatCompletions {
  readonly #http: HttpClient;

  /** @internal */
  constructor(http: HttpClient) {
    this.#http = http;
  }

  /**
   * Creates a chat completion billed to `options.user`'s budget, or to the one-time grant
   * `options.grant`, in OpenAI's format. With `stream: true` it resolves
   * to a `Stream` of chunks (async-iterable, or `toReadableStream()` for a browser); otherwise to a
   * `ChatCompletion`. Never retried: the provider may have billed even when the answer was lost.
   *
   * A non-stream answer whose provider failed part-way resolves, as OpenRouter sends it: check
   * `choices[0].finish_reason === "error"` (and `choices[0].error`).
   *
   * @throws NotConnectedError, BudgetExceededError, GrantInvalidError, FundingInvalidError (402), RateLimitedError (429),
   *   InvalidRequestError (400), UpstreamError (502), and the other `APIError`s; a `TypeError` unless
   *   `options` has exactly one of `user` and `grant`. All of them reject the promise.
   *
   * @example
   * ```ts
   * const stream = await wattfare.chat.completions.create(
   *   { model: "openai/gpt-4o-mini", messages: [{ role: "user", content: "Tell me a story" }], stream: true },
   *   { user: "user_123" },
   * );
   * for await (const chunk of stream) process.stdout.write(chunk.choices[0]?.delta.content ?? "");
   * ```
   */
  create(
    params: ChatCompletionCreateParamsStreaming,
    options: ChatRequestOptions,
  ): APIPromise<Stream<ChatCompletionChunk>>;
  create(
    params: ChatCompletionCreateParamsNonStreaming,
    options: ChatRequestOptions,
  ): APIPromise<ChatCompletion>;
  create(
    params: ChatCompletionCreateParams,
    options: ChatRequestOptions,
  ): APIPromise<Stream<ChatCompletionChunk> | ChatCompletion>;
  create(
    params: ChatCompletionCreateParams,
    options: ChatRequestOptions,
  ): APIPromise<Stream<ChatCompletionChunk> | ChatCompletion> {
    const { user, grant, ...rest } = options ?? {};
    let headers: Record<string, string>;
    try {
      headers = payerHeader(user, grant);
    } catch (error) {
      // Rejects, as the SDK's other per-call argument checks do, rather than throwing synchronously.
      return new APIPromise<Stream<ChatCompletionChunk> | ChatCompletion>(Promise.reject(error));
    }
    const spec = {
      ...rest,
      method: "POST" as const,
      path: "/chat/completions",
      body: params,
      headers,
      idempotent: false,
    };
    return params.stream === true
      ? new APIPromise<Stream<ChatCompletionChunk> | ChatCompletion>(
          this.#http.stream<ChatCompletionChunk>(spec),
        )
      : new APIPromise<Stream<ChatCompletionChunk> | ChatCompletion>(this.#http.json<ChatCompletion>(spec));
  }
}

function normalizeBaseUrl(value: string, logger: Logger): string {
  const url = parseWattfareOrigin(value);
  if (url.search !== "" || url.hash !== "" || url.username !== "" || url.password !== "") {
    throw new TypeError("baseUrl must be Wattfare's origin, without query, fragment or credentials.");
  }
  if (url.protocol === "http:" && !isLoopback(url.hostname)) {
    logger.warn(
      "baseUrl uses http: to a non-local host; the secret key will cross the network unencrypted.",
      {
        baseUrl: url.origin,
      },
    );
  }
  return url.origin;
}

/** The header naming who pays: exactly one of a user (their connection) or a one-time grant. */
function payerHeader(user: string | undefined, grant: string | undefined): Record<string, string> {
  if ((user === undefined) === (grant === undefined)) {
    throw new TypeError("Pass exactly one of { user } or { grant }: whose budget pays for this completion.");
  }
  return grant === undefined ? { [USER_HEADER]: user ?? "" } : { [GRANT_HEADER]: grant };
}

function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}
