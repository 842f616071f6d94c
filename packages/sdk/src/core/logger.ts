/**
 * The logging port. The SDK logs request lines at `debug`, retries at `info`, and configuration
 * mistakes at `warn`; no line ever carries a credential, a request body or a header value.
 */

/**
 * Anything with these four methods, called as `(message, fields?)`: `console` and winston fit as they
 * are. pino takes its arguments the other way round (`(fields, message)`), so wrap it.
 *
 * @example
 * ```ts
 * import pino from "pino";
 * const log = pino();
 * const wattfare = new Wattfare({
 *   logger: {
 *     debug: (message, fields) => log.debug(fields ?? {}, message),
 *     info: (message, fields) => log.info(fields ?? {}, message),
 *     warn: (message, fields) => log.warn(fields ?? {}, message),
 *     error: (message, fields) => log.error(fields ?? {}, message),
 *   },
 * });
 * ```
 */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

const noop = (): void => {};

/** The default: `console`, warnings and errors only, so a healthy app prints nothing. */
export const consoleWarnings: Logger = {
  debug: noop,
  info: noop,
  warn: (message, fields) => console.warn(`[wattfare] ${message}`, fields ?? ""),
  error: (message, fields) => console.error(`[wattfare] ${message}`, fields ?? ""),
};
