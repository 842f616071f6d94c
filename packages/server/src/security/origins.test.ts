import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isLocalOrigin, parseOrigin } from "./origins.js";

describe("parseOrigin accepts and normalizes", () => {
  it.each([
    ["https://app.example.com", "https://app.example.com"],
    ["https://example.com:8443", "https://example.com:8443"],
    ["HTTPS://App.Example.COM", "https://app.example.com"],
    ["https://example.com:443", "https://example.com"],
    ["https://example.com/", "https://example.com"],
    ["https://example.com:443/", "https://example.com"],
    ["  https://example.com \n", "https://example.com"],
    ["https://example.com:08443", "https://example.com:8443"],
    ["https://xn--bcher-kva.example", "https://xn--bcher-kva.example"],
    ["https://a-b.c-d.example", "https://a-b.c-d.example"],
    ["https://intranet", "https://intranet"],
    ["https://localhost:3000", "https://localhost:3000"],
    ["http://localhost", "http://localhost"],
    ["http://localhost:80", "http://localhost"],
    ["http://localhost:5173", "http://localhost:5173"],
    ["HTTP://LOCALHOST:5173", "http://localhost:5173"],
    ["http://127.0.0.1:8080", "http://127.0.0.1:8080"],
    ["https://127.0.0.1", "https://127.0.0.1"],
    ["http://127.0.0.1:443", "http://127.0.0.1:443"],
  ])("%s → %s", (input, origin) => {
    expect(parseOrigin(input)).toEqual({ ok: true, origin });
  });
});

describe("parseOrigin refuses", () => {
  it.each([
    ["http on a public host", "http://example.com", "http is only allowed"],
    ["http on a localhost subdomain", "http://app.localhost", "http is only allowed"],
    ["another scheme", "ftp://example.com", "scheme must be https"],
    ["a javascript: URL", "javascript:alert(1)", "expected scheme://host"],
    ["no scheme", "example.com", "expected scheme://host"],
    ["a single slash", "https:/example.com", "expected scheme://host"],
    ["the null origin", "null", "expected scheme://host"],
    ["an empty string", "", "origin is empty"],
    ["a path", "https://example.com/app", "a path is not allowed"],
    ["a double slash", "https://example.com//", "a path is not allowed"],
    ["a backslash", "https://example.com\\foo", "a path is not allowed"],
    ["a query", "https://example.com?x=1", "a query is not allowed"],
    ["a fragment", "https://example.com#top", "a fragment is not allowed"],
    ["userinfo", "https://user:pass@example.com", "userinfo"],
    ["userinfo hiding the real host", "https://example.com@evil.test", "userinfo"],
    ["a wildcard subdomain", "https://*.example.com", "wildcards are not allowed"],
    ["a bare wildcard", "*", "expected scheme://host"],
    ["an IPv4 literal", "https://10.0.0.1", "IP literals"],
    ["a short IPv4 form of loopback", "http://127.1", "IP literals"],
    ["a decimal IPv4 form", "https://2130706433", "IP literals"],
    ["a hex IPv4 form", "https://0x7f.0.0.1", "IP literals"],
    ["a numeric last label", "https://example.123", "IP literals"],
    ["an IPv6 literal", "https://[::1]", "IP literals"],
    ["an IPv6 literal with port", "http://[::1]:3000", "IP literals"],
    ["a trailing dot", "https://example.com.", "trailing dot"],
    ["a trailing dot on localhost", "http://localhost.:3000", "trailing dot"],
    ["an empty label", "https://example..com", "invalid host name"],
    ["a leading hyphen", "https://-example.com", "invalid host name"],
    ["an underscore", "https://my_app.example.com", "invalid host name"],
    ["a percent-encoded host", "https://ex%61mple.com", "invalid host name"],
    ["a space in the host", "https://exa mple.com", "invalid host name"],
    ["a Unicode host", "https://bücher.example", "punycode"],
    ["an over-long label", `https://${"a".repeat(64)}.com`, "invalid host name"],
    ["an empty host", "https://", "missing host"],
    ["an empty host with port", "https://:443", "missing host"],
    ["an empty port", "https://example.com:", "invalid port"],
    ["a non-numeric port", "https://example.com:https", "invalid port"],
    ["port zero", "https://example.com:0", "port out of range"],
    ["a port above 65535", "https://example.com:65536", "port out of range"],
    ["an over-long input", `https://${"a".repeat(3000)}.com`, "too long"],
    [
      "two origins, as node:http joins a repeated header",
      "https://a.example, https://b.example",
      "more than one origin",
    ],
    ["an origin list", "https://a.example https://b.example", "more than one origin"],
  ])("%s (%s)", (_label, input, reason) => {
    const result = parseOrigin(input);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toContain(reason);
  });
});

describe("parseOrigin properties", () => {
  const label = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}[a-z0-9]$/);
  const host = fc.array(label, { minLength: 1, maxLength: 4 }).map((labels) => labels.join("."));
  const input = fc.record({
    host,
    port: fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
    upper: fc.boolean(),
  });

  it("is idempotent and agrees with the WHATWG origin of what it returns", () => {
    fc.assert(
      fc.property(input, ({ host, port, upper }) => {
        const raw = `https://${host}${port === undefined ? "" : `:${port}`}`;
        const first = parseOrigin(upper ? raw.toUpperCase() : raw);
        expect(first.ok).toBe(true);
        if (!first.ok) return;
        expect(parseOrigin(first.origin)).toEqual(first);
        expect(new URL(first.origin).origin).toBe(first.origin);
        expect(new URL(raw).origin).toBe(first.origin);
      }),
    );
  });

  it("never throws on arbitrary input", () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        expect(() => parseOrigin(text)).not.toThrow();
        expect(() => parseOrigin(`https://${text}`)).not.toThrow();
      }),
    );
  });
});

describe("isLocalOrigin", () => {
  it.each([
    ["http://localhost:3000", true],
    ["http://127.0.0.1", true],
    ["https://localhost", true],
    ["HTTP://LOCALHOST:5173", true],
    ["https://example.com", false],
    ["https://localhost.example.com", false],
    ["http://app.localhost", false],
    ["http://[::1]:3000", false],
    ["not an origin", false],
  ])("%s → %s", (origin, expected) => {
    expect(isLocalOrigin(origin)).toBe(expected);
  });
});
