/**
 * The logging port. The SDK logs request lines at `debug`, retries at `info`, and configuration
 * mistakes at `warn`; no line ever carries a credential, a request body or a header value.
 */

/**
 * Anything with these four methods: `console`, pino, winston and most loggers fit.
 *
 * @example
 * ```ts
 * import pino from "pino";
 * const wattfare = new Wattfare({ logger: pino() });
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
