/** Server-rendered page helpers shared by the payer pages, funding and the consent popup. */
export { type CookieOptions, parseCookies, serializeCookie } from "./cookies.js";
export { displayDuration, displayTime, displayUsd } from "./format.js";
export {
  assertSameOrigin,
  DEFAULT_RETURN_TO,
  type FormFields,
  formFields,
  queryParam,
  safeReturnTo,
  withQuery,
} from "./forms.js";
export { escapeHtml, type HtmlValue, html, SafeHtml } from "./html.js";
export { type PageContent, STYLESHEET_PATH, securityHeaders, sendPage } from "./page.js";
export { registerPageScope, registerWebAssets } from "./scope.js";
