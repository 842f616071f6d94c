import { describe, expect, it } from "vitest";
import type { ConsentSessionRecord } from "../../store/port.js";
import { consentState, consentStep, parseCapInput, suggestedCapNano } from "./service.js";

const record = (overrides: Partial<ConsentSessionRecord> = {}): ConsentSessionRecord => ({
  idHash: Buffer.alloc(32),
  appId: "app00001",
  intent: "connect",
  appUserId: "alice",
  grantTerms: null,
  origin: "https://app.example",
  requestedCapNano: null,
  sessionJti: "jti",
  sessionExpiresAt: 0,
  createdAt: 0,
  expiresAt: 1000,
  answeredAt: null,
  outcome: null,
  ...overrides,
});

describe("parseCapInput", () => {
  it.each([
    ["5", 5_000_000_000n],
    ["12.50", 12_500_000_000n],
    ["$3", 3_000_000_000n],
    [" 0.0005 ", 500_000n],
    ["1e2", 100_000_000_000n],
    ["0.0000000019", 1n],
    ["1000", 1_000_000_000_000n],
  ])("reads %j as an exact amount, rounded down to the nano", (text, nano) => {
    expect(parseCapInput(text, 1000)).toEqual({ ok: true, capNano: nano });
  });

  it.each([
    ["", "Enter a monthly cap in US dollars."],
    ["ten", "Enter the cap as an amount in US dollars, like 5 or 12.50."],
    ["-1", "Enter the cap as an amount in US dollars, like 5 or 12.50."],
    ["0", "The cap must be more than $0."],
    ["0.0000000001", "The cap must be more than $0."],
    ["1000.000000001", "The cap can be at most $1,000.00."],
  ])("refuses %j with a message for the payer", (text, message) => {
    expect(parseCapInput(text, 1000)).toEqual({ ok: false, message });
  });

  it("takes $0 where asked to (the dashboard lowers caps to nothing)", () => {
    expect(parseCapInput("0", 1000, true)).toEqual({ ok: true, capNano: 0n });
  });
});

describe("consentStep", () => {
  const step = (over: Partial<Parameters<typeof consentStep>[0]>) =>
    consentStep({ signedIn: true, intent: "connect", funding: "ok", continued: false, ...over });

  it("asks a signed-out visitor to sign in first, whatever the intent", () => {
    expect(step({ signedIn: false, intent: "grant" })).toBe("sign-in");
  });

  it("asks for funding when there is none that works, and never lets the payer skip it", () => {
    expect(step({ funding: "missing", continued: true })).toBe("fund");
    expect(step({ funding: "invalid", continued: true })).toBe("fund");
  });

  it("shows funding for an out-of-credits key or reconnect-funding until the payer continues", () => {
    expect(step({ funding: "insufficient" })).toBe("fund");
    expect(step({ funding: "insufficient", continued: true })).toBe("approve");
    // A request to reconnect funding is answered only once the funding has credits again.
    expect(step({ intent: "reconnect-funding", funding: "insufficient", continued: true })).toBe("fund");
    expect(step({ intent: "reconnect-funding", funding: "ok", continued: true })).toBe("approve");
    expect(step({ intent: "reconnect-funding" })).toBe("fund");
    expect(step({ intent: "reconnect-funding", continued: true })).toBe("approve");
  });

  it("goes straight to the approval for a funded payer", () => {
    expect(step({})).toBe("approve");
    expect(step({ intent: "raise" })).toBe("approve");
  });
});

describe("the cap rule", () => {
  it("suggests what the app asked for, else the payer's current cap, else the configured default", () => {
    const own = { capNano: 7n } as Parameters<typeof suggestedCapNano>[1];
    expect(suggestedCapNano(record({ requestedCapNano: 3n }), own, 10)).toBe(3n);
    expect(suggestedCapNano(record(), own, 10)).toBe(7n);
    expect(suggestedCapNano(record(), undefined, 10)).toBe(10_000_000_000n);
    // A raise never suggests less than the current cap; a connect may (the app asks for what it asks).
    expect(suggestedCapNano(record({ requestedCapNano: 3n, intent: "raise" }), own, 10)).toBe(7n);
    expect(suggestedCapNano(record({ requestedCapNano: 9n, intent: "raise" }), own, 10)).toBe(9n);
    expect(suggestedCapNano(record({ requestedCapNano: 3n, intent: "connect" }), own, 10)).toBe(3n);
  });

  it("treats a consent session as open until it is answered or expires", () => {
    expect(consentState(record(), 999)).toBe("open");
    expect(consentState(record(), 1000)).toBe("expired");
    expect(consentState(record({ answeredAt: 5 }), 2000)).toBe("answered");
  });
});
