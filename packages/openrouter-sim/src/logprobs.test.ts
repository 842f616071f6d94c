import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dataEvents, fundedSimulator, HI, openai, postChat } from "./test-support.js";
import type { Simulator } from "./types.js";

let sim: Simulator;
let key: string;

beforeAll(async () => {
  ({ sim, key } = await fundedSimulator());
});
afterAll(() => sim.close());

interface TokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
}
interface ContentLogprob extends TokenLogprob {
  top_logprobs: TokenLogprob[];
}
interface Logprobs {
  content: ContentLogprob[] | null;
  refusal: null;
}
interface Completion {
  choices: { index: number; logprobs: Logprobs | null; message: { content: string | null } }[];
  usage: { completion_tokens: number };
}

async function complete(body: Record<string, unknown>): Promise<Completion> {
  const response = await postChat(sim, key, { model: "openai/gpt-4o-mini", messages: HI, ...body });
  expect(response.status).toBe(200);
  return (await response.json()) as Completion;
}

const bytesOf = (token: string): number[] => [...Buffer.from(token, "utf8")];

describe("logprobs", () => {
  it("lists one entry per generated token with negative logprobs, bytes and top_logprobs alternatives", async () => {
    const completion = await complete({ logprobs: true, top_logprobs: 3 });
    const [choice] = completion.choices;
    const logprobs = choice!.logprobs!;
    expect(logprobs.refusal).toBeNull();
    const content = logprobs.content!;
    expect(content).toHaveLength(completion.usage.completion_tokens);
    expect(content.map((entry) => entry.token).join("")).toBe(choice!.message.content);
    for (const entry of content) {
      expect(Object.keys(entry)).toEqual(["token", "logprob", "bytes", "top_logprobs"]);
      expect(entry.logprob).toBeLessThan(0);
      expect(entry.bytes).toEqual(bytesOf(entry.token));
      expect(entry.top_logprobs).toHaveLength(3);
      expect(entry.top_logprobs[0]).toEqual({
        token: entry.token,
        logprob: entry.logprob,
        bytes: entry.bytes,
      });
      const values = entry.top_logprobs.map((top) => top.logprob);
      expect([...values].sort((a, b) => b - a)).toEqual(values);
      expect(new Set(entry.top_logprobs.map((top) => top.token)).size).toBe(3);
      for (const top of entry.top_logprobs) expect(top.bytes).toEqual(bytesOf(top.token));
      expect(values.reduce((sum, value) => sum + Math.exp(value), 0)).toBeLessThanOrEqual(1);
    }
  });

  it("gives the same logprobs for the same request, and an empty top_logprobs without top_logprobs", async () => {
    const first = await complete({ logprobs: true, top_logprobs: 20 });
    const second = await complete({ logprobs: true, top_logprobs: 20 });
    expect(second.choices[0]!.logprobs).toEqual(first.choices[0]!.logprobs);
    expect(first.choices[0]!.logprobs!.content![0]!.top_logprobs).toHaveLength(20);
    const bare = await complete({ logprobs: true });
    expect(bare.choices[0]!.logprobs!.content!.every((entry) => entry.top_logprobs.length === 0)).toBe(true);
    expect(bare.choices[0]!.logprobs!.content!.map((e) => e.logprob)).toEqual(
      first.choices[0]!.logprobs!.content!.map((e) => e.logprob),
    );
  });

  it("stays null without logprobs: true, and on a model that does not support logprobs", async () => {
    expect((await complete({})).choices[0]!.logprobs).toBeNull();
    expect((await complete({ logprobs: false, top_logprobs: 2 })).choices[0]!.logprobs).toBeNull();
    const haiku = await complete({ model: "anthropic/claude-3.5-haiku", logprobs: true, top_logprobs: 2 });
    expect(haiku.choices[0]!.logprobs).toBeNull();
  });

  it("covers each choice's own tokens with n, and only the content of a reasoner", async () => {
    const many = await complete({ logprobs: true, n: 2, max_tokens: 4 });
    for (const choice of many.choices) {
      expect(choice.logprobs!.content!.map((e) => e.token).join("")).toBe(choice.message.content);
    }
    const reasoner = await complete({ model: "wattfare/reasoner", logprobs: true, max_tokens: 6 });
    // wattfare/reasoner does not list logprobs among its supported parameters.
    expect(reasoner.choices[0]!.logprobs).toBeNull();
  });

  it("lists the tokens of structured output content, and none for a tool call", async () => {
    const json = await complete({ logprobs: true, response_format: { type: "json_object" } });
    const content = json.choices[0]!.logprobs!.content!;
    expect(content.map((e) => e.token).join("")).toBe(json.choices[0]!.message.content);
    const tools = [{ type: "function", function: { name: "f", parameters: { type: "object" } } }];
    const call = await complete({ logprobs: true, tools });
    expect(call.choices[0]!.logprobs).toEqual({ content: null, refusal: null });
  });

  it("carries each content delta's token in the chunk's logprobs when streaming, matching the JSON answer", async () => {
    const json = await complete({ logprobs: true, top_logprobs: 2 });
    const response = await postChat(sim, key, {
      model: "openai/gpt-4o-mini",
      messages: HI,
      logprobs: true,
      top_logprobs: 2,
      stream: true,
    });
    const chunks = dataEvents(await response.text())
      .slice(0, -1)
      .map(
        (e) =>
          JSON.parse(e) as {
            choices: {
              delta: { content: string };
              logprobs: Logprobs | null;
              finish_reason: string | null;
            }[];
          },
      );
    const contentChunks = chunks.slice(0, -2);
    const streamed: ContentLogprob[] = [];
    for (const chunk of contentChunks) {
      const [choice] = chunk.choices;
      expect(choice!.logprobs!.refusal).toBeNull();
      expect(choice!.logprobs!.content).toHaveLength(1);
      expect(choice!.logprobs!.content![0]!.token).toBe(choice!.delta.content);
      streamed.push(...choice!.logprobs!.content!);
    }
    expect(streamed).toEqual(json.choices[0]!.logprobs!.content);
    expect(chunks.at(-2)!.choices[0]!.logprobs).toBeNull();
  });

  it("reads through the official client, streaming and not", async () => {
    const client = openai(sim, key);
    const body = { model: "openai/gpt-4o-mini", messages: HI, logprobs: true, top_logprobs: 1 };
    const completion = await client.chat.completions.create(body);
    const tokens = completion.choices[0]!.logprobs!.content!.map((e) => e.token);
    expect(tokens.join("")).toBe(completion.choices[0]!.message.content);
    // Read the raw chunks: the client's stream helper counts the first chunk's logprobs twice when that
    // chunk carries a token (OpenAI's own first chunk is an empty role delta; OpenRouter's is not).
    const streamed: string[] = [];
    for await (const chunk of await client.chat.completions.create({ ...body, stream: true })) {
      for (const entry of chunk.choices[0]?.logprobs?.content ?? []) streamed.push(entry.token);
    }
    expect(streamed).toEqual(tokens);
  });

  it("answers 400 for top_logprobs outside 0 to 20 or a logprobs that is not a boolean", async () => {
    for (const extra of [
      { logprobs: true, top_logprobs: 21 },
      { logprobs: true, top_logprobs: -1 },
      { logprobs: true, top_logprobs: 1.5 },
      { logprobs: true, top_logprobs: "3" },
      { logprobs: "yes" },
    ]) {
      const response = await postChat(sim, key, { messages: HI, ...extra });
      expect(response.status).toBe(400);
      const body = (await response.json()) as { error: { code: number; message: string } };
      expect(body.error.code).toBe(400);
      expect(body.error.message).toMatch(/logprobs/);
    }
  });
});
