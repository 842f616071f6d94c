import { type ConnectionStatus, ConsentFailedError } from "@wattfare/sdk/browser";
import { describe, expect, it } from "vitest";
import { friendly } from "./chat-ui.js";
import { budgetLine } from "./format.js";

const connected: ConnectionStatus = {
  connected: true,
  limits: { monthlyUsd: 2 },
  usage: { monthlyUsd: 0.5 },
  remainingUsd: 1.5,
  period: { start: 1_793_491_200, end: 1_796_083_200 },
  funding: "ok",
  paused: false,
};

describe("friendly", () => {
  it("shows Wattfare's own message when its window reports a failure, such as an expired request", () => {
    const expired = new ConsentFailedError({ message: "This request expired. Start again from the app." });
    expect(friendly(expired)).toBe("This request expired. Start again from the app.");
  });
});

describe("budgetLine", () => {
  it("says when the payer's funding is out of credits, next to what is left of the cap", () => {
    expect(budgetLine({ ...connected, funding: "insufficient" })).toBe(
      "$1.50 left of $2.00 this month. Your OpenRouter funding is out of credits.",
    );
    expect(budgetLine(connected)).toBe("$1.50 left of $2.00 this month.");
  });
});
