import { describe, expect, it } from "vitest";
import { parseCliArgs } from "./cli.js";

describe("parseCliArgs", () => {
  it("maps flags to simulator options, faults and the demo key", () => {
    const config = parseCliArgs([
      "--port",
      "8787",
      "--seed",
      "42",
      "--ttft-ms",
      "150",
      "--inter-token-ms",
      "12.5",
      "--response-tokens",
      "64",
      "--generation-not-found-ms",
      "500",
      "--non-stream-blank-lines",
      "2",
      "--fault-byok-upstream-cost-null",
      "--fault-status",
      "429",
      "--fault-error-after-chunks",
      "3",
      "--fault-reset-before-headers",
      "--fault-down-models",
      "openai/gpt-4o-mini,wattfare/expensive",
      "--credits",
      "2.5",
      "--limit",
      "1",
      "--limit-reset",
      "weekly",
      "--json",
    ]);
    expect(config).toEqual({
      options: {
        port: 8787,
        seed: 42,
        ttftMs: 150,
        interTokenMs: 12.5,
        responseTokens: 64,
        generationNotFoundMs: 500,
        nonStreamBlankLines: 2,
      },
      faults: {
        status: 429,
        errorAfterChunks: 3,
        resetBeforeHeaders: true,
        byokUpstreamCostNull: true,
        downModels: ["openai/gpt-4o-mini", "wattfare/expensive"],
      },
      demoKey: { credits: 2.5, limit: 1, limitReset: "weekly" },
      json: true,
      help: false,
    });
  });

  it("defaults to an ephemeral port, no faults and a 10 USD demo key", () => {
    expect(parseCliArgs([])).toEqual({
      options: {},
      faults: {},
      demoKey: { credits: 10, limit: null, limitReset: null },
      json: false,
      help: false,
    });
  });

  it.each([
    [["--fault-status", "418"], /--fault-status must be one of/],
    [["--limit-reset", "yearly"], /--limit-reset must be one of daily, weekly, monthly/],
    [["--port", "abc"], /--port must be a number/],
    [["--response-tokens", "1.5"], /must be an integer/],
    [["--ttft-ms=-1"], /--ttft-ms must be a number ≥ 0/],
    [["--nope"], /Unknown option/],
  ])("rejects %j", (argv, message) => {
    expect(() => parseCliArgs(argv)).toThrow(message);
  });
});
