/**
 * The example's HTML: server-rendered shells that the page scripts (src/public) bring to life. Every
 * control has a label; live regions announce the budget, the conversation and problems.
 */
import type { ConnectionStatus } from "@wattfare/sdk/server";
import { budgetLine } from "./public/format.js";

/** The models the example offers; the expensive one exists to show what happens when a budget runs out. */
export const MODELS = [
  { id: "openai/gpt-4o-mini", label: "GPT-4o mini (cheap)" },
  { id: "wattfare/expensive", label: "Expensive (runs out fast)" },
] as const;

const esc = (text: string): string =>
  text.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c,
  );

export interface PageContext {
  /** Per-response CSP nonce for the import map and the page's module script. */
  nonce: string;
  /** Wattfare's base URL, for the browser SDK. */
  wattfareUrl: string;
}

/** Buttons that need the page script are rendered disabled; the script enables them once wired. */
function layout(ctx: PageContext, title: string, body: string, script?: string): string {
  // The import map lets the page import "@wattfare/sdk/browser" by name, served from the SDK's dist.
  const importMap = JSON.stringify({ imports: { "@wattfare/sdk/browser": "/sdk/browser/index.js" } });
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="wattfare-base-url" content="${esc(ctx.wattfareUrl)}">
<title>${esc(title)}</title>
<link rel="stylesheet" href="/assets/app.css">
${
  script === undefined
    ? ""
    : `<script type="importmap" nonce="${ctx.nonce}">${importMap}</script>
<script type="module" nonce="${ctx.nonce}" src="/assets/${script}"></script>`
}
</head>
<body>
${body}
</body>
</html>`;
}

function chatSection(): string {
  const options = MODELS.map((m) => `<option value="${m.id}">${esc(m.label)}</option>`).join("");
  return `<section aria-labelledby="chat-heading">
<h2 id="chat-heading">Chat</h2>
<ol id="messages" class="messages" role="log" aria-label="Conversation" aria-live="polite"></ol>
<div id="problem" class="problem" role="alert" hidden>
<p id="problem-text"></p>
<button type="button" id="fix">Fix it</button>
</div>
<form id="chat-form" class="chat-form">
<label for="model">Model</label>
<select id="model" name="model">${options}</select>
<label for="prompt">Message</label>
<textarea id="prompt" name="prompt" rows="3" required></textarea>
<button type="submit" disabled>Send</button>
</form>
</section>`;
}

/** The sign-in page: any name, with a password that makes it yours. */
export function signInPage(ctx: PageContext): string {
  return layout(
    ctx,
    "Sign in — Chat demo",
    `<main>
<h1>Chat demo</h1>
<p>A small app whose users pay for their own AI use through Wattfare. Sign in with any name and a
password: the password makes the name yours (the same name with another password is someone else).</p>
<form method="post" action="/login" class="card">
<label for="name">Your name</label>
<input id="name" name="name" autocomplete="username" required maxlength="60">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required maxlength="200">
<button type="submit">Sign in</button>
</form>
<p>No account? <a href="/grants">Chat with a one-time grant</a> instead.</p>
</main>`,
  );
}

/** The chat page for a signed-in user, with the budget rendered on the server as a first view. */
export function chatPage(
  ctx: PageContext,
  user: { name: string },
  status: ConnectionStatus | undefined,
): string {
  const connected = status?.connected === true;
  return layout(
    ctx,
    "Chat demo",
    `<header>
<h1>Chat demo</h1>
<p>Signed in as <strong>${esc(user.name)}</strong>.</p>
<form method="post" action="/logout"><button type="submit" class="secondary">Sign out</button></form>
</header>
<main>
<section aria-labelledby="budget-heading" class="card">
<h2 id="budget-heading">Your AI budget</h2>
<p id="budget" role="status">${esc(budgetLine(status))}</p>
<button type="button" id="connect" disabled${connected ? " hidden" : ""}>Connect your AI budget</button>
<button type="button" id="disconnect" class="secondary" disabled${connected ? "" : " hidden"}>Revoke access</button>
<p class="hint">You pay for your own AI use in this app, from your OpenRouter credits, up to a monthly cap you choose on Wattfare.</p>
</section>
${chatSection()}
<p><a href="/grants">Try the one-time grant page</a></p>
</main>`,
    "chat.js",
  );
}

/** The grants page: no sign-in; the visitor asks a Wattfare user to approve a small one-time grant. */
export function grantsPage(ctx: PageContext, terms: string): string {
  return layout(
    ctx,
    "One-time grant — Chat demo",
    `<header>
<h1>Chat with a one-time grant</h1>
<p>No account needed: approve a small grant on Wattfare (${esc(terms)}), then chat on it.</p>
</header>
<main>
<section aria-labelledby="grant-heading" class="card">
<h2 id="grant-heading">Your grant</h2>
<p id="grant-status" role="status">No grant yet.</p>
<button type="button" id="request-grant" disabled>Request a grant</button>
</section>
${chatSection()}
<p><a href="/">Back to the signed-in chat</a></p>
</main>`,
    "grants.js",
  );
}

/** The one small stylesheet. */
export const STYLESHEET = `:root{font-family:system-ui,sans-serif;line-height:1.5;color-scheme:light dark}
body{max-width:44rem;margin:0 auto;padding:1rem}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:.5rem 1rem;border-bottom:1px solid #ccc;margin-bottom:1rem}
header h1{margin:.25rem 0;font-size:1.4rem}
.card{border:1px solid #ccc;border-radius:.5rem;padding:.75rem 1rem;margin:1rem 0}
label{display:block;font-weight:600;margin-top:.5rem}
input,select,textarea{font:inherit;width:100%;box-sizing:border-box;padding:.4rem}
button{font:inherit;font-weight:600;padding:.45rem 1rem;margin-top:.5rem;border-radius:.35rem;border:1px solid #1a1a1a;background:#1a1a1a;color:#fff;cursor:pointer}
button.secondary{background:transparent;color:inherit}
button[disabled]{opacity:.5;cursor:progress}
.hint{font-size:.9rem;opacity:.8}
.messages{list-style:none;padding:0}
.messages li{border-radius:.5rem;padding:.5rem .75rem;margin:.5rem 0;white-space:pre-wrap}
.messages .user{background:#e8f0fe;color:#111}
.messages .assistant{background:#f1f3f4;color:#111}
.messages .who{display:block;font-size:.8rem;font-weight:600;opacity:.7}
.problem{border:1px solid #b3261e;background:#fdecec;color:#410e0b;border-radius:.5rem;padding:.5rem .75rem}
`;
