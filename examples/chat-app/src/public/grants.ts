/** The grants page: no account; the visitor gets a one-time grant approved and chats on it. */
import { createWattfare, GrantInvalidError, isWattfareError, sessionEndpoint } from "@wattfare/sdk/browser";
import {
  byId,
  chatView,
  friendly,
  hideProblem,
  sendAndStream,
  showProblem,
  wattfareBaseUrl,
  wireChat,
} from "./chat-ui.js";
import { type GrantView, grantLine } from "./format.js";

const STORAGE_KEY = "wattfare-grant";
const wattfare = createWattfare({
  baseUrl: wattfareBaseUrl(),
  getGrantSessionToken: sessionEndpoint("/api/grant/session"),
});
const view = chatView();
const grantStatus = byId("grant-status");
const requestGrant = byId<HTMLButtonElement>("request-grant");
let grantToken = sessionStorage.getItem(STORAGE_KEY) ?? undefined;
/** No grant yet is the same problem as a spent one: ask for a (new) grant. */
let lastError: unknown = { code: "grant_invalid" };

async function refreshGrant(): Promise<void> {
  if (grantToken === undefined) {
    grantStatus.textContent = "No grant yet.";
    return;
  }
  const response = await fetch("/api/grant/status", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ grantToken }),
  });
  grantStatus.textContent = response.ok
    ? grantLine((await response.json()) as GrantView)
    : "This grant can no longer be used: request a new one.";
}

function useGrant(token: string): void {
  grantToken = token;
  sessionStorage.setItem(STORAGE_KEY, token);
  hideProblem(view);
  for (const button of [requestGrant, view.send]) button.disabled = false;

  void refreshGrant();
}

function report(error: unknown): void {
  if (isWattfareError(error, "popup_closed")) return;
  showProblem(view, friendly(error), false);
}

requestGrant.addEventListener("click", () => {
  wattfare.requestGrant().then(useGrant, report);
});

view.fix.addEventListener("click", () => {
  const error = lastError;
  hideProblem(view);
  wattfare.recover(error).then((fixed) => {
    if (fixed.code === "grant_invalid") useGrant(fixed.grantToken);
  }, report);
});

wireChat(
  view,
  (history) => {
    if (grantToken === undefined) {
      const message = "You need a grant to chat here.";
      return Promise.reject(new GrantInvalidError({ status: 402, message, headers: new Headers() }));
    }
    return sendAndStream(view, history, "/api/grant/chat", { grantToken });
  },
  {
    canFix: (error) => wattfare.canRecover(error),
    onFailure: (error) => {
      lastError = error;
      for (const button of [requestGrant, view.send]) button.disabled = false;

      void refreshGrant();
    },
    onAnswer: () => void refreshGrant(),
  },
);

for (const button of [requestGrant, view.send]) button.disabled = false;

void refreshGrant();
