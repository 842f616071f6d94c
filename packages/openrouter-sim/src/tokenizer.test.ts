import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { countPromptTokens, TOKENS_PER_IMAGE } from "./tokenizer.js";

const bytes = (value: unknown): number => Buffer.byteLength(JSON.stringify(value), "utf8");

describe("countPromptTokens", () => {
  it("counts ceil(bytes / 4) + 4 per message, plus 3 per request", () => {
    const message = { role: "user", content: "Hi" }; // 30 bytes of JSON
    expect(countPromptTokens({ messages: [message] })).toEqual({ tokens: 3 + 8 + 4, images: 0 });
    expect(countPromptTokens({ messages: [message, message] }).tokens).toBe(3 + 2 * (8 + 4));
  });

  it("counts tools, functions, tool_choice, response_format and prediction, not sampling parameters", () => {
    const base = { messages: [{ role: "user", content: "Hi" }] };
    const tool = { type: "function", function: { name: "lookup", parameters: { type: "object" } } };
    const withTools = countPromptTokens({ ...base, tools: [tool] }).tokens;
    expect(withTools).toBe(15 + Math.ceil(bytes(tool) / 4) + 4);
    const fn = { name: "legacy", parameters: {} };
    expect(countPromptTokens({ ...base, functions: [fn] }).tokens).toBe(15 + Math.ceil(bytes(fn) / 4) + 4);
    const format = { type: "json_schema", json_schema: { name: "x", schema: { type: "object" } } };
    expect(countPromptTokens({ ...base, response_format: format }).tokens).toBe(
      15 + Math.ceil(bytes(format) / 4),
    );
    expect(countPromptTokens({ ...base, tool_choice: "auto" }).tokens).toBe(15 + 2);
    expect(
      countPromptTokens({ ...base, prediction: { type: "content", content: "x" } }).tokens,
    ).toBeGreaterThan(15);
    expect(countPromptTokens({ ...base, temperature: 0.2, max_tokens: 99, stream: true }).tokens).toBe(15);
  });

  it("counts an image part as a flat number of tokens and reports it for per-image pricing", () => {
    const message = (url: string) => ({
      role: "user",
      content: [
        { type: "text", text: "What is this?" },
        { type: "image_url", image_url: { url } },
      ],
    });
    const small = countPromptTokens({ messages: [message(`data:image/png;base64,${"A".repeat(1000)}`)] });
    const large = countPromptTokens({ messages: [message(`data:image/png;base64,${"A".repeat(100_000)}`)] });
    expect(small).toEqual(large);
    expect(small.images).toBe(1);
    const text = countPromptTokens({ messages: [message("")] }).tokens;
    // An empty URL counts min(85, bytes('""')) = 2 tokens; any real one counts the flat 85.
    expect(small.tokens - text).toBe(TOKENS_PER_IMAGE - 2);
  });

  it("counts content parts in multi-part messages", () => {
    const short = countPromptTokens({ messages: [{ role: "user", content: [{ type: "text", text: "a" }] }] });
    const long = countPromptTokens({
      messages: [{ role: "user", content: [{ type: "text", text: "a".repeat(400) }] }],
    });
    expect(long.tokens - short.tokens).toBeGreaterThanOrEqual(99);
  });

  it("never counts more than one token per UTF-8 byte of prompt-side JSON plus 4 per message or tool plus 3", () => {
    const part = fc.oneof(
      fc.record({ type: fc.constant("text"), text: fc.string({ unit: "grapheme" }) }),
      fc.record({
        type: fc.constant("image_url"),
        image_url: fc.record({ url: fc.string({ maxLength: 300 }) }),
      }),
      fc.record({ type: fc.constant("image_url"), image_url: fc.string({ maxLength: 300 }) }),
    );
    const message = fc.record({
      role: fc.constantFrom("system", "user", "assistant", "tool"),
      content: fc.oneof(fc.string({ unit: "grapheme" }), fc.array(part, { maxLength: 4 }), fc.constant(null)),
    });
    const request = fc.record(
      {
        messages: fc.array(message, { maxLength: 6 }),
        tools: fc.array(fc.jsonValue(), { maxLength: 3 }),
        functions: fc.array(fc.jsonValue(), { maxLength: 2 }),
        tool_choice: fc.jsonValue(),
        response_format: fc.jsonValue(),
      },
      { requiredKeys: ["messages"] },
    );
    fc.assert(
      fc.property(request, (body) => {
        const lists = [body.messages, body.tools ?? [], body.functions ?? []];
        const items = lists.flat();
        const scalars = [body.tool_choice, body.response_format].filter((v) => v !== undefined);
        const bound =
          [...items, ...scalars].reduce<number>((sum, v) => sum + bytes(v), 0) + 4 * items.length + 3;
        expect(countPromptTokens(body).tokens).toBeLessThanOrEqual(bound);
      }),
      { numRuns: 300 },
    );
  });
});
