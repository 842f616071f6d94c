/**
 * `@wattfare/sdk/browser`: the Wattfare SDK for app pages. It opens Wattfare's consent popup, reads
 * the signed-in user's connection with short-lived session tokens from your backend, and turns the
 * errors your backend relays into the popup that fixes them. No secret key, no Node APIs: it runs from
 * a bundler or straight from a `<script type="module">`.
 */
export type { ChatCompletionChunk } from "../core/chat-types.js";
export {
  type ClientErrorCode,
  type ConsentErrorCode,
  ERROR_CODES,
  type ErrorCode,
  type WattfareErrorCode,
} from "../core/error-codes.js";
export {
  APIConnectionError,
  APIConnectionTimeoutError,
  APIError,
  APIUserAbortError,
  AuthError,
  BudgetExceededError,
  ConsentDeniedError,
  ConsentFailedError,
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
  PopupBlockedError,
  PopupClosedError,
  RateLimitedError,
  UnavailableError,
  UpstreamError,
  WattfareError,
} from "../core/errors.js";
export type { Fetch } from "../core/http.js";
export type { Logger } from "../core/logger.js";
export { Stream } from "../core/stream.js";
export type { ConnectionStatus, Session } from "../core/types.js";
export { type BrowserClientEvents, createWattfare, WattfareBrowser } from "./client.js";
export type { BrowserClientOptions, ConsentOptions, GrantRequestOptions } from "./client-options.js";
export type { ConsentIntent } from "./consent-popup.js";
export { RECOVERABLE_CODES, type RecoverableCode, type Recovery } from "./recovery.js";
export { errorFromResponse, readChatStream, sessionEndpoint } from "./responses.js";
export type { SessionTokenSource } from "./session-tokens.js";
