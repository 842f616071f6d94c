export type ParsedOrigin = { ok: true; origin: string } | { ok: false; reason: string };

/** The only hosts allowed over plain http (DESIGN.md "Identifiers and keys"). */
const LOCAL_HOSTS: ReadonlySet<string> = new Set(["localhost", "127.0.0.1"]);
const DEFAULT_PORTS: Readonly<Record<string, string>> = { https: "443", http: "80" };
const SCHEME_PATTERN = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;
const LABEL_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const MAX_HOST_LENGTH = 253;
const MAX_INPUT_LENGTH = 2048;

/**
 * True when `text` is several origins, not one: separated by commas (node:http joins an `Origin` header
 * sent twice with ", ") or spaces (an RFC 6454 origin list), each with a scheme. A browser sends one.
 *
 * @example
 * isOriginList("https://a.example, https://b.example"); // true
 * isOriginList("https://exa mple.com");                 // false: one (invalid) origin
 */
export function isOriginList(text: string): boolean {
  if (!/[\s,]/.test(text)) return false;
  const parts = text.split(/[\s,]+/).filter((part) => part.length > 0);
  return parts.length > 1 && parts.every((part) => SCHEME_PATTERN.test(part) || part === "null");
}

function fail(reason: string): ParsedOrigin {
  return { ok: false, reason };
}

// WHATWG URL parses a host whose last label is numeric (or 0x-hex) as an IPv4 address, so
// "https://2130706433" and "https://a.0x7f" are really IPs; treat all such hosts as IP literals.
function looksLikeIpv4(host: string): boolean {
  const last = host.split(".").at(-1) ?? "";
  return /^[0-9]+$/.test(last) || /^0x[0-9a-f]*$/.test(last);
}

function checkHost(host: string): string | undefined {
  if (host.length === 0) return "missing host";
  if (host.startsWith("[")) return "IP literals other than 127.0.0.1 are not allowed";
  if (host.includes("*")) return "wildcards are not allowed; list each origin exactly";
  // Browsers send the punycode form in Origin, so a Unicode host could never match exactly.
  if (/[\u0080-\uffff]/.test(host)) return "non-ASCII host; use its punycode (xn--) form";
  if (host.endsWith(".")) return "a trailing dot in the host is not allowed";
  if (host === "127.0.0.1") return undefined;
  if (looksLikeIpv4(host)) return "IP literals other than 127.0.0.1 are not allowed";
  if (host.length > MAX_HOST_LENGTH) return "host is too long";
  if (!host.split(".").every((label) => LABEL_PATTERN.test(label))) return "invalid host name";
  return undefined;
}

function checkPort(port: string): string | undefined {
  if (!/^[0-9]{1,5}$/.test(port)) return "invalid port";
  const value = Number(port);
  if (value < 1 || value > 65535) return "port out of range";
  return undefined;
}

/**
 * Parses an app origin into its one canonical spelling `scheme://host[:port]` (lower-case, default port
 * dropped), the exact string browsers send in `Origin`, so a registered origin can be compared with `===`.
 *
 * https only, except `http://localhost` and `http://127.0.0.1` on any port. Refused: paths (a lone
 * trailing "/" is tolerated and dropped, as pasted from an address bar), query, fragment, userinfo,
 * wildcards, IP literals other than 127.0.0.1, Unicode hosts, trailing dots, empty or bad ports.
 *
 * @example
 * parseOrigin("HTTPS://App.Example.com:443"); // { ok: true, origin: "https://app.example.com" }
 * parseOrigin("https://*.example.com");        // { ok: false, reason: "wildcards are not allowed; …" }
 */
export function parseOrigin(input: string): ParsedOrigin {
  if (typeof input !== "string") return fail("origin must be a string");
  const text = input.trim();
  if (text.length === 0) return fail("origin is empty");
  if (text.length > MAX_INPUT_LENGTH) return fail("origin is too long");
  if (isOriginList(text)) return fail("more than one origin; give exactly one");
  const schemeMatch = SCHEME_PATTERN.exec(text);
  if (schemeMatch === null) return fail("expected scheme://host[:port]");
  const scheme = (schemeMatch[1] ?? "").toLowerCase();
  if (scheme !== "https" && scheme !== "http") return fail("scheme must be https");

  let rest = text.slice(schemeMatch[0].length);
  if (rest.endsWith("/")) rest = rest.slice(0, -1);
  if (rest.includes("@")) return fail("userinfo (user@) is not allowed");
  if (/[/\\]/.test(rest)) return fail("a path is not allowed; give scheme://host[:port] only");
  if (rest.includes("?")) return fail("a query is not allowed");
  if (rest.includes("#")) return fail("a fragment is not allowed");

  let host = rest;
  let port: string | undefined;
  if (!rest.startsWith("[")) {
    const colon = rest.lastIndexOf(":");
    if (colon !== -1) {
      host = rest.slice(0, colon);
      port = rest.slice(colon + 1);
    }
  }
  host = host.toLowerCase();
  const hostProblem = checkHost(host);
  if (hostProblem !== undefined) return fail(hostProblem);
  if (port !== undefined) {
    const portProblem = checkPort(port);
    if (portProblem !== undefined) return fail(portProblem);
    port = String(Number(port)); // "08080" → "8080", as browsers serialise it
    if (port === DEFAULT_PORTS[scheme]) port = undefined;
  }
  if (scheme === "http" && !LOCAL_HOSTS.has(host)) {
    return fail("http is only allowed for localhost and 127.0.0.1; use https");
  }

  const origin = port === undefined ? `${scheme}://${host}` : `${scheme}://${host}:${port}`;
  // Belt and braces: the canonical form must be exactly what the WHATWG parser reports as the origin,
  // otherwise a browser's Origin header could never equal it.
  let whatwg: string;
  try {
    whatwg = new URL(origin).origin;
  } catch {
    return fail("not a valid origin");
  }
  if (whatwg !== origin) return fail("not a valid origin");
  return { ok: true, origin };
}

/**
 * True for an origin on localhost or 127.0.0.1 (any scheme and port): where plain http is allowed and
 * cookies need not be Secure. False for anything {@link parseOrigin} refuses.
 */
export function isLocalOrigin(origin: string): boolean {
  const parsed = parseOrigin(origin);
  if (!parsed.ok) return false;
  return LOCAL_HOSTS.has(new URL(parsed.origin).hostname);
}
