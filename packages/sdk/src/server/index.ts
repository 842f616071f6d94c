/**
 * `@wattfare/sdk/server`: the Wattfare SDK for app backends (Node 20+, and any runtime with `fetch`).
 * It holds your secret key; never import it into browser code.
 */
export { APIPromise, type WithResponse } from "../core/api-promise.js";
export type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionContentPart,
  ChatCompletionCreateParams,
  ChatCompletionCreateParamsNonStreaming,
  ChatCompletionCreateParamsStreaming,
  ChatCompletionMessageParam,
  ChatCompletionMessageToolCall,
  ChatCompletionTool,
} from "../core/chat-types.js";
export {
  type ClientErrorCode,
  ERROR_CODES,
  type ErrorCode,
  type WattfareErrorCode,
} from "../core/error-codes.js";
export {
  APIConnectionError,
  APIConnectionTimeoutError,
  APIError,
  type APIErrorInit,
  APIUserAbortError,
  AuthError,
  BudgetExceededError,
  type ErrorForCode,
  ForbiddenError,
  FundingInvalidError,
  GrantInvalidError,
  InternalError,
  InvalidRequestError,
  isWattfareError,
  NotConnectedError,
  NotFoundError,
  PayloadTooLargeError,
  RateLimitedError,
  UnavailableError,
  UpstreamError,
  WattfareError,
} from "../core/errors.js";
export type { Fetch, RequestOptions, Sleep } from "../core/http.js";
export type { Logger } from "../core/logger.js";
export { Stream } from "../core/stream.js";
export type { ConnectionStatus, GrantStatus, GrantTerms, Session } from "../core/types.js";
export {
  type ChatCompletions,
  type ChatRequestOptions,
  type ClientOptions,
  type Grants,
  type OpenAIClientOptions,
  type SessionCreateParams,
  type Sessions,
  Wattfare,
} from "./client.js";
export { toFetchRequest, toNodeHandler } from "./node.js";
export {
  createGrantSessionHandler,
  createSessionHandler,
  type GetSessionUser,
  type GrantTermsSource,
  type SessionHandler,
  type SessionHandlerOptions,
  type SessionUser,
} from "./session-handler.js";
