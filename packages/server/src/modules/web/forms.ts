/**
 * What every Wattfare form handler checks, and the helpers it uses: the same-origin rule, form fields,
 * and the `returnTo` that lets the consent popup reuse the sign-in, sign-up and funding steps.
 */
import type { FastifyRequest } from "fastify";
import type { Config } from "../../config.js";
import { ApiError } from "../../errors.js";

/**
 * Refuses a state-changing request unless it comes from Wattfare's own pages: `Origin` equal to the
 * public URL, or `Sec-Fetch-Site: same-origin` (a browser sends `Origin: null` for some same-origin
 * posts; both headers are forbidden to page scripts, so another site cannot fake either).
 */
export function assertSameOrigin(request: FastifyRequest, config: Config): void {
  const origin = request.headers.origin;
  const site = request.headers["sec-fetch-site"];
  if (origin === config.publicUrl || site === "same-origin") return;
  throw new ApiError("forbidden", "This form can only be sent from Wattfare's own pages.");
}

/** The string fields of a parsed form (or JSON) body; anything else is ignored. */
export type FormFields = Readonly<Record<string, string>>;

export function formFields(body: unknown): FormFields {
  const fields: Record<string, string> = {};
  if (body === null || typeof body !== "object") return fields;
  for (const [name, value] of Object.entries(body)) {
    if (typeof value === "string") fields[name] = value;
  }
  return fields;
}

/** application/x-www-form-urlencoded → fields; a repeated name keeps its first value. */
export function parseUrlEncoded(text: string): FormFields {
  const fields: Record<string, string> = {};
  for (const [name, value] of new URLSearchParams(text)) {
    if (!Object.hasOwn(fields, name)) fields[name] = value;
  }
  return fields;
}

/** A query parameter as one string ("" when absent or repeated). */
export function queryParam(request: FastifyRequest, name: string): string {
  const query = request.query as Record<string, unknown> | undefined;
  const value = query?.[name];
  return typeof value === "string" ? value : "";
}

export const DEFAULT_RETURN_TO = "/account";
const MAX_RETURN_TO = 1024;

/**
 * A same-origin path (with query) to go back to after a step, or the fallback. Absolute URLs,
 * protocol-relative `//host`, backslashes, spaces and non-ASCII are refused: no open redirect.
 *
 * @example
 * safeReturnTo("/connect?step=fund", config); // "/connect?step=fund"
 * safeReturnTo("https://evil.example/", config); // "/account"
 */
export function safeReturnTo(
  value: string | undefined,
  config: Config,
  fallback = DEFAULT_RETURN_TO,
): string {
  if (value === undefined || value === "" || value.length > MAX_RETURN_TO) return fallback;
  if (!value.startsWith("/") || value.startsWith("//") || /[^\x21-\x7e]|\\/.test(value)) return fallback;
  let url: URL;
  try {
    url = new URL(value, config.publicUrl);
  } catch {
    return fallback;
  }
  if (url.origin !== config.publicUrl) return fallback;
  // The parser resolves `.` and `..` segments: `/.//evil.example` becomes the path `//evil.example`,
  // which a browser would read as another host. Check what is returned, not only what came in.
  if (url.pathname.startsWith("//")) return fallback;
  return `${url.pathname}${url.search}`;
}

/** `path` with `params` set in its query (existing values replaced). */
export function withQuery(path: string, params: Record<string, string>): string {
  const url = new URL(path, "http://wattfare.invalid");
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  return `${url.pathname}${url.search}`;
}
