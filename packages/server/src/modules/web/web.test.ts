import { describe, expect, it } from "vitest";
import { loadConfig } from "../../config.js";
import { TEST_SECRET } from "../../testing/harness.js";
import { parseCookies, serializeCookie } from "./cookies.js";
import { parseUrlEncoded, safeReturnTo, withQuery } from "./forms.js";
import { escapeHtml, html, SafeHtml } from "./html.js";
import { securityHeaders } from "./page.js";

const config = loadConfig(
  {
    WATTFARE_SERVER_SECRET: TEST_SECRET,
    WATTFARE_PUBLIC_URL: "https://pay.example",
    WATTFARE_OPENROUTER_AUTH_URL: "https://openrouter.ai/auth",
  },
  "/tmp",
);

describe("html", () => {
  it("escapes every interpolated string, in content and attributes", () => {
    const evil = `"><script>alert('x')</script>&`;
    expect(html`<p title="${evil}">${evil}</p>`.value).toBe(
      `<p title="&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;">&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;</p>`,
    );
  });

  it("keeps nested SafeHtml, joins arrays and renders nothing for false, null and undefined", () => {
    const items = ["a<b", "c"].map((t) => html`<li>${t}</li>`);
    expect(html`<ul>${items}</ul>${false}${null}${undefined}${0}`.value).toBe(
      "<ul><li>a&lt;b</li><li>c</li></ul>0",
    );
    expect(html`${new SafeHtml("<br>")}`.value).toBe("<br>");
    expect(escapeHtml("a&b")).toBe("a&amp;b");
  });
});

describe("cookies", () => {
  it("parses a Cookie header, first occurrence winning", () => {
    expect([...parseCookies('a=1; b="2"; a=3; junk; =x')]).toEqual([
      ["a", "1"],
      ["b", "2"],
    ]);
    expect(parseCookies(undefined).size).toBe(0);
  });

  it("always writes httpOnly, SameSite=Lax, Path=/ and adds Secure and Max-Age when asked", () => {
    expect(serializeCookie("s", "abc", { secure: false })).toBe("s=abc; Path=/; HttpOnly; SameSite=Lax");
    expect(serializeCookie("__Host-s", "abc", { secure: true, maxAgeSeconds: 60 })).toBe(
      "__Host-s=abc; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=60",
    );
    expect(() => serializeCookie("s", "a;b", { secure: false })).toThrow(RangeError);
  });
});

describe("forms", () => {
  it("parses url-encoded bodies, keeping the first of repeated names", () => {
    expect(parseUrlEncoded("a=1&b=x+y&a=2&c=%F0%9F%94%91")).toEqual({ a: "1", b: "x y", c: "🔑" });
  });

  it.each([
    ["/connect?step=fund", "/connect?step=fund"],
    ["/account", "/account"],
    ["", "/account"],
    ["https://evil.example/", "/account"],
    ["https://pay.example/account", "/account"],
    ["//evil.example/", "/account"],
    ["/\\evil.example", "/account"],
    ["/.//evil.example/", "/account"],
    ["/..//evil.example/", "/account"],
    ["/%2e//evil.example/", "/account"],
    ["/a/..//evil.example", "/account"],
    ["/a/../b", "/b"],
    ["/a b", "/account"],
    ["javascript:alert(1)", "/account"],
    ["/x#frag", "/x"],
    [`/${"a".repeat(1100)}`, "/account"],
  ])("safeReturnTo(%j) → %j", (input, expected) => {
    expect(safeReturnTo(input, config)).toBe(expected);
  });

  it("sets query parameters on a path", () => {
    expect(withQuery("/connect?step=fund&funding=old", { funding: "connected" })).toBe(
      "/connect?step=fund&funding=connected",
    );
    expect(withQuery("/account", { funding: "removed" })).toBe("/account?funding=removed");
  });
});

describe("securityHeaders", () => {
  it("forbids framing and scripts, allows form posts to OpenRouter's authorize page, and never sets COOP", () => {
    const headers = securityHeaders(config);
    const csp = headers["content-security-policy"];
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("script-src 'none'");
    expect(csp).toContain("form-action 'self' https://openrouter.ai");
    expect(headers["referrer-policy"]).toBe("same-origin");
    expect(Object.keys(headers)).not.toContain("cross-origin-opener-policy");
  });

  it("asks browsers to keep to https (HSTS) when the public URL is https, and only then", () => {
    expect(securityHeaders(config)["strict-transport-security"]).toBe("max-age=31536000");
    const local = loadConfig({
      WATTFARE_SERVER_SECRET: TEST_SECRET,
      WATTFARE_PUBLIC_URL: "http://localhost:8787",
    });
    expect(securityHeaders(local)).not.toHaveProperty("strict-transport-security");
  });

  it("allows exactly one nonce-bearing script when a page has one", () => {
    expect(securityHeaders(config, "bm9uY2U=")["content-security-policy"]).toContain(
      "script-src 'nonce-bm9uY2U='",
    );
  });
});
