/** The signed-in chat page: the user's budget, connecting and revoking it, and chat billed to it. */
import {
  type ConnectionStatus,
  createWattfare,
  isWattfareError,
  sessionEndpoint,
} from "@wattfare/sdk/browser";
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
import { budgetLine } from "./format.js";

const wattfare = createWattfare({
  baseUrl: wattfareBaseUrl(),
  getSessionToken: sessionEndpoint("/api/wattfare/session"),
});
const view = chatView();
const budget = byId("budget");
const connect = byId<HTMLButtonElement>("connect");
const disconnect = byId<HTMLButtonElement>("disconnect");
let lastError: unknown;

function render(status: ConnectionStatus): void {
  budget.textContent = budgetLine(status);
  connect.hidden = status.connected;
  disconnect.hidden = !status.connected;
}
wattfare.on("status", render);

/** Quietly ignores a popup the user closed; anything else is shown. */
function report(error: unknown): void {
  if (isWattfareError(error, "popup_closed")) return;
  lastError = error;
  showProblem(view, friendly(error), wattfare.canRecover(error));
}

// Every popup-opening call runs directly in its click handler, before any await.
connect.addEventListener("click", () => {
  hideProblem(view);
  wattfare.connect().catch(report);
});

disconnect.addEventListener("click", () => {
  disconnect.disabled = true;
  wattfare
    .disconnect()
    .catch(report)
    .finally(() => {
      disconnect.disabled = false;
    });
});

view.fix.addEventListener("click", () => {
  const error = lastError;
  hideProblem(view);
  wattfare.recover(error).then(() => {
    budget.textContent = `${budget.textContent} Fixed: send your message again.`;
    view.prompt.focus();
  }, report);
});

wireChat(view, (history) => sendAndStream(view, history, "/api/chat"), {
  canFix: (error) => wattfare.canRecover(error),
  // Wattfare refused: the budget line may be out of date (revoked, funding out of credits, paused).
  onFailure: (error) => {
    lastError = error;
    void wattfare.status().catch(() => {});
  },
  // The budget went down: show what is left now.
  onAnswer: () => void wattfare.status().catch(() => {}),
});

for (const button of [connect, disconnect, view.send]) button.disabled = false;

wattfare.status().catch((error: unknown) => {
  budget.textContent = `Could not check your AI budget: ${friendly(error)}`;
});
