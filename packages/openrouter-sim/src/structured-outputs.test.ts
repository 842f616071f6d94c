import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dataEvents, fundedSimulator, HI, openai, postChat } from "./test-support.js";
import type { Simulator } from "./types.js";

let sim: Simulator;
let key: string;

beforeAll(async () => {
  ({ sim, key } = await fundedSimulator());
});
afterAll(() => sim.close());

const PERSON = {
  type: "object",
  properties: {
    name: { type: "string" },
    age: { type: "integer", minimum: 18 },
    mood: { type: "string", enum: ["happy", "sad"] },
    email: { type: "string", format: "email" },
    pets: { type: "array", items: { $ref: "#/$defs/pet" }, minItems: 1 },
    nickname: { anyOf: [{ type: "null" }, { type: "string" }] },
    verified: { type: "boolean" },
  },
  required: ["name", "age", "mood", "email", "pets", "nickname", "verified"],
  additionalProperties: false,
  $defs: {
    pet: {
      type: "object",
      properties: { kind: { type: "string", const: "cat" }, legs: { type: "number" } },
      required: ["kind", "legs"],
    },
  },
};
const SCHEMA_FORMAT = { type: "json_schema", json_schema: { name: "person", strict: true, schema: PERSON } };

interface Completion {
  choices: { finish_reason: string; message: { content: string | null } }[];
  usage: { completion_tokens: number };
}

async function complete(body: Record<string, unknown>): Promise<Completion> {
  const response = await postChat(sim, key, { model: "openai/gpt-4o-mini", messages: HI, ...body });
  expect(response.status).toBe(200);
  return (await response.json()) as Completion;
}

describe("structured outputs", () => {
  it("answers a json_schema response_format with JSON text matching the schema", async () => {
    const completion = await complete({ response_format: SCHEMA_FORMAT });
    const content = completion.choices[0]!.message.content!;
    const person = JSON.parse(content) as Record<string, unknown>;
    expect(person).toEqual({
      name: expect.stringMatching(/^[a-z]+$/),
      age: 18,
      mood: "happy",
      email: "user@example.com",
      pets: [{ kind: "cat", legs: 1 }],
      nickname: expect.stringMatching(/^[a-z]+$/),
      verified: true,
    });
    expect(completion.choices[0]!.finish_reason).toBe("stop");
    expect(completion.usage.completion_tokens).toBe(Math.ceil(Buffer.byteLength(content) / 4));
  });

  it("answers json_object with a small JSON object of generated words", async () => {
    const completion = await complete({ response_format: { type: "json_object" } });
    const content = completion.choices[0]!.message.content!;
    const parsed = JSON.parse(content) as { answer: string };
    expect(Object.keys(parsed)).toEqual(["answer"]);
    expect(parsed.answer.split(" ")).toHaveLength(16);
    expect(completion.usage.completion_tokens).toBe(Math.ceil(Buffer.byteLength(content) / 4));
  });

  it("cuts the JSON at max_tokens and finishes with length", async () => {
    const completion = await complete({ response_format: SCHEMA_FORMAT, max_tokens: 4 });
    expect(completion.choices[0]!.finish_reason).toBe("length");
    expect(completion.usage.completion_tokens).toBe(4);
    expect(() => JSON.parse(completion.choices[0]!.message.content!)).toThrow();
  });

  it("leaves a text response_format as plain text", async () => {
    const completion = await complete({ response_format: { type: "text" } });
    expect(completion.choices[0]!.message.content!.split(" ")).toHaveLength(16);
  });

  it("streams the JSON across content deltas, to the same text and usage as the JSON answer", async () => {
    const json = await complete({ response_format: SCHEMA_FORMAT });
    const response = await postChat(sim, key, {
      model: "openai/gpt-4o-mini",
      messages: HI,
      response_format: SCHEMA_FORMAT,
      stream: true,
    });
    const events = dataEvents(await response.text());
    expect(events.at(-1)).toBe("[DONE]");
    const chunks = events.slice(0, -1).map(
      (e) =>
        JSON.parse(e) as {
          choices: { delta: { content: string }; finish_reason: string | null }[];
          usage?: unknown;
        },
    );
    const contentChunks = chunks.slice(0, -2);
    expect(contentChunks.length).toBe(json.usage.completion_tokens);
    expect(contentChunks.map((c) => c.choices[0]!.delta.content).join("")).toBe(
      json.choices[0]!.message.content,
    );
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe("stop");
    expect(chunks.at(-1)!.usage).toEqual(json.usage);
  });

  it("parses through the official client's chat.completions.parse", async () => {
    const completion = await openai(sim, key).chat.completions.parse({
      model: "openai/gpt-4o-mini",
      messages: HI,
      response_format: {
        type: "json_schema",
        json_schema: { name: "person", strict: true, schema: PERSON },
      },
    });
    expect(completion.choices[0]!.message.parsed).toMatchObject({ age: 18, mood: "happy" });
  });

  it("answers a tool result with JSON when a response_format asks for it, and calls the tool first", async () => {
    const tools = [{ type: "function", function: { name: "lookup", parameters: { type: "object" } } }];
    const first = await complete({ tools, response_format: { type: "json_object" } });
    expect(first.choices[0]!.finish_reason).toBe("tool_calls");
    const afterResult = await complete({
      tools,
      response_format: { type: "json_object" },
      messages: [
        ...HI,
        {
          role: "assistant",
          content: null,
          tool_calls: [{ id: "call_1", type: "function", function: { name: "lookup", arguments: "{}" } }],
        },
        { role: "tool", tool_call_id: "call_1", content: "found" },
      ],
    });
    expect(JSON.parse(afterResult.choices[0]!.message.content!)).toHaveProperty("answer");
  });

  it("answers 400 for a response_format OpenAI would refuse", async () => {
    const cases: [unknown, RegExp][] = [
      [{ type: "yaml" }, /response_format\.type/],
      [{ type: "json_schema" }, /'response_format\.json_schema'/],
      [{ type: "json_schema", json_schema: { schema: PERSON } }, /'response_format\.json_schema\.name'/],
      [{ type: "json_schema", json_schema: { name: "x", schema: "object" } }, /json_schema\.schema/],
      ["json", /Invalid type for 'response_format'/],
    ];
    for (const [format, message] of cases) {
      const response = await postChat(sim, key, { messages: HI, response_format: format });
      expect(response.status).toBe(400);
      expect(((await response.json()) as { error: { code: number; message: string } }).error).toEqual({
        code: 400,
        message: expect.stringMatching(message),
      });
    }
  });
});
