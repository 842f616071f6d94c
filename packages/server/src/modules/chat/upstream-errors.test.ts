import { describe, expect, it } from "vitest";
import { mapUpstreamError } from "./upstream-errors.js";

const body = (message: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ error: { code: 0, message, ...extra } });

describe("mapUpstreamError", () => {
  it("passes on what OpenRouter said about credits with the 402, and only re-reads the key limit of funds that afford a smaller request", () => {
    const mapped = mapUpstreamError(
      402,
      body(
        "This request requires more credits, or fewer max_tokens. You requested up to 4096 tokens, but can only afford 812.",
      ),
      undefined,
    );
    // It can afford 812 tokens: smaller requests still pass, so only the cached key limit is read again.
    expect(mapped.funding).toBe("refresh-limit");
    expect(mapped.error.code).toBe("funding_invalid");
    expect(mapped.error.message).toBe(
      "The payer's funding has insufficient credits or hit its key limit. OpenRouter said: This request requires more credits, or fewer max_tokens. You requested up to 4096 tokens, but can only afford 812.",
    );
  });

  it("marks the funding insufficient on a 402 whose funds afford nothing, or that does not say", () => {
    const nothing =
      "This request requires more credits, or fewer max_tokens. You requested up to 16 tokens, but can only afford 0.";
    expect(mapUpstreamError(402, body(nothing), undefined).funding).toBe("insufficient");
    expect(mapUpstreamError(402, body("Insufficient credits."), undefined).funding).toBe("insufficient");
  });

  it("treats a key-limit 403 as insufficient funding and any other 403 as a refused request", () => {
    expect(mapUpstreamError(403, body("Key limit exceeded (daily limit)"), undefined).funding).toBe(
      "insufficient",
    );
    const moderated = mapUpstreamError(
      403,
      body("Flagged", { metadata: { reasons: ["violence"] } }),
      undefined,
    );
    expect(moderated).toMatchObject({
      funding: "none",
      error: { code: "invalid_request", message: "Flagged (violence)" },
    });
  });

  it("asks for a /key check on a 401 instead of trusting it", () => {
    expect(mapUpstreamError(401, body("No auth credentials found"), undefined)).toMatchObject({
      funding: "confirm-invalid",
      error: { code: "funding_invalid" },
    });
  });

  it("maps a 429 or 5xx to 502 upstream, passing on a numeric retry-after only", () => {
    const limited = mapUpstreamError(429, body("Rate limited"), "7");
    expect(limited.error).toMatchObject({ code: "upstream", message: "Rate limited" });
    expect(limited.error.headers["retry-after"]).toBe("7");
    const unavailable = mapUpstreamError(503, "<html>", "soon").error;
    expect(unavailable.message).toBe("The model provider answered 503.");
    expect(unavailable.headers["retry-after"]).toBeUndefined();
  });
});
