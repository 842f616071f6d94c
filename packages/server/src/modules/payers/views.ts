/**
 * The payer forms, as fragments without a page around them, so the consent popup can embed the very
 * same sign-in and sign-up forms (with its own `returnTo`) that the standalone pages show.
 */
import { html, type SafeHtml } from "../web/index.js";
import { MIN_PASSWORD_LENGTH } from "./service.js";

export interface FormView {
  csrf: string;
  /** Same-origin path to continue to afterwards (validated by the handler). */
  returnTo: string;
  /** Prefill for the email field; never a password. */
  email?: string;
  /** Shown as an alert above the form. */
  error?: string;
  /** Shown as a status message above the form. */
  notice?: string;
}

function messages(view: Pick<FormView, "error" | "notice">): SafeHtml {
  return html`${view.notice ? html`<p class="notice" role="status">${view.notice}</p>` : ""}${
    view.error ? html`<p class="alert" role="alert" id="form-error">${view.error}</p>` : ""
  }`;
}

const hidden = (view: FormView): SafeHtml =>
  html`<input type="hidden" name="csrf" value="${view.csrf}">
<input type="hidden" name="returnTo" value="${view.returnTo}">`;

const describedBy = (view: FormView): SafeHtml =>
  view.error ? html` aria-describedby="form-error" aria-invalid="true"` : html``;

const withReturnTo = (path: string, returnTo: string): string =>
  returnTo === "/account" ? path : `${path}?returnTo=${encodeURIComponent(returnTo)}`;

/** Email + password → POST /signin. */
export function signInForm(view: FormView): SafeHtml {
  return html`${messages(view)}
<form method="post" action="/signin">
${hidden(view)}
<label for="signin-email">Email</label>
<input id="signin-email" name="email" type="email" autocomplete="email" required value="${view.email ?? ""}"${describedBy(view)}>
<label for="signin-password">Password</label>
<input id="signin-password" name="password" type="password" autocomplete="current-password" required${describedBy(view)}>
<button type="submit">Sign in</button>
</form>
<p><a href="${withReturnTo("/forgot-password", view.returnTo)}">Forgot your password?</a></p>
<p>New to Wattfare? <a href="${withReturnTo("/signup", view.returnTo)}">Create an account</a></p>`;
}

/** Email + new password → POST /signup (signed in at once; verification can wait). */
export function signUpForm(view: FormView): SafeHtml {
  return html`${messages(view)}
<form method="post" action="/signup">
${hidden(view)}
<label for="signup-email">Email</label>
<input id="signup-email" name="email" type="email" autocomplete="email" required value="${view.email ?? ""}"${describedBy(view)}>
<label for="signup-password">Password</label>
<input id="signup-password" name="password" type="password" autocomplete="new-password" required minlength="${MIN_PASSWORD_LENGTH}" aria-describedby="signup-password-hint">
<p class="hint" id="signup-password-hint">At least ${MIN_PASSWORD_LENGTH} characters.</p>
<button type="submit">Create account</button>
</form>
<p>Already have an account? <a href="${withReturnTo("/signin", view.returnTo)}">Sign in</a></p>`;
}

export function forgotPasswordForm(view: FormView): SafeHtml {
  return html`${messages(view)}
<p>Enter the email address of your account. We'll send it a link to choose a new password — or, if no
account ever confirmed the address, to claim it for a new account.</p>
<form method="post" action="/forgot-password">
${hidden(view)}
<label for="forgot-email">Email</label>
<input id="forgot-email" name="email" type="email" autocomplete="email" required value="${view.email ?? ""}">
<button type="submit">Send reset link</button>
</form>
<p><a href="${withReturnTo("/signin", view.returnTo)}">Back to sign in</a></p>`;
}

/**
 * On the standalone sign-in, sign-up and forgot-password pages reached from the consent popup, the way
 * back to the request: its header says which app asks, and Deny is there (docs/consent.md). The popup
 * itself embeds the forms without this link. The consent module owns the path; this module cannot
 * import it (consent builds on payers).
 */
export function backToRequest(returnTo: string): SafeHtml {
  return returnTo.startsWith("/connect/consent?")
    ? html`\n<p><a href="${returnTo}">Back to the request</a> (to see which app asks, or to deny it)</p>`
    : html``;
}

export function resetPasswordForm(view: FormView & { token: string }): SafeHtml {
  return html`${messages(view)}
<form method="post" action="/reset-password">
${hidden(view)}
<input type="hidden" name="token" value="${view.token}">
<label for="reset-password">New password</label>
<input id="reset-password" name="password" type="password" autocomplete="new-password" required minlength="${MIN_PASSWORD_LENGTH}" aria-describedby="reset-password-hint">
<p class="hint" id="reset-password-hint">At least ${MIN_PASSWORD_LENGTH} characters. Every device signed in to your account will be signed out.</p>
<button type="submit">Set new password</button>
</form>`;
}

/** New password → POST /claim-email: what claiming does, said before it is done. */
export function claimEmailForm(view: FormView & { token: string; claimed: string }): SafeHtml {
  return html`${messages(view)}
<p>A Wattfare account uses <strong>${view.claimed}</strong>, but never confirmed it. Since you read this
address's mail, you can take it back:</p>
<ul>
<li>that unconfirmed account is closed: its connected apps lose access and it can no longer sign in;</li>
<li>its funding, connected apps and grants are <strong>not</strong> passed on to you;</li>
<li>you get a new Wattfare account with this address, already confirmed, and are signed in to it.</li>
</ul>
<p>If that account was yours, connect your funding and apps again afterwards.</p>
<form method="post" action="/claim-email">
${hidden(view)}
<input type="hidden" name="token" value="${view.token}">
<label for="claim-password">Password for your new account</label>
<input id="claim-password" name="password" type="password" autocomplete="new-password" required minlength="${MIN_PASSWORD_LENGTH}" aria-describedby="claim-password-hint${view.error ? " form-error" : ""}"${view.error ? html` aria-invalid="true"` : ""}>
<p class="hint" id="claim-password-hint">At least ${MIN_PASSWORD_LENGTH} characters.</p>
<button type="submit">Claim the address and create my account</button>
</form>`;
}

export function verificationReminder(email: string, csrf: string, notice?: string): SafeHtml {
  return html`<section aria-labelledby="verify-heading">
<h2 id="verify-heading">Confirm your email address</h2>
${notice ? html`<p class="notice" role="status">${notice}</p>` : ""}
<p>We sent a link to <strong>${email}</strong>. Confirming it lets you reset your password if you ever
forget it. Everything else works meanwhile.</p>
<form method="post" action="/account/verification">
<input type="hidden" name="csrf" value="${csrf}">
<button type="submit" class="secondary">Send the link again</button>
</form>
</section>`;
}

export function deleteAccountSection(csrf: string, error?: string): SafeHtml {
  return html`<section aria-labelledby="delete-heading">
<h2 id="delete-heading">Delete account</h2>
<p>Deleting your account revokes every app's access, removes your funding from Wattfare and signs you
out everywhere. Your OpenRouter key itself stays at OpenRouter: the next page links to it so you can
delete it there.</p>
${error ? html`<p class="alert" role="alert" id="delete-error">${error}</p>` : ""}
<form method="post" action="/account/delete">
<input type="hidden" name="csrf" value="${csrf}">
<label for="delete-password">Your password, to confirm</label>
<input id="delete-password" name="password" type="password" autocomplete="current-password" required${
    error ? html` aria-describedby="delete-error" aria-invalid="true"` : ""
  }>
<button type="submit" class="danger">Delete my account</button>
</form>
</section>`;
}
