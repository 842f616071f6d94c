import { ERROR_CODES as SERVER_ERROR_CODES } from "@wattfare/server/errors";
import { describe, expect, it, vi } from "vitest";
import { ERROR_CODES, type ErrorCode } from "./error-codes.js";
import {
  APIConnectionError,
  APIConnectionTimeoutError,
  APIError,
  APIUserAbortError,
  AuthError,
  BudgetExceededError,
  ForbiddenError,
  FundingInvalidError,
  GrantInvalidError,
  InternalError,
  InvalidRequestError,
  isWattfareError,
  NotConnectedError,
  NotFoundError,
  PayloadTooLargeError,
  RateLimitedError,
  UnavailableError,
  UpstreamError,
  WattfareError,
} from "./errors.js";

const CLASS_OF: Record<ErrorCode, abstract new (...args: never[]) => APIError> = {
  invalid_request: InvalidRequestError,
  auth: AuthError,
  not_connected: NotConnectedError,
  budget_exceeded: BudgetExceededError,
  grant_invalid: GrantInvalidError,
  funding_invalid: FundingInvalidError,
  forbidden: ForbiddenError,
  not_found: NotFoundError,
  payload_too_large: PayloadTooLargeError,
  rate_limited: RateLimitedError,
  internal: InternalError,
  upstream: UpstreamError,
  unavailable: UnavailableError,
};

const statuses = (table: Record<string, { status: number }>) =>
  Object.fromEntries(Object.entries(table).map(([code, { status }]) => [code, status]));

describe("the error table", () => {
  it("covers exactly the server's codes, each with the server's status", () => {
    expect(statuses(ERROR_CODES)).toEqual(statuses(SERVER_ERROR_CODES));
  });

  it.each(Object.entries(ERROR_CODES) as [ErrorCode, { status: number }][])(
    "turns a %s body into its own class with status, message, type, param and request id",
    (code, { status }) => {
      const headers = new Headers({ "x-request-id": "req_123" });
      const error = APIError.generate(
        status,
        { error: { code, message: "What went wrong.", type: "some_type", param: "field" } },
        headers,
      );
      expect(error).toBeInstanceOf(CLASS_OF[code]);
      expect(error).toBeInstanceOf(APIError);
      expect(error).toBeInstanceOf(WattfareError);
      expect(error.name).toBe(CLASS_OF[code].name);
      expect(error).toMatchObject({
        code,
        status,
        message: "What went wrong.",
        type: "some_type",
        param: "field",
      });
      expect(error.requestId).toBe("req_123");
      expect(error.headers).toBe(headers);
    },
  );
});

describe("APIError.generate without a known code", () => {
  it("types a body-less 429 from a proxy by its status", () => {
    const error = APIError.generate(429, undefined, new Headers({ "retry-after": "3" }));
    expect(error).toBeInstanceOf(RateLimitedError);
    expect((error as RateLimitedError).retryAfterMs).toBe(3000);
    expect(error.message).toBe("Wattfare answered 429 without an error message.");
  });

  it("keeps a 402 without a code generic, since four codes share that status", () => {
    const error = APIError.generate(402, { error: { message: "?" } }, new Headers());
    expect(error.constructor).toBe(APIError);
    expect(error.code).toBe("unknown");
  });

  it("keeps a status outside the table, such as a gateway's 504, generic", () => {
    const error = APIError.generate(504, "<html>Gateway Timeout</html>", new Headers());
    expect(error.code).toBe("unknown");
    expect(error.status).toBe(504);
  });

  it("trusts a known code over an unexpected status", () => {
    const error = APIError.generate(500, { error: { code: "upstream", message: "m" } }, new Headers());
    expect(error).toBeInstanceOf(UpstreamError);
    expect(error.status).toBe(500);
  });
});

describe("RateLimitedError", () => {
  it("reads Retry-After seconds into retryAfterMs", () => {
    const error = new RateLimitedError({
      status: 429,
      message: "m",
      headers: new Headers({ "retry-after": "60" }),
    });
    expect(error.retryAfterMs).toBe(60_000);
  });

  it("leaves retryAfterMs undefined without Retry-After", () => {
    const error = new RateLimitedError({ status: 429, message: "m", headers: new Headers() });
    expect(error.retryAfterMs).toBeUndefined();
  });
});

describe("client-side errors", () => {
  it("give each failure without an answer its own code and class", () => {
    expect(new APIConnectionError().code).toBe("connection_error");
    expect(new APIConnectionTimeoutError().code).toBe("timeout");
    expect(new APIConnectionTimeoutError()).toBeInstanceOf(APIConnectionError);
    expect(new APIUserAbortError().code).toBe("aborted");
    expect(new APIUserAbortError().name).toBe("APIUserAbortError");
  });

  it("keep the network cause for debugging", () => {
    const cause = new Error("ECONNREFUSED");
    expect(new APIConnectionError({ cause }).cause).toBe(cause);
  });
});

describe("isWattfareError", () => {
  it("recognises errors built by another copy of the SDK, where instanceof fails", async () => {
    vi.resetModules();
    const copy = await import("./errors.js");
    const foreign = new copy.BudgetExceededError({ status: 402, message: "m", headers: new Headers() });
    expect(foreign instanceof BudgetExceededError).toBe(false);
    expect(isWattfareError(foreign)).toBe(true);
    expect(isWattfareError(foreign, "budget_exceeded")).toBe(true);
    expect(isWattfareError(foreign, "not_connected")).toBe(false);
    expect(copy.isWattfareError(new APIUserAbortError(), "aborted")).toBe(true);
  });

  it("narrows to the code's class", () => {
    const error: unknown = new RateLimitedError({
      status: 429,
      message: "m",
      headers: new Headers({ "retry-after": "2" }),
    });
    if (!isWattfareError(error, "rate_limited")) throw new Error("expected a rate limit error");
    expect(error.retryAfterMs).toBe(2000);
  });

  it("rejects look-alikes that merely have a code and message", () => {
    expect(isWattfareError({ code: "auth", message: "nope" })).toBe(false);
    expect(isWattfareError(new Error("plain"))).toBe(false);
    expect(isWattfareError(null)).toBe(false);
    expect(isWattfareError("budget_exceeded")).toBe(false);
  });

  it("keeps the brand out of JSON and of the error's own keys", () => {
    const error = new NotFoundError({ status: 404, message: "m", headers: new Headers() });
    expect(Object.getOwnPropertySymbols(error)).toEqual([]);
    expect(JSON.parse(JSON.stringify(error))).toMatchObject({ code: "not_found", status: 404 });
  });
});
