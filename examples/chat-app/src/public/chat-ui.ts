/**
 * The conversation part both pages share: render turns, stream an answer into the page as it arrives,
 * and explain problems in words a user can act on, with a "Fix it" button when Wattfare can fix them.
 */
import { isWattfareError, readChatStream } from "@wattfare/sdk/browser";

export interface Turn {
  role: "user" | "assistant";
  content: string;
}

/** The chat section's elements (the same ids on both pages). */
export interface ChatView {
  messages: HTMLOListElement;
  form: HTMLFormElement;
  prompt: HTMLTextAreaElement;
  model: HTMLSelectElement;
  send: HTMLButtonElement;
  problem: HTMLElement;
  problemText: HTMLElement;
  fix: HTMLButtonElement;
}

export function byId<T extends HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (element === null) throw new Error(`#${id} is missing from the page`);
  return element as T;
}

export function chatView(): ChatView {
  const form = byId<HTMLFormElement>("chat-form");
  const send = form.querySelector<HTMLButtonElement>("button[type=submit]");
  if (send === null) throw new Error("the chat form has no submit button");
  return {
    messages: byId("messages"),
    form,
    prompt: byId("prompt"),
    model: byId("model"),
    send,
    problem: byId("problem"),
    problemText: byId("problem-text"),
    fix: byId("fix"),
  };
}

/** Wattfare's base URL, which the server put in the page. */
export function wattfareBaseUrl(): string {
  const meta = document.querySelector<HTMLMetaElement>('meta[name="wattfare-base-url"]');
  if (meta === null) throw new Error("the page does not say where Wattfare is");
  return meta.content;
}

export function appendTurn(view: ChatView, role: Turn["role"], content: string): HTMLElement {
  const item = document.createElement("li");
  item.className = role;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = role === "user" ? "You" : "Assistant";
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = content;
  item.append(who, text);
  view.messages.append(item);
  return text;
}

/**
 * Posts the conversation to `endpoint` and streams the answer into a new assistant message as it
 * arrives. Resolves with the whole answer; an error answer is thrown as the SDK's typed error.
 */
export async function sendAndStream(
  view: ChatView,
  history: readonly Turn[],
  endpoint: string,
  extra: Record<string, unknown> = {},
): Promise<string> {
  const response = await fetch(endpoint, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ ...extra, model: view.model.value, messages: history }),
  });
  const stream = await readChatStream(response);
  const text = appendTurn(view, "assistant", "");
  text.parentElement?.setAttribute("aria-busy", "true");
  try {
    for await (const chunk of stream) text.textContent += chunk.choices[0]?.delta.content ?? "";
  } finally {
    text.parentElement?.removeAttribute("aria-busy");
  }
  return text.textContent ?? "";
}

/** What to tell the user about an error, in their terms. */
export function friendly(error: unknown): string {
  if (!isWattfareError(error)) return "Something went wrong. Please try again.";
  switch (error.code) {
    case "not_connected":
      return "Connect your AI budget to start chatting: you pay for your own AI use, up to a monthly cap you choose.";
    case "budget_exceeded":
      return error.message.includes("paused")
        ? "Spending is paused on your Wattfare account. Press Fix it to resume it and keep chatting."
        : "What's left of your monthly AI budget doesn't cover this request. Raise your cap to keep chatting.";
    case "funding_invalid":
      return "Your OpenRouter funding needs attention: it is out of credits or was rejected. Reconnect it to keep chatting.";
    case "grant_invalid":
      return `${error.message} Request a grant to keep chatting.`;
    case "rate_limited":
      return "That's a lot of messages at once. Wait a moment and try again.";
    case "consent_denied":
      return "You said no in Wattfare's window, so nothing changed.";
    case "popup_blocked":
      return "Your browser blocked Wattfare's window. Allow pop-ups for this site and try again.";
    case "popup_closed":
      return "Wattfare's window was closed before you finished.";
    case "consent_failed":
      // Wattfare's own words for the user: "This request expired. Start again from the app.", or what
      // an approval left as it was ("Spending is still paused…").
      return error.message;
    case "invalid_request":
      return error.message;
    default:
      return "The AI service is unavailable right now. Please try again shortly.";
  }
}

export function showProblem(view: ChatView, message: string, fixable: boolean): void {
  view.problemText.textContent = message;
  view.fix.hidden = !fixable;
  view.problem.hidden = false;
}

export function hideProblem(view: ChatView): void {
  view.problem.hidden = true;
}

/**
 * Wires the chat form: each submit streams one answer through `send`; failures are shown with
 * "Fix it" when `canFix` says Wattfare can fix them, and the message goes back into the box to resend.
 */
export function wireChat(
  view: ChatView,
  send: (history: readonly Turn[]) => Promise<string>,
  handlers: { canFix(error: unknown): boolean; onFailure(error: unknown): void; onAnswer(): void },
): void {
  const history: Turn[] = [];
  view.form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const content = view.prompt.value.trim();
    if (content === "") return;
    hideProblem(view);
    view.send.disabled = true;
    view.prompt.value = "";
    const shown = view.messages.childElementCount;
    appendTurn(view, "user", content);
    history.push({ role: "user", content });
    try {
      history.push({ role: "assistant", content: await send(history) });
      handlers.onAnswer();
    } catch (error) {
      // Take the failed turn back off the screen and put the message back in the box to resend.
      history.pop();
      while (view.messages.childElementCount > shown) view.messages.lastElementChild?.remove();
      view.prompt.value = content;
      handlers.onFailure(error);
      showProblem(view, friendly(error), handlers.canFix(error));
    } finally {
      view.send.disabled = false;
    }
  });
}
