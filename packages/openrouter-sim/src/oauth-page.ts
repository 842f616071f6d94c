/** The HTML of the OAuth consent screen: a real form a browser (or Playwright) can click. */

const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · OpenRouter (simulated)</title>
<style>
body{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem;color:#111}
.actions{display:flex;gap:.75rem;margin-top:1.5rem}
button{font:inherit;padding:.6rem 1.2rem;border-radius:.4rem;border:1px solid #444;cursor:pointer}
button[value=approve]{background:#111;color:#fff}
code{word-break:break-all}
</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>`;
}

export interface ConsentDetails {
  requestId: string;
  /** `localhost:PORT` for local callbacks, as OpenRouter titles them; the host otherwise. */
  appName: string;
  limitUsd: number | null;
  keyLabel: string | null;
}

export function consentPage(details: ConsentDetails): string {
  const limit =
    details.limitUsd === null
      ? "<p>The key will have no spending limit of its own.</p>"
      : `<p>The key will be limited to <strong>$${escapeHtml(String(details.limitUsd))}</strong> of credits.</p>`;
  const label =
    details.keyLabel === null ? "" : `<p>Key name: <strong>${escapeHtml(details.keyLabel)}</strong></p>`;
  return page(
    "Authorize application",
    `<h1 id="consent-title">Authorize ${escapeHtml(details.appName)}</h1>
<p><strong>${escapeHtml(details.appName)}</strong> is requesting an API key that spends your OpenRouter credits.</p>
${limit}
${label}
<form method="post" action="/auth" aria-labelledby="consent-title">
<input type="hidden" name="request" value="${escapeHtml(details.requestId)}">
<div class="actions">
<button type="submit" name="decision" value="approve">Authorize</button>
<button type="submit" name="decision" value="deny">Deny</button>
</div>
</form>`,
  );
}

export function errorPage(message: string): string {
  return page(
    "Authorization error",
    `<h1>Authorization error</h1>\n<p role="alert">${escapeHtml(message)}</p>`,
  );
}

/** Headless mode (no callback_url): the user copies the code into the app. */
export function codePage(code: string): string {
  return page(
    "Authorization code",
    `<h1>Authorization code</h1>\n<p>Paste this code into the application:</p>\n<p><code id="authorization-code">${escapeHtml(code)}</code></p>`,
  );
}

export function deniedPage(): string {
  return page(
    "Access denied",
    "<h1>Access denied</h1>\n<p>No key was created. You can close this window.</p>",
  );
}
