import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { dataEvents, fundedSimulator, getJson, openai, postChat } from "./test-support.js";
import type { Simulator } from "./types.js";

let sim: Simulator;
let key: string;

beforeAll(async () => {
  ({ sim, key } = await fundedSimulator());
});
afterEach(() => {
  sim.control.resetFaults();
  sim.control.setTiming({ responseTokens: 16, interTokenMs: 0 });
});
afterAll(() => sim.close());

const WEATHER = {
  type: "function" as const,
  function: {
    name: "get_weather",
    description: "The weather in a city",
    parameters: {
      type: "object",
      properties: {
        city: { type: "string" },
        unit: { type: "string", enum: ["celsius", "fahrenheit"] },
        days: { type: "integer" },
        hourly: { type: "boolean" },
        tags: { type: "array", items: { type: "string" } },
        where: { type: "object", properties: { lat: { type: "number" }, lon: { type: "number" } } },
        note: { type: "string" },
      },
      required: ["city", "unit", "days", "hourly", "tags", "where"],
    },
  },
};
const TIME = {
  type: "function" as const,
  function: { name: "get_time", parameters: { type: "object", properties: { zone: { type: "string" } } } },
};
const TOOLS = [WEATHER, TIME];
const ASK = [{ role: "user" as const, content: "What is the weather in Paris?" }];

interface ToolCall {
  id: string;
  type: string;
  function: { name: string; arguments: string };
}
interface Completion {
  choices: {
    index: number;
    finish_reason: string;
    native_finish_reason: string;
    logprobs: unknown;
    message: { role: string; content: string | null; tool_calls?: ToolCall[]; reasoning?: string | null };
  }[];
  usage: { prompt_tokens: number; completion_tokens: number; cost: number };
}
interface Chunk {
  choices: {
    index: number;
    delta: { content?: string | null; reasoning?: string | null; tool_calls?: Record<string, unknown>[] };
    finish_reason: string | null;
    native_finish_reason: string | null;
  }[];
  usage?: Record<string, unknown>;
}

async function complete(body: Record<string, unknown>): Promise<{ completion: Completion; id: string }> {
  const response = await postChat(sim, key, { model: "openai/gpt-4o-mini", ...body });
  expect(response.status).toBe(200);
  return { completion: (await response.json()) as Completion, id: response.headers.get("x-generation-id")! };
}

async function streamChunks(body: Record<string, unknown>): Promise<{ events: string[]; chunks: Chunk[] }> {
  const response = await postChat(sim, key, { model: "openai/gpt-4o-mini", stream: true, ...body });
  expect(response.status).toBe(200);
  const events = dataEvents(await response.text());
  return { events, chunks: events.slice(0, -1).map((e) => JSON.parse(e) as Chunk) };
}

const utf8 = (text: string): number => Buffer.byteLength(text, "utf8");

describe("function tool calls (JSON)", () => {
  it("calls the first function tool when the last message is the user's, with arguments built from its schema", async () => {
    const { completion, id } = await complete({ messages: ASK, tools: TOOLS });
    const [choice] = completion.choices;
    expect(choice).toMatchObject({
      index: 0,
      finish_reason: "tool_calls",
      native_finish_reason: "tool_calls",
      logprobs: null,
      message: { role: "assistant", content: null },
    });
    const calls = choice!.message.tool_calls!;
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ type: "function", function: { name: "get_weather" } });
    expect(calls[0]!.id).toMatch(/^call_[A-Za-z0-9]{24}$/);
    const args = JSON.parse(calls[0]!.function.arguments) as Record<string, unknown>;
    // Required properties only; enums take their first value, numbers 1, booleans true, arrays [].
    expect(Object.keys(args)).toEqual(["city", "unit", "days", "hourly", "tags", "where"]);
    expect(args).toMatchObject({
      unit: "celsius",
      days: 1,
      hourly: true,
      tags: [],
      where: { lat: 1, lon: 1 },
    });
    expect(args.city).toMatch(/^[a-z]+$/);
    expect(id).toMatch(/^gen-/);
  });

  it("counts the arguments' tokens as completion tokens and bills them like text", async () => {
    const { completion, id } = await complete({ messages: ASK, tools: TOOLS });
    const args = completion.choices[0]!.message.tool_calls![0]!.function.arguments;
    const completionTokens = Math.ceil(utf8(args) / 4);
    expect(completion.usage.completion_tokens).toBe(completionTokens);
    // gpt-4o-mini: 0.15 and 0.6 μUSD per prompt and completion token.
    const micro = completion.usage.prompt_tokens * 0.15 + completionTokens * 0.6;
    expect(completion.usage.cost).toBeCloseTo(micro / 1e6, 15);
    const record = await sim.control.waitForGeneration(id);
    expect(record).toMatchObject({ completionTokens, finishReason: "tool_calls" });
    const generation = await getJson(sim, `/generation?id=${id}`, key);
    expect(generation.body.data).toMatchObject({
      tokens_completion: completionTokens,
      finish_reason: "tool_calls",
      native_finish_reason: "tool_calls",
      total_cost: completion.usage.cost,
    });
  });

  it("calls the function tool_choice names, and calls one under required even after a tool result", async () => {
    const named = await complete({
      messages: ASK,
      tools: TOOLS,
      tool_choice: { type: "function", function: { name: "get_time" } },
    });
    const call = named.completion.choices[0]!.message.tool_calls![0]!;
    expect(call.function.name).toBe("get_time");
    // No required list: every property.
    expect(Object.keys(JSON.parse(call.function.arguments) as object)).toEqual(["zone"]);

    const afterResult = [
      ...ASK,
      { role: "assistant", content: null, tool_calls: [{ ...call, type: "function" }] },
      { role: "tool", tool_call_id: call.id, content: '{"temperature":21}' },
    ];
    const required = await complete({ messages: afterResult, tools: TOOLS, tool_choice: "required" });
    expect(required.completion.choices[0]!.finish_reason).toBe("tool_calls");
    expect(required.completion.choices[0]!.message.tool_calls![0]!.function.name).toBe("get_weather");
  });

  it("answers with text after a tool result, under tool_choice none, and with only non-function tools", async () => {
    const call = { id: "call_1", type: "function", function: { name: "get_weather", arguments: "{}" } };
    const afterResult = [
      ...ASK,
      { role: "assistant", content: null, tool_calls: [call] },
      { role: "tool", tool_call_id: "call_1", content: "sunny" },
    ];
    for (const body of [
      { messages: afterResult, tools: TOOLS },
      { messages: ASK, tools: TOOLS, tool_choice: "none" },
      { messages: ASK, tools: [{ type: "openrouter:web_search" }] },
    ]) {
      const { completion } = await complete(body);
      expect(completion.choices[0]!.finish_reason).toBe("stop");
      expect(completion.choices[0]!.message.tool_calls).toBeUndefined();
      expect(completion.choices[0]!.message.content!.split(" ")).toHaveLength(16);
      expect(completion.usage.completion_tokens).toBe(16);
    }
  });

  it("gives every one of n choices the same call, each under its own id, and bills each", async () => {
    const one = await complete({ messages: ASK, tools: TOOLS });
    const three = await complete({ messages: ASK, tools: TOOLS, n: 3 });
    const calls = three.completion.choices.map((c) => c.message.tool_calls![0]!);
    expect(three.completion.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    const { id, ...call } = one.completion.choices[0]!.message.tool_calls![0]!;
    expect(calls.map(({ id: _, ...rest }) => rest)).toEqual([call, call, call]);
    expect(calls[0]!.id).toBe(id);
    expect(new Set(calls.map((c) => c.id)).size).toBe(3);
    expect(three.completion.usage.completion_tokens).toBe(3 * one.completion.usage.completion_tokens);
  });

  it("cuts the arguments at max_tokens and finishes with length", async () => {
    const whole = await complete({ messages: ASK, tools: TOOLS });
    const cut = await complete({ messages: ASK, tools: TOOLS, max_tokens: 3 });
    const [choice] = cut.completion.choices;
    expect(choice!.finish_reason).toBe("length");
    expect(cut.completion.usage.completion_tokens).toBe(3);
    const args = choice!.message.tool_calls![0]!.function.arguments;
    expect(utf8(args)).toBeLessThanOrEqual(12);
    expect(whole.completion.choices[0]!.message.tool_calls![0]!.function.arguments.startsWith(args)).toBe(
      true,
    );
  });

  it("gives the same call id and arguments for the same seed and prompt", async () => {
    const first = await complete({ messages: ASK, tools: TOOLS });
    const second = await complete({ messages: ASK, tools: TOOLS });
    expect(second.completion.choices[0]!.message.tool_calls).toEqual(
      first.completion.choices[0]!.message.tool_calls,
    );
  });

  it("lets a reasoner reason before it calls the tool, within max_tokens", async () => {
    const { completion } = await complete({
      model: "wattfare/reasoner",
      messages: ASK,
      tools: TOOLS,
      max_tokens: 200,
    });
    const [choice] = completion.choices;
    expect(choice!.finish_reason).toBe("tool_calls");
    expect(choice!.message.reasoning!.split(" ")).toHaveLength(8);
    const args = choice!.message.tool_calls![0]!.function.arguments;
    expect(completion.usage.completion_tokens).toBe(8 + Math.ceil(utf8(args) / 4));
  });

  it("answers 400 in OpenRouter's envelope for a tool_choice naming no tool, or needing tools that are absent, or a bad tool", async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [
        { tools: TOOLS, tool_choice: { type: "function", function: { name: "nope" } } },
        /no function named 'nope'/,
      ],
      [{ tool_choice: "required" }, /only allowed when 'tools' are specified/],
      [{ tools: TOOLS, tool_choice: "sometimes" }, /Invalid value for 'tool_choice'/],
      [{ tools: { type: "function" } }, /Invalid type for 'tools'/],
      [{ tools: [{ type: "function", function: { name: "has space" } }] }, /does not match pattern/],
      [{ tools: [{ type: "function" }] }, /'tools\[0\]\.function'/],
    ];
    for (const [extra, message] of cases) {
      const response = await postChat(sim, key, { messages: ASK, ...extra });
      expect(response.status).toBe(400);
      const body = (await response.json()) as { error: { code: number; message: string } };
      expect(Object.keys(body)).toEqual(["error"]);
      expect(body.error.code).toBe(400);
      expect(body.error.message).toMatch(message);
    }
  });
});

describe("function tool calls (stream)", () => {
  it("opens the call in a first delta, streams the arguments over several chunks, then finishes with tool_calls, usage and [DONE]", async () => {
    const { completion } = await complete({ messages: ASK, tools: TOOLS });
    const expected = completion.choices[0]!.message.tool_calls![0]!;
    const { events, chunks } = await streamChunks({ messages: ASK, tools: TOOLS });
    expect(events.at(-1)).toBe("[DONE]");
    const fragments = chunks.slice(1, -2);
    expect(chunks[0]!.choices).toEqual([
      {
        index: 0,
        delta: {
          role: "assistant",
          content: null,
          tool_calls: [
            { index: 0, id: expected.id, type: "function", function: { name: "get_weather", arguments: "" } },
          ],
        },
        finish_reason: null,
        native_finish_reason: null,
        logprobs: null,
      },
    ]);
    expect(fragments.length).toBe(completion.usage.completion_tokens);
    expect(fragments.length).toBeGreaterThan(3);
    let args = "";
    for (const chunk of fragments) {
      const [choice] = chunk.choices;
      expect(choice!.finish_reason).toBeNull();
      expect(choice!.delta.tool_calls).toEqual([{ index: 0, function: { arguments: expect.any(String) } }]);
      args += (choice!.delta.tool_calls![0]!.function as { arguments: string }).arguments;
    }
    expect(args).toBe(expected.function.arguments);
    expect(chunks.at(-2)!.choices).toEqual([
      {
        index: 0,
        delta: { role: "assistant", content: "" },
        finish_reason: "tool_calls",
        native_finish_reason: "tool_calls",
        logprobs: null,
      },
    ]);
    expect(chunks.at(-1)!.choices).toEqual([]);
    expect(chunks.at(-1)!.usage).toEqual(completion.usage);
  });

  it("sends the argument fragments at the inter-token pace", async () => {
    sim.control.setTiming({ interTokenMs: 15 });
    const started = Date.now();
    const response = await postChat(sim, key, {
      model: "openai/gpt-4o-mini",
      stream: true,
      messages: ASK,
      tools: [TIME],
    });
    const arrivals: number[] = [];
    const reader = response.body!.getReader();
    for (;;) {
      const { done } = await reader.read();
      if (done) break;
      arrivals.push(Date.now() - started);
    }
    // {"zone":"<word>"}: at least 4 tokens, so at least 3 gaps of 15 ms before the last chunk. Measured
    // from the request, not from the first read: a read the loaded machine delays can only make that
    // span longer (the first read late, the span from it short is what flaked), and 2 ms cover timers
    // firing within their millisecond.
    expect(arrivals.at(-1)!).toBeGreaterThanOrEqual(3 * 15 - 2);
    expect(arrivals.length).toBeGreaterThanOrEqual(4);
  });

  it("streams each of n choices its own opening delta and fragments, and a tool_calls finish for each", async () => {
    const { chunks } = await streamChunks({ messages: ASK, tools: TOOLS, n: 2, max_tokens: 5 });
    const byChoice = [0, 1].map((index) =>
      chunks.filter((c) => c.choices[0]?.index === index).map((c) => c.choices[0]!),
    );
    expect(byChoice[0]![0]!.delta.tool_calls![0]!.id).not.toBe(byChoice[1]![0]!.delta.tool_calls![0]!.id);
    for (const choices of byChoice) {
      expect(choices[0]!.delta.tool_calls![0]).toMatchObject({ index: 0, type: "function" });
      expect(choices.filter((c) => c.delta.tool_calls !== undefined)).toHaveLength(6);
      expect(choices.at(-1)!.finish_reason).toBe("length");
    }
    expect(chunks.at(-1)!.usage).toMatchObject({ completion_tokens: 10 });
  });
});

describe("function tool calls through the official openai client", () => {
  it("parses the tool call of a JSON answer and of a stream, and feeds the result back for a text answer", async () => {
    const client = openai(sim, key);
    const body = { model: "openai/gpt-4o-mini", messages: ASK, tools: TOOLS };
    const completion = await client.chat.completions.create(body);
    const message = completion.choices[0]!.message;
    expect(completion.choices[0]!.finish_reason).toBe("tool_calls");
    const call = message.tool_calls![0]!;
    if (call.type !== "function") throw new Error("expected a function call");
    expect(call.function.name).toBe("get_weather");
    expect(JSON.parse(call.function.arguments)).toMatchObject({ unit: "celsius", days: 1 });

    const stream = await client.chat.completions.create({ ...body, stream: true });
    let id = "";
    let name = "";
    let args = "";
    let finish: string | null = null;
    for await (const chunk of stream) {
      for (const choice of chunk.choices) {
        for (const delta of choice.delta.tool_calls ?? []) {
          id += delta.id ?? "";
          name += delta.function?.name ?? "";
          args += delta.function?.arguments ?? "";
        }
        finish = choice.finish_reason ?? finish;
      }
    }
    expect({ id, name, args, finish }).toEqual({
      id: call.id,
      name: "get_weather",
      args: call.function.arguments,
      finish: "tool_calls",
    });

    // The stream helper assembles the same message.
    const final = await client.chat.completions.stream(body).finalChatCompletion();
    expect(final.choices[0]!.message.tool_calls).toEqual(message.tool_calls);

    const answer = await client.chat.completions.create({
      ...body,
      messages: [...ASK, message, { role: "tool", tool_call_id: call.id, content: '{"temperature":21}' }],
    });
    expect(answer.choices[0]!.finish_reason).toBe("stop");
    expect(answer.choices[0]!.message.content).toMatch(/\w/);
  });
});
