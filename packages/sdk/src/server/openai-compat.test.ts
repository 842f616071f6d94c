/**
 * `openaiOptions()` drives the official `openai` client and the Vercel AI SDK's openai-compatible
 * provider against a real Wattfare, and each call is billed to the right user, exactly.
 */
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { type ChatHarness, createChatHarness } from "@wattfare/server/testing";
import { generateText, jsonSchema, stepCountIs, streamText, tool } from "ai";
import OpenAI from "openai";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Wattfare } from "./client.js";

let h: ChatHarness;
let wattfare: Wattfare;
let key: string;

beforeEach(async () => {
  h = await createChatHarness({ sim: { responseTokens: 12 } });
  wattfare = new Wattfare({ secretKey: h.secretKey, baseUrl: h.url });
  key = await h.connect("alice", 5);
});
afterEach(async () => h.close());

const model = "openai/gpt-4o-mini";
const weatherSchema = {
  type: "object",
  properties: { city: { type: "string" } },
  required: ["city"],
  additionalProperties: false,
};

async function expectBilledToAlice(): Promise<void> {
  await h.drain();
  expect(h.sim.control.billedNano(key)).toBeGreaterThan(0n);
  expect(await h.ledgerTotal()).toBe(h.sim.control.billedNano(key));
  expect((await wattfare.status("alice")).usage.monthlyUsd).toBeGreaterThan(0);
}

describe("openaiOptions()", () => {
  it("gives the API root, the key, the user header and no retries", () => {
    expect(wattfare.openaiOptions({ user: "alice" })).toEqual({
      baseURL: `${h.url}/api/v1`,
      apiKey: h.secretKey,
      defaultHeaders: { "x-wattfare-user": "alice" },
      headers: { "x-wattfare-user": "alice" },
      maxRetries: 0,
    });
  });
});

describe("the official openai client with openaiOptions()", () => {
  it("creates a completion billed to the user", async () => {
    const openai = new OpenAI(wattfare.openaiOptions({ user: "alice" }));
    const completion = await openai.chat.completions.create({
      model,
      messages: [{ role: "user", content: "Hi" }],
    });
    expect(completion.choices[0]?.message.content?.length).toBeGreaterThan(0);
    await expectBilledToAlice();
  });

  it("streams a completion billed to the user", async () => {
    const openai = new OpenAI(wattfare.openaiOptions({ user: "alice" }));
    const stream = await openai.chat.completions.create({
      model,
      messages: [{ role: "user", content: "Hi" }],
      stream: true,
    });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
    expect(text.length).toBeGreaterThan(0);
    await expectBilledToAlice();
  });

  it("calls a function tool, answered whole and streamed, billed to the user", async () => {
    const openai = new OpenAI(wattfare.openaiOptions({ user: "alice" }));
    const request = {
      model,
      messages: [{ role: "user" as const, content: "What is the weather in Paris?" }],
      tools: [{ type: "function" as const, function: { name: "get_weather", parameters: weatherSchema } }],
    };
    const completion = await openai.chat.completions.create(request);
    expect(completion.choices[0]?.finish_reason).toBe("tool_calls");
    const call = completion.choices[0]?.message.tool_calls?.[0];
    expect(call?.type === "function" ? call.function.name : undefined).toBe("get_weather");
    expect(JSON.parse(call?.type === "function" ? call.function.arguments : "{}")).toHaveProperty("city");
    const streamed = await openai.chat.completions.stream(request).finalChatCompletion();
    const streamedCall = streamed.choices[0]?.message.tool_calls?.[0];
    expect(streamedCall?.type === "function" ? streamedCall.function.arguments : undefined).toBe(
      call?.type === "function" ? call.function.arguments : "",
    );
    await expectBilledToAlice();
  });

  it("surfaces Wattfare's 402 as the client's own error, unretried", async () => {
    const openai = new OpenAI(wattfare.openaiOptions({ user: "stranger" }));
    const error = await openai.chat.completions
      .create({ model, messages: [{ role: "user", content: "Hi" }] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect(error).toMatchObject({ status: 402, code: "not_connected" });
    expect(h.sim.control.requests()).toHaveLength(0);
  });
});

describe("the Vercel AI SDK with openaiOptions()", () => {
  const provider = () =>
    createOpenAICompatible({ name: "wattfare", ...wattfare.openaiOptions({ user: "alice" }) });

  it("runs generateText billed to the user", async () => {
    const result = await generateText({ model: provider().chatModel(model), prompt: "Hi", maxRetries: 0 });
    expect(result.text.length).toBeGreaterThan(0);
    expect(result.usage.outputTokens).toBe(12);
    await expectBilledToAlice();
  });

  it("runs streamText billed to the user", async () => {
    const result = streamText({ model: provider().chatModel(model), prompt: "Hi", maxRetries: 0 });
    let text = "";
    for await (const delta of result.textStream) text += delta;
    expect(text.length).toBeGreaterThan(0);
    expect((await result.usage).outputTokens).toBe(12);
    await expectBilledToAlice();
  });

  it("runs a tool loop with generateText: the model calls the tool, reads its result and answers, each step billed to the user", async () => {
    const asked: unknown[] = [];
    const result = await generateText({
      model: provider().chatModel(model),
      prompt: "What is the weather in Paris?",
      maxRetries: 0,
      tools: {
        get_weather: tool({
          description: "The weather in a city",
          inputSchema: jsonSchema<{ city: string }>(weatherSchema as never),
          execute: async (input) => {
            asked.push(input);
            return { temperatureC: 21 };
          },
        }),
      },
      stopWhen: stepCountIs(3),
    });
    expect(asked).toHaveLength(1);
    expect(asked[0]).toHaveProperty("city");
    expect(result.steps.map((step) => step.finishReason)).toEqual(["tool-calls", "stop"]);
    expect(result.text.length).toBeGreaterThan(0);
    expect(h.sim.control.requests()).toHaveLength(2);
    await expectBilledToAlice();
  });
});
