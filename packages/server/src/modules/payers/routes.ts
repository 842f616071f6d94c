/**
 * The payer pages: sign-up, sign-in, sign-out, email verification, password reset, /account and
 * account deletion. Every form checks Origin (or Sec-Fetch-Site) and a CSRF token; every handler that
 * continues somewhere takes a `returnTo`, so the consent popup can send its forms here and come back.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { AppDeps } from "../../deps.js";
import { ApiError } from "../../errors.js";
import { H } from "../../http/headers.js";
import { html, queryParam, type SafeHtml, safeReturnTo, sendPage } from "../web/index.js";
import type { PayerService, Throttled } from "./service.js";
import type { PayerSessions, SignedInPayer } from "./session.js";
import {
  backToRequest,
  claimEmailForm,
  deleteAccountSection,
  forgotPasswordForm,
  resetPasswordForm,
  signInForm,
  signUpForm,
  verificationReminder,
} from "./views.js";

export const FORM_EXPIRED = "This form had expired, so nothing was sent. Please try again.";
const WRONG_CREDENTIALS = "That email and password don't match an account.";
const EMAIL_TAKEN =
  "We couldn't create an account with that email address. If you already have one, sign in or reset your password. If it was never confirmed, resetting lets you claim the address.";

export interface AccountSectionContext {
  request: FastifyRequest;
  signedIn: SignedInPayer;
  /** CSRF token for forms in this section. */
  csrf: string;
}

/** A block of the /account page contributed by another module (funding adds its own). */
export type AccountSection = (context: AccountSectionContext) => Promise<SafeHtml>;

/** `/signin?returnTo=…`: where a signed-out visitor of `returnTo` is sent. */
export function signInPath(returnTo: string): string {
  return returnTo === "/account" ? "/signin" : `/signin?returnTo=${encodeURIComponent(returnTo)}`;
}

export function throttledMessage(throttled: Throttled): string {
  const minutes = Math.max(1, Math.ceil(throttled.retryAfterSeconds / 60));
  return `Too many attempts. Try again in ${minutes} minute${minutes === 1 ? "" : "s"}.`;
}

// Maps, not objects: the key comes from the query string, and `?notice=constructor` must not find
// Object.prototype's.
const SIGN_IN_NOTICES = new Map([
  ["signed_out", "You are signed out."],
  ["password_changed", "Your password has been changed. Sign in with the new one."],
]);

const EMAIL_CLAIMED =
  "The address is yours now: this new account has it, confirmed. Connect your funding to start.";

const ACCOUNT_NOTICES = new Map([
  ["verification_sent", "We sent you a new link. It expires in 48 hours."],
  [
    "verification_throttled",
    "We've sent several links recently. Please use one of those, or try again later.",
  ],
]);

export function registerPayerPages(
  scope: FastifyInstance,
  deps: AppDeps,
  service: PayerService,
  sessions: PayerSessions,
  sections: readonly AccountSection[],
): void {
  const { config } = deps;

  /** A standalone form page; `returnTo` adds the way back when it is a consent popup's request. */
  const formPage = (
    reply: FastifyReply,
    title: string,
    form: SafeHtml,
    status = 200,
    throttled?: Throttled,
    returnTo = "/account",
  ): FastifyReply => {
    if (throttled) reply.header(H.retryAfter, String(throttled.retryAfterSeconds));
    return sendPage(reply, config, {
      title,
      status,
      body: html`<h1>${title}</h1>\n${form}${backToRequest(returnTo)}`,
    });
  };

  /** A reset or claim link that is spent, expired, unknown (or, for a claim, no longer claimable). */
  const linkExpired = (reply: FastifyReply, why: string): FastifyReply =>
    sendPage(reply, config, {
      title: "Link expired",
      status: 400,
      body: html`<h1>Link expired</h1>
<p class="alert" role="alert">${why}</p>
<p>These links work once and expire after 1 hour. <a href="/forgot-password">Ask for a new link</a></p>`,
    });
  const resetLinkExpired = (reply: FastifyReply) =>
    linkExpired(reply, "This reset link has expired or was already used.");
  const claimLinkExpired = (reply: FastifyReply) =>
    linkExpired(reply, "This link has expired or was already used, or the address was confirmed meanwhile.");

  async function renderAccount(
    request: FastifyRequest,
    reply: FastifyReply,
    signedIn: SignedInPayer,
    options: { status?: number; deleteError?: string; throttled?: Throttled } = {},
  ): Promise<FastifyReply> {
    const csrf = sessions.csrfToken(request, reply, signedIn);
    const { payer } = signedIn;
    const notice = ACCOUNT_NOTICES.get(queryParam(request, "account"));
    const contributed: SafeHtml[] = [];
    for (const section of sections) contributed.push(await section({ request, signedIn, csrf }));
    if (options.throttled) reply.header(H.retryAfter, String(options.throttled.retryAfterSeconds));
    return sendPage(reply, config, {
      title: "Your account",
      status: options.status ?? 200,
      signedInAs: { email: payer.email, csrf },
      body: html`<h1>Your account</h1>
<p>Signed in as <strong>${payer.email}</strong>.</p>
${queryParam(request, "account") === "email_claimed" ? html`<p class="notice" role="status">${EMAIL_CLAIMED}</p>` : ""}
${payer.emailVerifiedAt === null ? verificationReminder(payer.email, csrf, notice) : ""}
${contributed}
${deleteAccountSection(csrf, options.deleteError)}`,
    });
  }

  scope.get("/signin", async (request, reply) => {
    const returnTo = safeReturnTo(queryParam(request, "returnTo"), config);
    const signedIn = await sessions.current(request);
    if (signedIn) return reply.redirect(returnTo, 303);
    const notice = SIGN_IN_NOTICES.get(queryParam(request, "notice"));
    const csrf = sessions.csrfToken(request, reply, undefined);
    const form = signInForm({ csrf, returnTo, ...(notice ? { notice } : {}) });
    return formPage(reply, "Sign in", form, 200, undefined, returnTo);
  });

  scope.post("/signin", async (request, reply) => {
    const form = await sessions.checkForm(request);
    const returnTo = safeReturnTo(form.fields.returnTo, config);
    const email = form.fields.email ?? "";
    const again = (status: number, error: string, throttled?: Throttled) =>
      formPage(
        reply,
        "Sign in",
        signInForm({ csrf: sessions.csrfToken(request, reply, form.signedIn), returnTo, email, error }),
        status,
        throttled,
        returnTo,
      );
    if (!form.csrfOk) return again(403, FORM_EXPIRED);
    const result = await service.signIn(email, form.fields.password ?? "", request.ip, (payer) =>
      sessions.knownDevice(request, payer),
    );
    if (!result.ok) {
      return result.reason === "throttled"
        ? again(429, throttledMessage(result), result)
        : again(401, WRONG_CREDENTIALS);
    }
    await sessions.start(request, reply, result.payer.id);
    return reply.redirect(returnTo, 303);
  });

  scope.get("/signup", async (request, reply) => {
    const returnTo = safeReturnTo(queryParam(request, "returnTo"), config);
    const signedIn = await sessions.current(request);
    if (signedIn) return reply.redirect(returnTo, 303);
    const csrf = sessions.csrfToken(request, reply, undefined);
    return formPage(
      reply,
      "Create your Wattfare account",
      signUpForm({ csrf, returnTo }),
      200,
      undefined,
      returnTo,
    );
  });

  scope.post("/signup", async (request, reply) => {
    const form = await sessions.checkForm(request);
    const returnTo = safeReturnTo(form.fields.returnTo, config);
    const email = form.fields.email ?? "";
    const again = (status: number, error: string, throttled?: Throttled) =>
      formPage(
        reply,
        "Create your Wattfare account",
        signUpForm({ csrf: sessions.csrfToken(request, reply, form.signedIn), returnTo, email, error }),
        status,
        throttled,
        returnTo,
      );
    if (!form.csrfOk) return again(403, FORM_EXPIRED);
    const result = await service.signUp(email, form.fields.password ?? "", request.ip);
    if (!result.ok) {
      if (result.reason === "throttled") return again(429, throttledMessage(result), result);
      return again(400, result.reason === "taken" ? EMAIL_TAKEN : result.message);
    }
    await sessions.start(request, reply, result.payer.id);
    return reply.redirect(returnTo, 303);
  });

  scope.post("/signout", async (request, reply) => {
    const form = await sessions.checkForm(request);
    if (!form.csrfOk) throw new ApiError("forbidden", FORM_EXPIRED);
    await sessions.end(request, reply);
    return reply.redirect("/signin?notice=signed_out", 303);
  });

  scope.get("/account", async (request, reply) => {
    const signedIn = await sessions.current(request);
    if (!signedIn) return reply.redirect(signInPath("/account"), 303);
    return renderAccount(request, reply, signedIn);
  });

  scope.post("/account/verification", async (request, reply) => {
    const form = await sessions.checkForm(request);
    if (!form.signedIn) return reply.redirect(signInPath("/account"), 303);
    if (!form.csrfOk) throw new ApiError("forbidden", FORM_EXPIRED);
    const sent = await service.sendVerification(form.signedIn.payer);
    const notice = sent === "throttled" ? "verification_throttled" : "verification_sent";
    return reply.redirect(`/account?account=${notice}`, 303);
  });

  scope.get("/verify-email", async (request, reply) => {
    const verified = await service.verifyEmail(queryParam(request, "token"));
    return sendPage(reply, config, {
      title: verified ? "Email address confirmed" : "Link expired",
      status: verified ? 200 : 400,
      body: verified
        ? html`<h1>Email address confirmed</h1>
<p class="notice" role="status">Thank you. You can now reset your password by email if you ever need to.</p>
<p><a href="/account">Go to your account</a></p>`
        : html`<h1>Link expired</h1>
<p class="alert" role="alert">This confirmation link has expired or was already used.</p>
<p>You can ask for a new one on <a href="/account">your account page</a>.</p>`,
    });
  });

  scope.get("/forgot-password", async (request, reply) => {
    const returnTo = safeReturnTo(queryParam(request, "returnTo"), config);
    const csrf = sessions.csrfToken(request, reply, await sessions.current(request));
    const form = forgotPasswordForm({ csrf, returnTo });
    return formPage(reply, "Reset your password", form, 200, undefined, returnTo);
  });

  scope.post("/forgot-password", async (request, reply) => {
    const form = await sessions.checkForm(request);
    const returnTo = safeReturnTo(form.fields.returnTo, config);
    const email = form.fields.email ?? "";
    const again = (status: number, error: string, throttled?: Throttled) =>
      formPage(
        reply,
        "Reset your password",
        forgotPasswordForm({
          csrf: sessions.csrfToken(request, reply, form.signedIn),
          returnTo,
          email,
          error,
        }),
        status,
        throttled,
        returnTo,
      );
    if (!form.csrfOk) return again(403, FORM_EXPIRED);
    const { throttled } = await service.requestPasswordReset(email, request.ip);
    if (throttled) return again(429, throttledMessage(throttled), throttled);
    // The same answer whether or not the account exists or is confirmed.
    return sendPage(reply, config, {
      title: "Check your email",
      body: html`<h1>Check your email</h1>
<p class="notice" role="status">If a Wattfare account uses <strong>${email.trim()}</strong>, we sent it a
link. The link expires in 1 hour.</p>
<p>If the account never confirmed the address, the link lets you claim the address for a new account
instead: nothing of the old account is passed on.</p>
<p><a href="${signInPath(returnTo)}">Back to sign in</a></p>${backToRequest(returnTo)}`,
    });
  });

  // A dead link says so at once, before the payer types a new password into a form that can't work.
  scope.get("/reset-password", async (request, reply) => {
    const token = queryParam(request, "token");
    if (!(await service.resetLinkLive(token))) return resetLinkExpired(reply);
    const csrf = sessions.csrfToken(request, reply, await sessions.current(request));
    return formPage(reply, "Choose a new password", resetPasswordForm({ csrf, returnTo: "/account", token }));
  });

  scope.post("/reset-password", async (request, reply) => {
    const form = await sessions.checkForm(request);
    const token = form.fields.token ?? "";
    const again = (status: number, error: string) =>
      formPage(
        reply,
        "Choose a new password",
        resetPasswordForm({
          csrf: sessions.csrfToken(request, reply, form.signedIn),
          returnTo: "/account",
          token,
          error,
        }),
        status,
      );
    if (!form.csrfOk) return again(403, FORM_EXPIRED);
    const result = await service.resetPassword(token, form.fields.password ?? "");
    if (!result.ok) {
      if (result.reason === "password") return again(400, result.message);
      return resetLinkExpired(reply);
    }
    // Every session of the account has ended with the password change, this browser's included. The
    // browser proved it reads the account's mail: it is known for the account's new password.
    sessions.clearCookie(reply);
    sessions.rememberDevice(reply, result.payer);
    return reply.redirect("/signin?notice=password_changed", 303);
  });

  scope.get("/claim-email", async (request, reply) => {
    const token = queryParam(request, "token");
    const claimed = await service.claimableEmail(token);
    if (claimed === undefined) return claimLinkExpired(reply);
    const csrf = sessions.csrfToken(request, reply, await sessions.current(request));
    const form = claimEmailForm({ csrf, returnTo: "/account", token, claimed });
    return formPage(reply, "Claim your email address", form);
  });

  scope.post("/claim-email", async (request, reply) => {
    const form = await sessions.checkForm(request);
    const token = form.fields.token ?? "";
    const again = async (status: number, error: string) => {
      const claimed = await service.claimableEmail(token);
      if (claimed === undefined) return claimLinkExpired(reply);
      const csrf = sessions.csrfToken(request, reply, form.signedIn);
      return formPage(
        reply,
        "Claim your email address",
        claimEmailForm({ csrf, returnTo: "/account", token, claimed, error }),
        status,
      );
    };
    if (!form.csrfOk) return again(403, FORM_EXPIRED);
    const result = await service.claimEmail(token, form.fields.password ?? "");
    if (!result.ok) {
      return result.reason === "password" ? again(400, result.message) : claimLinkExpired(reply);
    }
    // The browser proved it reads the address's mail: it is signed in to the new account, and known.
    await sessions.start(request, reply, result.payer.id);
    return reply.redirect("/account?account=email_claimed", 303);
  });

  scope.post("/account/delete", async (request, reply) => {
    const form = await sessions.checkForm(request);
    if (!form.signedIn) return reply.redirect(signInPath("/account"), 303);
    if (!form.csrfOk)
      return renderAccount(request, reply, form.signedIn, { status: 403, deleteError: FORM_EXPIRED });
    const confirmed = await service.confirmPassword(
      form.signedIn.payer,
      form.fields.password ?? "",
      request.ip,
    );
    if (!confirmed.ok) {
      return confirmed.reason === "throttled"
        ? renderAccount(request, reply, form.signedIn, {
            status: 429,
            deleteError: throttledMessage(confirmed),
            throttled: confirmed,
          })
        : renderAccount(request, reply, form.signedIn, {
            status: 401,
            deleteError: "That password is not correct. Your account was not deleted.",
          });
    }
    const links = await service.deleteAccount(form.signedIn.payer);
    sessions.clearCookie(reply);
    return sendPage(reply, config, {
      title: "Account deleted",
      body: html`<h1>Your account is deleted</h1>
<p class="notice" role="status">Every app's access is revoked and Wattfare no longer uses your funding.</p>
${
  links.length === 0
    ? ""
    : html`<p>Your OpenRouter ${links.length === 1 ? "key still exists" : "keys still exist"} at OpenRouter.
Delete ${links.length === 1 ? "it" : "them"} there if you no longer need ${links.length === 1 ? "it" : "them"}:</p>
<ul>${links.map(
        (link) =>
          html`<li><a href="${link.url}" rel="noreferrer">Delete key ${link.fingerprint} at OpenRouter</a></li>`,
      )}</ul>`
}
<p><a href="/signup">Create a new account</a></p>`,
    });
  });
}
