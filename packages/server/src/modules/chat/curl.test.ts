/**
 * curl, as the API reference and the README show it, against a real Wattfare in front of the simulator:
 * the exact command lines a developer pastes, run by the machine's curl binary.
 */
import { execFile } from "node:child_process";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type ChatHarness, createChatHarness } from "../../testing/chat-harness.js";

let h: ChatHarness;
beforeEach(async () => {
  h = await createChatHarness();
});
afterEach(async () => {
  await h.close();
});

/** Runs curl; resolves with what it printed (a curl failure, or a missing curl, fails the test). */
function curl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("curl", ["--silent", "--show-error", ...args], (error, stdout, stderr) => {
      if (error) reject(new Error(`curl failed: ${stderr || error.message}`));
      else resolve(stdout);
    });
  });
}

/** The reference's example: secret key, user header, JSON body. `extra` goes before the URL. */
function chatCommand(user: string, body: object, extra: string[] = []): string[] {
  return [
    ...extra,
    `${h.url}/api/v1/chat/completions`,
    "-H",
    `Authorization: Bearer ${h.secretKey}`,
    "-H",
    `x-wattfare-user: ${user}`,
    "-H",
    "Content-Type: application/json",
    "-d",
    JSON.stringify(body),
  ];
}

describe("curl", () => {
  it("gets an OpenAI chat completion from the reference's example command, billed to the user exactly", async () => {
    const key = await h.connect("user_123", 5);
    const out = await curl(
      chatCommand("user_123", {
        model: "openai/gpt-4o-mini",
        messages: [{ role: "user", content: "Say hi" }],
      }),
    );
    const completion = JSON.parse(out) as {
      object: string;
      choices: { message: { role: string; content: string } }[];
      usage: { cost: number };
    };
    expect(completion.object).toBe("chat.completion");
    expect(completion.choices[0]?.message.role).toBe("assistant");
    expect(completion.choices[0]?.message.content.length).toBeGreaterThan(0);
    await h.drain();
    expect(await h.ledgerTotal()).toBe(h.sim.control.billedNano(key));
    expect(await h.ledgerTotal()).toBeGreaterThan(0n);
  });

  it("prints a stream's events as OpenRouter sends them with -N, ending in [DONE], and meters it", async () => {
    const key = await h.connect("user_123", 5);
    const out = await curl(
      chatCommand(
        "user_123",
        { model: "openai/gpt-4o-mini", messages: [{ role: "user", content: "Say hi" }], stream: true },
        ["-N"],
      ),
    );
    const events = out.split("\n\n").filter((e) => e.startsWith("data: "));
    expect(events.length).toBeGreaterThan(2);
    expect(events.at(-1)).toBe("data: [DONE]");
    const usage = events
      .slice(0, -1)
      .map((e) => JSON.parse(e.slice("data: ".length)) as { usage?: { cost: number } })
      .filter((e) => e.usage !== undefined);
    expect(usage).toHaveLength(1);
    await h.drain();
    expect(await h.ledgerTotal()).toBe(h.sim.control.billedNano(key));
  });

  it("is answered after an explicit Expect: 100-continue instead of waiting out curl's timeout", async () => {
    await h.connect("user_123", 5);
    const out = await curl(
      chatCommand(
        "user_123",
        { model: "openai/gpt-4o-mini", messages: [{ role: "user", content: "Say hi" }] },
        // With a long wait for the 100, an unanswered Expect would show as a slow test, not a pass.
        ["-H", "Expect: 100-continue", "--expect100-timeout", "30", "-w", "\n%{http_code} %{time_total}"],
      ),
    );
    const [status, seconds] = (out.split("\n").at(-1) ?? "").split(" ");
    expect(status).toBe("200");
    expect(Number(seconds)).toBeLessThan(10);
  });

  it("reads a user's status with the README's GET /status command", async () => {
    await h.connect("user_123", 5);
    const out = await curl([
      `${h.url}/api/v1/status?appUserId=user_123`,
      "-H",
      `Authorization: Bearer ${h.secretKey}`,
    ]);
    // The reference's four fields (Wattfare adds more: docs/api.md).
    expect(JSON.parse(out)).toMatchObject({
      connected: true,
      limits: { monthlyUsd: 5 },
      usage: { monthlyUsd: 0 },
      remainingUsd: 5,
    });
  });

  it("shows the error body and status for a wrong secret key, and for a user with no budget", async () => {
    const badKey = await curl([
      "-w",
      "\n%{http_code}",
      `${h.url}/api/v1/chat/completions`,
      "-H",
      "Authorization: Bearer sk_live_nope_nope",
      "-H",
      "x-wattfare-user: user_123",
      "-H",
      "Content-Type: application/json",
      "-d",
      '{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"Say hi"}]}',
    ]);
    const [badKeyBody, badKeyStatus] = badKey.split("\n");
    expect(badKeyStatus).toBe("401");
    expect((JSON.parse(badKeyBody ?? "") as { error: { code: string } }).error.code).toBe("auth");

    const notConnected = await curl(
      chatCommand(
        "nobody",
        { model: "openai/gpt-4o-mini", messages: [{ role: "user", content: "Say hi" }] },
        ["-w", "\n%{http_code}"],
      ),
    );
    const [body, status] = notConnected.split("\n");
    expect(status).toBe("402");
    expect(JSON.parse(body ?? "")).toEqual({
      error: expect.objectContaining({ code: "not_connected", message: expect.any(String) }),
    });
    expect(await h.ledgerTotal()).toBe(0n);
  });
});
