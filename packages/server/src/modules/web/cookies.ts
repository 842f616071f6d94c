/** Minimal cookie reading and writing (RFC 6265), enough for Wattfare's own httpOnly cookies. */

/** Cookie values from a `Cookie` header; the first occurrence of a name wins. */
export function parseCookies(header: string | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  if (header === undefined) return cookies;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq === -1) continue;
    const name = part.slice(0, eq).trim();
    let value = part.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
    if (name !== "" && !cookies.has(name)) cookies.set(name, value);
  }
  return cookies;
}

export interface CookieOptions {
  /** Seconds; omitted = a browser-session cookie; 0 deletes the cookie. */
  maxAgeSeconds?: number;
  secure: boolean;
}

const TOKEN = /^[A-Za-z0-9_.-]+$/;

/**
 * A `Set-Cookie` value: always httpOnly, SameSite=Lax (the OAuth callback is a cross-site top-level
 * navigation and must still carry the session), Path=/ and no Domain (so `__Host-` names are valid).
 */
export function serializeCookie(name: string, value: string, options: CookieOptions): string {
  if (!TOKEN.test(name) || (value !== "" && !TOKEN.test(value))) {
    throw new RangeError("cookie names and values must be URL-safe tokens");
  }
  const parts = [`${name}=${value}`, "Path=/", "HttpOnly", "SameSite=Lax"];
  if (options.secure) parts.push("Secure");
  if (options.maxAgeSeconds !== undefined)
    parts.push(`Max-Age=${Math.max(0, Math.floor(options.maxAgeSeconds))}`);
  return parts.join("; ");
}
