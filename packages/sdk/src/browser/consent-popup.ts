/**
 * The consent popup's handshake (DESIGN.md "Core flows" 2): the popup posts `wattfare:ready`, the SDK
 * answers `wattfare:session` to Wattfare's origin only, and the popup ends with `wattfare:result`.
 * A message counts only when it comes from Wattfare's origin AND from this very popup window, so a
 * frame on the app's page (even one served by Wattfare) cannot answer for the payer. An approval is
 * always confirmed with Wattfare's API before the promise resolves.
 */
import {
  APIUserAbortError,
  ConsentDeniedError,
  ConsentFailedError,
  PopupBlockedError,
  PopupClosedError,
} from "../core/errors.js";

/**
 * What the popup is asked to do: connect a budget, raise the cap, reconnect the payer's funding, or
 * approve a one-time grant.
 *
 * @example
 * ```ts
 * const intent: ConsentIntent = "raise";
 * ```
 */
export type ConsentIntent = "connect" | "raise" | "reconnect-funding" | "grant";

/** The popup's `wattfare:result` when it says "approved". */
export interface ApprovedResult {
  /** The grant token, for the grant intent. */
  grantToken: string | undefined;
}

/** What the SDK tells the popup once it is ready: whose session, and the cap to suggest. */
export interface ConsentSession {
  token: string;
  monthlyUsd?: number | undefined;
}

/** One run of the popup: what to ask, and how to confirm the answer with Wattfare. */
export interface ConsentFlow<T> {
  intent: ConsentIntent;
  /** Fetched while the popup loads; a failure (say, the user signed out) closes the popup. */
  session: Promise<ConsentSession>;
  /**
   * Asks Wattfare whether the request was approved: after the popup said so (`result` given), and
   * when the popup's link was lost (`undefined`). Resolves to undefined while it is not.
   */
  check(result: ApprovedResult | undefined): Promise<T | undefined>;
}

/** How the popup is watched. */
export interface PopupWatch {
  /** Wattfare's origin: the only origin whose messages count, and the only target of the token. */
  origin: string;
  /** How often to ask Wattfare while the popup's link is lost, in ms. */
  pollIntervalMs: number;
  /** How long to keep asking, in ms, if the page never learns that the popup closed. */
  lostLinkTimeoutMs: number;
  signal?: AbortSignal | undefined;
}

const POPUP_WIDTH = 480;
const POPUP_HEIGHT = 720;
/** How often `popup.closed` is checked; there is no event for it. */
const CLOSED_CHECK_MS = 250;

/**
 * Opens the consent popup. Must run synchronously inside the click handler: browsers only allow
 * popups during a user activation, and an `await` before this call loses it. The window is named, so
 * while one is open this navigates that same window (and brings it to the front) instead of opening
 * another.
 */
export function openConsentWindow(url: string): Window {
  const left = Math.max(0, Math.round(window.screenX + (window.outerWidth - POPUP_WIDTH) / 2));
  const top = Math.max(0, Math.round(window.screenY + (window.outerHeight - POPUP_HEIGHT) / 3));
  const popup = window.open(
    url,
    "wattfare-consent",
    `popup=yes,width=${POPUP_WIDTH},height=${POPUP_HEIGHT},left=${left},top=${top}`,
  );
  if (popup === null) throw new PopupBlockedError();
  // A window reused by name may be behind the page: the payer should see the request they just made.
  popup.focus();
  return popup;
}

/** A popup run that can be cancelled from outside (by a newer request). */
export interface RunningConsent<T> {
  promise: Promise<T>;
  /** Rejects with `error` and closes the popup — unless it is `successor`, the window a newer request now uses. */
  cancel(error: Error, successor?: Window): void;
}

/**
 * The consent request open in this page. Every client on a page — and every copy of the SDK bundled
 * into it — opens the same named window, so a newer request must replace an older one whichever client
 * made it. Kept on globalThis under a registered symbol so that all of them see it; what is kept there
 * is only a way to cancel it (never its promise, which may carry a grant token), and each copy rejects
 * with its own error class.
 */
const ACTIVE_CONSENT = Symbol.for("wattfare.browser.activeConsent");
interface ActiveConsent {
  /** The client that opened it. */
  owner: object;
  /** Rejects it with PopupClosedError and closes its window. */
  cancel(reason: string): void;
  /**
   * Rejects it with PopupClosedError, leaving its window open when it is `successor`: a newer request
   * reused it. Missing in copies of the SDK from before windows were reused.
   */
  replace?(reason: string, successor: Window): void;
}
const page = globalThis as { [ACTIVE_CONSENT]?: ActiveConsent | undefined };

/** Cancels the page's open consent request, if any; with `owner`, only when that client opened it. */
export function cancelActiveConsent(reason: string, owner?: object): void {
  const active = page[ACTIVE_CONSENT];
  if (active !== undefined && (owner === undefined || active.owner === owner)) active.cancel(reason);
}

/**
 * Opens the consent window for a newer request and replaces the page's open one with it. The window is
 * opened first: when the browser blocks it, the open request and its window are left as they were and
 * only the newer call fails (PopupBlockedError). Otherwise the open request's window is reused —
 * navigated to the newer request, not closed and opened again — and that request rejects.
 */
export function openReplacingActiveConsent(url: string, reason: string): Window {
  const active = page[ACTIVE_CONSENT];
  // An older copy of the SDK on the page would close the reused window when told to cancel: its request
  // is cancelled first, as all copies once did.
  if (active !== undefined && active.replace === undefined) active.cancel(reason);
  const popup = openConsentWindow(url);
  page[ACTIVE_CONSENT]?.replace?.(reason, popup);
  return popup;
}

/** Makes `running`, opened by `owner`, the page's open consent request until it settles. */
export function trackActiveConsent<T>(owner: object, running: RunningConsent<T>): Promise<T> {
  const active: ActiveConsent = {
    owner,
    cancel: (reason) => running.cancel(new PopupClosedError({ message: reason })),
    replace: (reason, successor) => running.cancel(new PopupClosedError({ message: reason }), successor),
  };
  page[ACTIVE_CONSENT] = active;
  return running.promise.finally(() => {
    if (page[ACTIVE_CONSENT] === active) page[ACTIVE_CONSENT] = undefined;
  });
}

/**
 * Runs the handshake with an opened popup until Wattfare confirms an approval, or the payer denies,
 * or the popup closes. If the popup reports closed while this page does not have focus, the link may
 * have been severed (a `Cross-Origin-Opener-Policy` on a page it visited makes `closed` read true
 * while the window is still open): Wattfare is then polled until this page gets focus back, which is
 * when the payer has left the popup.
 */
export function runConsent<T>(popup: Window, flow: ConsentFlow<T>, watch: PopupWatch): RunningConsent<T> {
  let cancel: (error: Error, successor?: Window) => void = () => {};
  const promise = new Promise<T>((resolve, reject) => {
    let settled = false;
    let sessionSent = false;
    let resultSeen = false;
    let closedTimer: ReturnType<typeof setInterval> | undefined;
    let pollTimer: ReturnType<typeof setTimeout> | undefined;

    const cleanup = () => {
      window.removeEventListener("message", onMessage);
      window.removeEventListener("focus", onFocus);
      watch.signal?.removeEventListener("abort", onAbort);
      clearInterval(closedTimer);
      clearTimeout(pollTimer);
    };
    /** Rejects and closes the popup, unless a newer request now uses this window (`successor`). */
    const end = (error: unknown, successor?: Window) => {
      if (settled) return;
      settled = true;
      cleanup();
      if (popup !== successor && !popup.closed) popup.close();
      reject(error);
    };
    const fail = (error: unknown) => end(error);
    const succeed = (value: T) => {
      if (settled) return;
      settled = true;
      cleanup();
      if (!popup.closed) popup.close();
      resolve(value);
    };
    const settleWith = (outcome: Promise<T | undefined>, otherwise: () => Error) => {
      outcome.then((value) => (value === undefined ? fail(otherwise()) : succeed(value)), fail);
    };

    let session: ConsentSession | undefined;
    let readySeen = false;
    const sendSession = () => {
      if (settled || session === undefined || !readySeen) return;
      const message: { type: "wattfare:session"; token: string; intent: ConsentIntent; monthlyUsd?: number } =
        { type: "wattfare:session", token: session.token, intent: flow.intent };
      if (session.monthlyUsd !== undefined) message.monthlyUsd = session.monthlyUsd;
      // Targeted at Wattfare's origin: if the popup was navigated elsewhere, the browser drops it.
      popup.postMessage(message, watch.origin);
      sessionSent = true;
    };

    function onMessage(event: MessageEvent): void {
      if (settled || event.origin !== watch.origin || event.source !== popup) return;
      const message = parsePopupMessage(event.data);
      if (message === undefined) return;
      if (message.type === "wattfare:ready") {
        // Answered every time: a reloaded /connect asks again.
        readySeen = true;
        sendSession();
        return;
      }
      // The popup can answer only a request whose session it has. A result before that comes from the
      // request this one replaced, whose document the reused window still showed when it was sent.
      if (!sessionSent) return;
      resultSeen = true;
      clearInterval(closedTimer);
      clearTimeout(pollTimer);
      if (message.status === "denied") fail(new ConsentDeniedError());
      else if (message.status === "error") {
        fail(new ConsentFailedError(message.message === undefined ? {} : { message: message.message }));
      } else {
        settleWith(
          flow.check({ grantToken: message.grantToken }),
          () =>
            new ConsentFailedError({
              message: "Wattfare's window said approved, but Wattfare does not confirm it. Please try again.",
            }),
        );
      }
    }

    const closedWithoutAnswer = () =>
      new PopupClosedError({ message: "Wattfare's window was closed before the request was approved." });
    /**
     * The payer is back on this page: one last look at Wattfare, then the popup counts as closed. The
     * popup posts its result and then closes itself, so `closed` can read true before that message is
     * dispatched here: once the result has arrived, it decides, not this look without it.
     */
    const finalCheck = () => {
      clearTimeout(pollTimer);
      flow.check(undefined).then(
        (value) => {
          if (value !== undefined) succeed(value);
          else if (!resultSeen) fail(closedWithoutAnswer());
        },
        (error: unknown) => {
          if (!resultSeen) fail(error);
        },
      );
    };
    function onFocus(): void {
      finalCheck();
    }
    const pollWhileLost = (deadline: number) => {
      pollTimer = setTimeout(() => {
        // A failed look (the network blinked) is only "not yet": the final check reports real errors.
        const next = (value: T | undefined) => {
          if (settled || resultSeen) return;
          if (value !== undefined) succeed(value);
          else if (Date.now() >= deadline) finalCheck();
          else pollWhileLost(deadline);
        };
        flow.check(undefined).then(next, () => next(undefined));
      }, watch.pollIntervalMs);
    };
    const onClosed = () => {
      clearInterval(closedTimer);
      // Without the session the popup cannot have asked the payer anything.
      if (!sessionSent) return fail(closedWithoutAnswer());
      if (document.hasFocus()) return finalCheck();
      window.addEventListener("focus", onFocus);
      pollWhileLost(Date.now() + watch.lostLinkTimeoutMs);
    };

    function onAbort(): void {
      fail(new APIUserAbortError());
    }

    cancel = end;
    flow.session.then((value) => {
      session = value;
      sendSession();
    }, fail);
    if (watch.signal?.aborted) return onAbort();
    watch.signal?.addEventListener("abort", onAbort, { once: true });
    window.addEventListener("message", onMessage);
    // The popup posts its result, then closes itself, and the message may reach this page after
    // `closed` reads true: the popup counts as closed only when it still is one check later.
    let closedOnce = false;
    closedTimer = setInterval(() => {
      if (settled || resultSeen || !popup.closed) return;
      if (closedOnce) onClosed();
      closedOnce = true;
    }, CLOSED_CHECK_MS);
  });
  return { promise, cancel: (error, successor) => cancel(error, successor) };
}

type PopupMessage =
  | { type: "wattfare:ready" }
  | {
      type: "wattfare:result";
      status: "approved" | "denied" | "error";
      grantToken: string | undefined;
      message: string | undefined;
    };

/** Reads a message from the popup; anything else (another library's messages, malformed data) is undefined. */
export function parsePopupMessage(data: unknown): PopupMessage | undefined {
  if (typeof data !== "object" || data === null) return undefined;
  const { type, status, grantToken, message } = data as Record<string, unknown>;
  if (type === "wattfare:ready") return { type };
  if (type !== "wattfare:result") return undefined;
  if (status !== "approved" && status !== "denied" && status !== "error") return undefined;
  return {
    type,
    status,
    grantToken: typeof grantToken === "string" ? grantToken : undefined,
    message: typeof message === "string" ? message : undefined,
  };
}
