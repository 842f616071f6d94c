/**
 * Server-rendered pages: one layout, one tiny stylesheet, one set of security headers.
 *
 * Every page sends `frame-ancestors 'none'` and `Referrer-Policy: same-origin`, and never
 * `Cross-Origin-Opener-Policy`: the consent popup must keep its `window.opener` (DESIGN.md "Core flows").
 */
import { randomBytes } from "node:crypto";
import type { FastifyReply } from "fastify";
import type { Config } from "../../config.js";
import { html, SafeHtml } from "./html.js";

export const STYLESHEET_PATH = "/assets/wattfare.css";
export const ICON_PATH = "/assets/wattfare.svg";

/** The tab icon: a bolt (Wattfare meters power, so to speak), so browsers stop asking for /favicon.ico. */
export const ICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#1a1a1a"/><path d="M9 2 4 9h3.5L6.5 14 12 6.5H8.5z" fill="#ffd43b"/></svg>`;

/** Small, readable on a phone, visible focus, no external fonts or images. */
export const STYLESHEET = `*,*::before,*::after{box-sizing:border-box}
html{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;line-height:1.5;color:#1a1a1a;background:#fafafa}
body{margin:0}
header,main{max-width:34rem;margin:0 auto;padding:1rem}
header{display:flex;align-items:center;justify-content:space-between;gap:1rem;border-bottom:1px solid #ddd}
header .brand{font-weight:700;text-decoration:none;color:inherit}
h1{font-size:1.5rem;margin:1rem 0}
h2{font-size:1.15rem;margin:1.75rem 0 .5rem}
section>h2:first-child{margin-top:0}
section{background:#fff;border:1px solid #ddd;border-radius:.5rem;padding:1rem;margin:1rem 0}
label{display:block;font-weight:600;margin:.75rem 0 .25rem}
input[type=email],input[type=password],input[type=text]{width:100%;font:inherit;padding:.6rem;border:1px solid #888;border-radius:.35rem}
.hint{font-size:.9rem;color:#555;margin:.25rem 0}
button{font:inherit;padding:.6rem 1.1rem;border-radius:.35rem;border:1px solid #1a1a1a;background:#1a1a1a;color:#fff;cursor:pointer;margin-top:.75rem}
button.secondary{background:#fff;color:#1a1a1a}
button.danger{background:#a11;border-color:#a11}
a{color:#0645ad}
:focus-visible{outline:3px solid #1a73e8;outline-offset:2px}
.alert{border-left:4px solid #a11;background:#fdecec;padding:.6rem .8rem;border-radius:.25rem}
.notice{border-left:4px solid #1a7f37;background:#eaf6ec;padding:.6rem .8rem;border-radius:.25rem}
.state{display:inline-block;font-weight:700;padding:.1rem .5rem;border-radius:1rem;background:#eee}
.state-ok{background:#d8f0dc;color:#0f5323}
.state-insufficient{background:#fff1c2;color:#5c4400}
.state-invalid,.state-missing{background:#fdecec;color:#7a1010}
.inline{display:inline}
code{word-break:break-all}
input[type=number]{width:100%;font:inherit;padding:.6rem;border:1px solid #888;border-radius:.35rem}
.check{display:flex;gap:.6rem;align-items:flex-start;margin:.75rem 0}
.check input{flex:none;width:1.2rem;height:1.2rem;margin:.2rem 0 0}
.check label{display:inline;font-weight:400;margin:0}
a.button{display:inline-block;font-weight:600;padding:.6rem 1.1rem;border-radius:.35rem;background:#1a1a1a;color:#fff;text-decoration:none}
.actions{margin-top:.5rem}
dl.terms{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:.5rem 0}
dl.terms dt{font-weight:600}
dl.terms dd{margin:0}
article{border-top:1px solid #ddd;padding:.5rem 0 .75rem}
article h3{font-size:1.05rem;margin:.5rem 0 .25rem}
progress{display:block;width:100%;height:1rem;accent-color:#1a73e8}
.table-wrap{overflow-x:auto;margin:1rem 0}
table{border-collapse:collapse;width:100%;font-size:.9rem}
caption{text-align:left;font-weight:600;padding:.25rem 0}
th,td{text-align:left;vertical-align:top;padding:.35rem .5rem .35rem 0;border-bottom:1px solid #ddd}
th{white-space:nowrap}
svg.chart{display:block;width:100%;height:auto;font-size:11px}
svg.chart .bar{fill:#1a73e8}
svg.chart .axis{stroke:#888}
svg.chart text{fill:currentColor}
@media (prefers-color-scheme:dark){html{background:#121212;color:#eee}section{background:#1c1c1c;border-color:#333}
header{border-color:#333}a{color:#8ab4f8}.hint{color:#aaa}button.secondary{background:#1c1c1c;color:#eee;border-color:#eee}
.alert{background:#3a1717}.notice{background:#17301d}input{background:#111;color:#eee}
a.button{background:#eee;color:#111}article,th,td{border-color:#333}}
`;

export interface PageContent {
  title: string;
  /** The content of `<main>`. */
  body: SafeHtml;
  /** HTTP status; default 200. */
  status?: number;
  /**
   * Inline script for this page only, allowed through a per-response CSP nonce (e.g. the consent
   * popup's postMessage handshake). Pages without one run no script at all.
   */
  script?: string;
  /** The signed-in payer's email, shown in the header with a sign-out button. */
  signedInAs?: { email: string; csrf: string };
}

/** The CSP and companions for every page and form response. */
export function securityHeaders(config: Config, scriptNonce?: string): Record<string, string> {
  const authOrigin = new URL(config.openRouterAuthUrl).origin;
  const csp = [
    "default-src 'none'",
    `style-src 'self'`,
    "img-src 'self'",
    "connect-src 'self'",
    // The OAuth start form redirects to OpenRouter; Chromium applies form-action to that redirect too.
    `form-action 'self' ${authOrigin}`,
    "frame-ancestors 'none'",
    "base-uri 'none'",
    scriptNonce === undefined ? "script-src 'none'" : `script-src 'nonce-${scriptNonce}'`,
  ].join("; ");
  const headers: Record<string, string> = {
    "content-security-policy": csp,
    "referrer-policy": "same-origin",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
  };
  // Served over https (behind a TLS proxy, typically): browsers keep to https for a year, so a first
  // visit typed as http:// cannot be downgraded to read the session cookie's pages.
  if (config.publicUrl.startsWith("https:")) headers["strict-transport-security"] = "max-age=31536000";
  return headers;
}

/** Renders `content` in the layout and sends it with the page headers. */
export function sendPage(reply: FastifyReply, config: Config, content: PageContent): FastifyReply {
  const nonce = content.script === undefined ? undefined : randomBytes(16).toString("base64");
  const header = content.signedInAs
    ? html`<form method="post" action="/signout" class="inline">
<input type="hidden" name="csrf" value="${content.signedInAs.csrf}">
<button type="submit" class="secondary">Sign out</button>
</form>`
    : "";
  const script =
    content.script === undefined || nonce === undefined
      ? ""
      : // "</" would end the element early; "<\/" means the same inside JS strings and regexes.
        new SafeHtml(`<script nonce="${nonce}">${content.script.replaceAll("</", "<\\/")}</script>`);
  const document = html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${content.title} · Wattfare</title>
<link rel="stylesheet" href="${STYLESHEET_PATH}">
<link rel="icon" href="${ICON_PATH}" type="image/svg+xml">
</head>
<body>
<header><a class="brand" href="/account">Wattfare</a>${header}</header>
<main>
${content.body}
</main>
${script}
</body>
</html>
`;
  return reply
    .code(content.status ?? 200)
    .headers(securityHeaders(config, nonce))
    .type("text/html; charset=utf-8")
    .send(document.value);
}
