/**
 * @wattfare/server: the broker as a library. The CLI (`wattfare serve`) is the usual way to run it;
 * these exports let another process embed it (the demo, the benchmark, SDK tests).
 */
export { buildApp } from "./app.js";
export { type Config, ConfigError, loadConfig } from "./config.js";
export type { AppDeps, Clock } from "./deps.js";
export { ApiError, ERROR_CODES, type ErrorCode, errorBody, isErrorCode } from "./errors.js";
export { createLogger } from "./logger.js";
export type { MailMessage, MailPort } from "./mail/index.js";
export { createApp } from "./modules/apps/index.js";
export type { ConnectionStatus } from "./modules/connections/index.js";
export { type RunningServer, type StartOptions, startServer } from "./server.js";
