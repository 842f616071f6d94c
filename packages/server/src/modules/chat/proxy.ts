/**
 * POST /api/v1/chat/completions: admission → forward with the payer's key → passthrough → settle.
 *
 * Order matters for the invariants:
 *  1. the reservation is durable before the request goes upstream (a crash cannot lose it);
 *  2. the generation id is durable before the first byte goes to the client (a crash can still be
 *     reconciled through /generation);
 *  3. every path ends the reservation: settled from `usage`, released when the upstream provably
 *     billed nothing (a non-2xx before the body, or a connection that never opened), or handed to the
 *     reconciler.
 * Bytes are forwarded as they arrive (single reader, back-pressure respected); only the usage event is
 * sniffed inline.
 */
import type { ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Logger } from "pino";
import type { Config } from "../../config.js";
import type { Clock } from "../../deps.js";
import { ApiError } from "../../errors.js";
import { H, headerValue } from "../../http/headers.js";
import { formatUsd, type Nano } from "../../money.js";
import { periodOf } from "../../period.js";
import { decryptFundingKey, type KeyRing } from "../../security/index.js";
import type {
  AccountRef,
  AdmitResult,
  AppRecord,
  ChatAccount,
  FundingRecord,
  GrantAccount,
  GrantUse,
  ReservationRecord,
  Store,
} from "../../store/port.js";
import { connectionAccount } from "../connections/index.js";
import type { FundingKeyReads } from "../funding/index.js";
import { grantAccountRef, grantInvalid, resolveGrant } from "../grants/index.js";
import type { Metrics } from "../metrics/index.js";
import type { ModelCatalogue } from "./catalogue.js";
import {
  type AdmissionPlan,
  type Fit,
  type FitRefusal,
  MIN_OUTPUT_TOKENS,
  parseChatRequest,
  planAdmission,
  renderUpstreamBody,
} from "./chat-request.js";
import { type Passthrough, pipeJson, pipeStream } from "./passthrough.js";
import { type Reconciler, settleObserved } from "./reconciler.js";
import type { Upstream } from "./upstream.js";
import { mapUpstreamError } from "./upstream-errors.js";
import { NOT_SENT, QUEUE_TIMEOUT, type UpstreamResponse } from "./upstream-response.js";
import type { UsageCost } from "./usage.js";

/** Re-check an `insufficient` key at most this often: the payer may have topped up. */
const INSUFFICIENT_RECHECK_MS = 30_000;
/** Re-read a cached key limit that refused a request at most this often: it may have reset or been raised. */
const KEY_LIMIT_RECHECK_MS = 30_000;
const MAX_ERROR_BODY_BYTES = 64 * 1024;
const KEY_CACHE_SIZE = 10_000;
/** The answers Wattfare passes on and meters: JSON and server-sent events, not encoded. */
const METERABLE_TYPE = /^\s*(application\/json|text\/event-stream)\s*(;|$)/i;
/** Failures where the request provably never reached the upstream: nothing can have been billed. */
const NEVER_SENT = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "UND_ERR_CONNECT_TIMEOUT",
  // given up while it still waited for a pool connection: never written
  NOT_SENT,
  QUEUE_TIMEOUT,
  // undici refused the request before writing it (e.g. an invalid header value)
  "UND_ERR_INVALID_ARG",
]);

export interface ChatProxyDeps {
  config: Config;
  store: Store;
  keyRing: KeyRing;
  clock: Clock;
  logger: Logger;
  instanceId: string;
  upstream: Upstream;
  catalogue: ModelCatalogue;
  reconciler: Reconciler;
  metrics: Metrics;
  /** Reads a funding key's `/key` again (shared with the consent popup: one read per row at a time). */
  keyReads: FundingKeyReads;
}

/** Whether a reservation has been ended (settled, released or handed to the reconciler) and whether the request was sent upstream. */
interface Ending {
  done: boolean;
  dispatched: boolean;
}

/** A request admitted against its payer's budget: what forwarding needs, and nothing more of the caller's body. */
interface Admitted {
  /** Durable before anything is sent upstream. */
  reservation: ReservationRecord;
  funding: FundingRecord;
  fundingKey: string;
  fit: Fit;
  /** The body to send upstream; emptied once handed to undici. */
  upstreamBody: string;
}

/** What the proxy needs of the incoming request (plain node:http, no framework). */
export interface ChatRequestContext {
  /** Wattfare's own request id. */
  id: string;
  /** `x-wattfare-clamp: off` (checked by the handler): refuse rather than lower the caller's max_tokens. */
  clampOff: boolean;
  socket: Socket;
}

/** Who is asking: the app, for one of its users (a connection) or with a one-time grant. */
export type ChatCaller = { app: AppRecord } & (
  | { kind: "user"; appUserId: string }
  | { kind: "grant"; token: string }
);

/** What admission needs, whichever way the caller pays. */
interface PayerAccount extends AccountRef {
  capNano: bigint;
  paused: boolean;
  funding: FundingRecord | null;
  grantUse?: GrantUse;
  /** The stable id behind the pseudonymous upstream `user`. */
  pseudonymOf: string;
}

const noRetry = { [H.shouldRetry]: "false" };

export class ChatProxy {
  /** Reservations whose request is still being served here (the reconciler leaves them alone). */
  readonly inFlight = new Set<string>();
  private readonly keyCache = new Map<string, { blob: string; key: string }>();
  /** Handlers and settlement writes still running; drain() waits for them (shutdown, tests). */
  private readonly work = new Set<Promise<unknown>>();

  constructor(private readonly d: ChatProxyDeps) {}

  handle(request: ChatRequestContext, res: ServerResponse, caller: ChatCaller, raw: Buffer): Promise<void> {
    // Two stages, so that nothing of the caller's body outlives admission: `raw`, its parse and the plan
    // go with `admitRequest`'s frame (an async function keeps its parameters and locals until it returns),
    // and an answer that streams for minutes holds only what forwarding needs.
    return this.track(
      this.admitRequest(request, caller, raw).then((admitted) => this.serve(request, res, caller, admitted)),
    );
  }

  /** Resolves once every request served so far has finished and its settlement is written. */
  async drain(): Promise<void> {
    while (this.work.size > 0) await Promise.allSettled([...this.work]);
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.work.add(promise);
    const done = () => this.work.delete(promise);
    promise.then(done, done);
    return promise;
  }

  /** Parses and prices the request and reserves its worst case; refusals throw, with nothing reserved. */
  private async admitRequest(
    request: ChatRequestContext,
    caller: ChatCaller,
    raw: Buffer,
  ): Promise<Admitted> {
    const { config, clock } = this.d;
    const chat = parseChatRequest(raw);
    const now = clock.now();
    // Awaits only where the answer may not be at hand (each await costs a promise and a suspended frame).
    // Read once the body is in: while it arrived (a slow client may take minutes), the payer may have
    // revoked a grant, paused spending or removed their funding, or the grant expired.
    let account = await this.accountOf(caller, now);
    if (account.paused) throw paused();
    let funding =
      account.funding?.state === "ok" ? account.funding : await this.usableFunding(account.funding);
    // Only a `/key` read (above) or a cold catalogue (below) waits on the network.
    let waited = funding !== account.funding;
    // Decrypt before admitting: a key that cannot be read must fail here, with nothing reserved.
    const fundingKey = this.readableFundingKey(funding);
    let catalogue = this.d.catalogue.cached();
    if (catalogue === undefined) {
      catalogue = await this.d.catalogue.get();
      waited = true;
    }
    const plan = planAdmission(chat, catalogue, {
      defaultMaxTokens: config.limits.defaultMaxTokens,
      clampOff: request.clampOff,
    });

    if (waited) account = await this.accountAgain(caller, funding, clock.now());
    let admission = await this.admit(request, caller, plan, account, funding, now);
    if (!admission.admitted.admitted && admission.keyLimitBinding) {
      // The cached key limit refused: it may have been reset (daily, weekly, monthly) or raised since.
      const refreshed = await this.d.keyReads.read(funding, KEY_LIMIT_RECHECK_MS);
      if (refreshed !== funding) {
        funding = refreshed;
        if (funding.state !== "ok") throw fundingUnusable(funding.state);
        account = await this.accountAgain(caller, funding, clock.now());
        admission = await this.admit(request, caller, plan, account, funding, clock.now());
      }
    }
    const { admitted, fit, keyLimitBinding } = admission;
    if (!admitted.admitted) {
      if (caller.kind === "grant" && !keyLimitBinding) {
        throw grantInvalid(
          admitted.usedUp ? "This grant has no uses left." : "This grant's dollar cap is used up.",
        );
      }
      throw refusal(fit, keyLimitBinding, chat.callerMaxTokens, admission.roomNano, plan);
    }
    const chosen = fit as Fit;
    const reservation = admitted.reservation;
    let upstreamBody: string;
    try {
      upstreamBody = renderUpstreamBody(
        chat,
        chosen.outTokens,
        plan.maxPrice,
        caller.app.id,
        account.pseudonymOf,
      );
    } catch (error) {
      // A body that cannot be rendered (nested too deeply) is never sent: its reservation ends here.
      await this.releaseOnFailure(reservation);
      throw error;
    }
    return { reservation, funding, fundingKey, fit: chosen, upstreamBody };
  }

  /** Forwards an admitted request and passes its answer on; whatever happens, its reservation ends. */
  private async serve(
    request: ChatRequestContext,
    res: ServerResponse,
    caller: ChatCaller,
    admitted: Admitted,
  ): Promise<void> {
    const { reservation } = admitted;
    const ending: Ending = { done: false, dispatched: false };
    this.inFlight.add(reservation.id);
    try {
      await this.forward(request, res, caller, admitted, ending);
    } catch (error) {
      // Invariant 2 on unexpected paths too: whatever threw, this reservation must still end.
      if (!ending.done) {
        ending.done = true;
        if (ending.dispatched) this.d.reconciler.track(reservation);
        else await this.releaseOnFailure(reservation);
      }
      if (ending.dispatched && !(error instanceof ApiError)) {
        throw new ApiError("internal", undefined, { cause: error, headers: noRetry });
      }
      throw error;
    } finally {
      this.inFlight.delete(reservation.id);
    }
  }

  /**
   * The payer's account read again after a wait on the network: a cap lowered, spending paused, or the
   * connection or grant revoked meanwhile must apply to this request's admission too. Funding replaced
   * meanwhile ends it (retryable): it was chosen, and its key read, for the old funding.
   */
  private async accountAgain(caller: ChatCaller, funding: FundingRecord, now: number): Promise<PayerAccount> {
    const account = await this.accountOf(caller, now);
    if (account.paused) throw paused();
    if (account.funding?.id !== funding.id) {
      throw new ApiError(
        "unavailable",
        "The payer's funding changed while this request was admitted; try again.",
      );
    }
    return account;
  }

  /** Ends a reservation nothing was sent for, on a path that is already failing (its error is what counts). */
  private releaseOnFailure(reservation: ReservationRecord): Promise<void> {
    return this.d.store
      .release(reservation)
      .catch((e: unknown) => this.d.logger.error({ err: e, requestId: reservation.id }, "release failed"));
  }

  /** Who pays for `caller` now: its connection's account, or its grant's (an invalid grant throws). */
  private accountOf(caller: ChatCaller, now: number): Promise<PayerAccount> {
    return caller.kind === "grant"
      ? resolveGrant(this.d, caller.app.id, caller.token, now).then(grantPayerAccount)
      : this.d.store
          .chatAccount(caller.app.id, caller.appUserId)
          .then((account) => connectionPayerAccount(account, caller, now));
  }

  /** One admission attempt against the cap, the funding key's cached limit and a grant's uses. */
  private async admit(
    request: ChatRequestContext,
    caller: ChatCaller,
    plan: AdmissionPlan,
    account: PayerAccount,
    funding: FundingRecord,
    now: number,
  ): Promise<{ admitted: AdmitResult; fit: Fit | FitRefusal; keyLimitBinding: boolean; roomNano: Nano }> {
    const { config, store } = this.d;
    const keyLimit = funding.limitRemainingNano;
    let fit: Fit | FitRefusal = "too_small";
    let keyLimitBinding = false;
    let roomNano = 0n;
    const admitted = await store.admit(
      {
        id: request.id,
        account: account.account,
        period: account.period,
        appId: caller.app.id,
        fundingId: funding.id,
        model: plan.request.model,
        stream: plan.request.stream,
        createdAt: now,
        deadlineAt: now + config.reservations.reconcileDeadlineMs,
      },
      account.capNano,
      (headroom, fundingSpent) => {
        // The cached limit less what this key took through Wattfare since it was read.
        const keyRoom = keyLimit === null ? null : keyLimit > fundingSpent ? keyLimit - fundingSpent : 0n;
        keyLimitBinding = keyRoom !== null && keyRoom < headroom;
        roomNano = keyLimitBinding && keyRoom !== null ? keyRoom : headroom;
        fit = plan.fit(roomNano);
        return typeof fit === "string" ? null : fit.amountNano;
      },
      this.d.instanceId,
      now + config.reservations.leaseMs,
      account.grantUse,
    );
    return { admitted, fit, keyLimitBinding, roomNano };
  }

  /** The decrypted funding key; a key this server cannot read needs the payer to reconnect it. */
  private readableFundingKey(funding: FundingRecord): string {
    try {
      return this.fundingKey(funding);
    } catch (error) {
      this.d.logger.error({ err: error, fundingId: funding.id }, "funding key cannot be decrypted");
      // So that /status and the dashboard say so too (the payer reconnects, as for a rejected key).
      void this.d.store
        .setFundingState(funding.id, "invalid", undefined, this.d.clock.now())
        .catch(() => undefined);
      throw new ApiError(
        "funding_invalid",
        "The payer's funding key cannot be used; they need to reconnect it.",
      );
    }
  }

  /** The payer's funding if it can be used now; re-checks an `insufficient` key that may have been topped up. */
  private async usableFunding(funding: FundingRecord | null): Promise<FundingRecord> {
    if (!funding)
      throw new ApiError("funding_invalid", "The payer has no funding source; they need to connect one.");
    if (funding.state === "ok") return funding;
    if (funding.state === "insufficient") {
      const refreshed = await this.d.keyReads.read(funding, INSUFFICIENT_RECHECK_MS);
      if (refreshed.state === "ok") return refreshed;
      throw fundingUnusable(refreshed.state);
    }
    throw fundingUnusable(funding.state);
  }

  /**
   * Decrypting costs more than the rest of admission; keys are cached per funding row and blob (a
   * reconnect makes a new row, so a replaced key is never served). Bounded; the process already holds
   * each key in memory while it forwards.
   */
  private fundingKey(funding: FundingRecord): string {
    const cached = this.keyCache.get(funding.id);
    if (cached && cached.blob === funding.keyBlob) return cached.key;
    const key = decryptFundingKey(this.d.keyRing, funding.keyBlob, funding.id);
    if (this.keyCache.size >= KEY_CACHE_SIZE) this.keyCache.clear();
    this.keyCache.set(funding.id, { blob: funding.keyBlob, key });
    return key;
  }

  private async forward(
    request: ChatRequestContext,
    res: ServerResponse,
    caller: ChatCaller,
    admitted: Admitted,
    ending: Ending,
  ): Promise<void> {
    const { store } = this.d;
    const { reservation, funding, fit } = admitted;
    let upstream: UpstreamResponse | undefined;
    let clientGone = false;
    // A client that leaves while its request waits for a pool connection: it is never sent. One that
    // leaves after it was sent, before the upstream answered: keep waiting for the headers (bounded by
    // headersTimeout) so the generation id can be reconciled, then stop the upstream at once.
    const onClose = () => {
      if (res.writableFinished) return;
      clientGone = true;
      if (upstream !== undefined && !upstream.awaitingHeaders) upstream.discard();
    };
    res.once("close", onClose);
    // The client may already be gone (it left while we were admitting): `close` will not fire again.
    if (res.destroyed || request.socket.destroyed) onClose();

    if (clientGone) {
      // Gone before anything was sent upstream: nothing to bill, nobody to answer.
      ending.done = true;
      await store.release(reservation);
      return;
    }
    try {
      ending.dispatched = true;
      // The handle first: a client leaving while the request waits for a pool connection discards it.
      upstream = this.dispatch(admitted, caller.app.name);
      await upstream.ready;
    } catch (error) {
      const code = (error as { code?: string }).code ?? "";
      ending.done = true;
      if (NEVER_SENT.has(code)) {
        ending.dispatched = false;
        await store.release(reservation);
        if (code === QUEUE_TIMEOUT) {
          throw new ApiError(
            "unavailable",
            "Too many requests are waiting for the model provider; try again.",
            {
              cause: error,
            },
          );
        }
        if (clientGone) return; // given up while queued, for a client that has left: nobody to answer
        throw new ApiError("upstream", "The model provider could not be reached.", { cause: error });
      }
      // Sent but unanswered: the upstream may have billed and there is no generation id to ask about.
      await this.settleAtBound(reservation);
      throw new ApiError("upstream", "The model provider did not answer.", {
        cause: error,
        headers: noRetry,
      });
    }
    if (upstream.statusCode < 200 || upstream.statusCode >= 300) {
      const text = await upstream.readText(MAX_ERROR_BODY_BYTES, this.d.config.upstream.readTimeoutMs);
      ending.done = true;
      await store.release(reservation); // non-2xx before the body: nothing was billed
      throw await this.upstreamError(upstream, text, funding);
    }

    const generationId = headerValue(upstream.headers[H.generationId]);
    // Invariant: the generation id is durable before the first byte reaches the client.
    const persistGenerationId = () =>
      generationId === undefined ? Promise.resolve() : store.recordGenerationId(reservation.id, generationId);
    if (clientGone) {
      ending.done = true;
      upstream.discard();
      this.d.reconciler.track(reservation);
      await persistGenerationId();
      return;
    }

    const contentType = headerValue(upstream.headers["content-type"]) ?? "application/json";
    const encoding = headerValue(upstream.headers["content-encoding"]) ?? "identity";
    if (!METERABLE_TYPE.test(contentType) || encoding.toLowerCase() !== "identity") {
      // Not an answer Wattfare can pass on and meter: a page from something in between, a compressed
      // body. Without a generation id no OpenRouter generation stands behind it (nothing to bill).
      ending.done = true;
      upstream.discard();
      const unreadable = "The model provider's answer could not be read.";
      if (generationId === undefined) {
        await store.release(reservation);
        throw new ApiError("upstream", unreadable);
      }
      this.d.reconciler.track(reservation); // first: a failed write below must not strand it
      await persistGenerationId();
      throw new ApiError("upstream", unreadable, { headers: noRetry });
    }
    const headers: Record<string, string> = { "content-type": contentType, [H.requestId]: request.id };
    if (generationId !== undefined) headers[H.generationId] = generationId;
    if (fit.adjusted) headers[H.maxTokens] = String(fit.outTokens);
    const answer: Passthrough = {
      upstream,
      res,
      headers,
      clientGone: () => clientGone,
      stallMs: this.d.config.upstream.clientWriteStallMs,
    };

    if (contentType.includes("text/event-stream")) {
      try {
        await persistGenerationId();
      } catch (error) {
        upstream.discard(); // nothing will read it now: free its connection at once
        throw error;
      }
      const last = { id: generationId ?? request.id, model: reservation.model };
      const cost = await pipeStream(answer, last, this.d.clock);
      res.off("close", onClose);
      ending.done = true;
      if (cost) void this.track(this.settle(reservation, cost, generationId ?? null));
      else this.d.reconciler.track(reservation);
      return;
    }
    // JSON: a body read whole is settled — generation id included — in the one commit before it is
    // sent; one still being generated, or larger than the buffer, persists the id before its headers
    // go out (so a crash meanwhile is settled from /generation, not at the bound) and settles from its
    // tail afterwards.
    const outcome = await pipeJson(answer, this.d.config.limits.nonStreamBufferBytes, (cost) =>
      cost ? this.settle(reservation, cost, generationId ?? null) : persistGenerationId(),
    );
    res.off("close", onClose);
    if (outcome.settled) return;
    if (outcome.cost) void this.track(this.settle(reservation, outcome.cost, generationId ?? null));
    else this.d.reconciler.track(reservation);
  }

  /**
   * Sends the admitted request upstream and lets go of its body: undici keeps the copy it writes until
   * the answer ends, and a long stream should not hold a second one.
   */
  private dispatch(admitted: Admitted, title: string): UpstreamResponse {
    const body = admitted.upstreamBody;
    admitted.upstreamBody = "";
    return this.d.upstream.chat(body, admitted.fundingKey, title);
  }

  private async upstreamError(
    upstream: UpstreamResponse,
    text: string,
    funding: FundingRecord,
  ): Promise<ApiError> {
    const mapped = mapUpstreamError(upstream.statusCode, text, headerValue(upstream.headers[H.retryAfter]));
    if (mapped.funding === "insufficient") {
      // Refresh the cached key limit (DESIGN.md: "refreshed on 402"), but the upstream's word stands:
      // account credits are invisible to `/key`. The state clears by itself on a later re-check.
      await this.d.keyReads.read(funding, 0);
      await this.d.store.setFundingState(funding.id, "insufficient", undefined, this.d.clock.now());
    } else if (mapped.funding === "refresh-limit") {
      // The funds afford a smaller request: not out of credits, but the cached key limit that sized
      // this one may be stale (lowered, or spent through elsewhere). Read it again (at most every 30 s
      // per key) so the next admission is sized to it; what `/key` says is recorded as it is.
      await this.d.keyReads.read(funding, KEY_LIMIT_RECHECK_MS);
    } else if (mapped.funding === "confirm-invalid") {
      // A 401 could be a passing upstream fault: only `/key` also refusing the key proves it is dead.
      const refreshed = await this.d.keyReads.read(funding, 0);
      if (refreshed.state !== "invalid") {
        return new ApiError("upstream", "The model provider refused the request; try again.");
      }
    }
    return mapped.error;
  }

  /** Never rejects: a failed write leaves the reservation open in the store, for the reconciler. */
  private settle(
    reservation: ReservationRecord,
    cost: UsageCost,
    generationId: string | null,
  ): Promise<void> {
    return settleObserved(this.d, reservation, {
      costNano: cost.costNano,
      generationId: generationId ?? reservation.generationId,
      promptTokens: cost.promptTokens,
      completionTokens: cost.completionTokens,
      unreconciled: false,
      at: this.d.clock.now(),
    }).catch((error: unknown) => {
      // Closed in memory already; the store retries the write until it commits (a restart before that
      // takes the row over, and the reconciler settles it).
      this.d.logger.error({ err: error, requestId: reservation.id }, "settlement write failed");
    });
  }

  private async settleAtBound(reservation: ReservationRecord): Promise<void> {
    await settleObserved(this.d, reservation, {
      costNano: reservation.amountNano,
      generationId: null,
      promptTokens: null,
      completionTokens: null,
      unreconciled: true,
      at: this.d.clock.now(),
    });
  }
}

function grantPayerAccount({ grant, payerPaused, funding }: GrantAccount): PayerAccount {
  const ref = grantAccountRef(grant.id);
  return {
    account: ref.account,
    period: ref.period,
    capNano: grant.maxNano,
    paused: payerPaused,
    funding,
    grantUse: { grantId: grant.id, maxUses: grant.maxUses },
    pseudonymOf: `grant:${grant.id}`,
  };
}

function connectionPayerAccount(
  account: ChatAccount | undefined,
  caller: { appUserId: string },
  now: number,
): PayerAccount {
  if (!account) {
    throw new ApiError(
      "not_connected",
      "This user has not connected a budget. Open the consent popup to connect.",
    );
  }
  return {
    account: connectionAccount(account.connection.id),
    period: periodOf(now),
    capNano: account.connection.capNano,
    paused: account.payerPaused,
    funding: account.funding,
    pseudonymOf: caller.appUserId,
  };
}

const paused = () => new ApiError("budget_exceeded", "Spending paused by the payer.");

/** Why funding that is not `ok` cannot pay: a key to reconnect, or one out of credits or limit. */
function fundingUnusable(state: Exclude<FundingRecord["state"], "ok">): ApiError {
  return new ApiError(
    "funding_invalid",
    state === "invalid"
      ? "The payer's funding key was rejected; they need to reconnect it."
      : "The payer's funding has insufficient credits or hit its key limit.",
  );
}

function refusal(
  fit: Fit | FitRefusal,
  keyLimitBinding: boolean,
  callerMax: number | null,
  roomNano: Nano,
  plan: AdmissionPlan,
): ApiError {
  if (keyLimitBinding) {
    return new ApiError(
      "funding_invalid",
      "The payer's funding key limit leaves too little for this request.",
    );
  }
  if (fit === "clamp_off") {
    return new ApiError(
      "budget_exceeded",
      `max_tokens ${callerMax} does not fit the remaining budget, and x-wattfare-clamp is off.`,
    );
  }
  // Less than a displayed micro-dollar left is the cap reached, as far as anyone reading it can tell.
  if (roomNano < 500n) return new ApiError("budget_exceeded", "Spending cap reached for this period.");
  // The cap is not used up: even this request's smallest worst case is larger than what is left of it.
  const outTokens = callerMax === null ? MIN_OUTPUT_TOKENS : Math.min(callerMax, MIN_OUTPUT_TOKENS);
  return new ApiError(
    "budget_exceeded",
    `This request could cost up to ${formatUsd(plan.amountFor(outTokens))} even with ${outTokens} output tokens (its worst case: the prompt's bytes counted as tokens, images per part), more than the ${formatUsd(roomNano)} left of the spending cap this period. Send a shorter prompt, or ask the payer to raise the cap.`,
  );
}
