import { describe, expect, it } from "vitest";
import { costFromGeneration, costInBody, costInText, findUsageObject } from "./usage.js";

const body = (text: string) => Buffer.from(text, "utf8");

describe("reading the cost of a response", () => {
  it("reads usage.cost exactly from its decimal text, rounding a sub-nano part up", () => {
    const cost = costInBody(
      body('{"id":"gen-1","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"cost":8.41e-05}}'),
    );
    expect(cost).toEqual({ costNano: 84_100n, promptTokens: 5, completionTokens: 3 });
    expect(costInText('{"usage":{"cost":0.0000000001}}')?.costNano).toBe(1n);
  });

  it("adds the upstream inference cost only for a BYOK request", () => {
    const byok = '{"usage":{"cost":0.001,"is_byok":true,"cost_details":{"upstream_inference_cost":0.02}}}';
    expect(costInBody(body(byok))?.costNano).toBe(21_000_000n);
    expect(costInBody(body(byok.replace("true", "false")))?.costNano).toBe(1_000_000n);
  });

  it("does not take a BYOK request's fee alone for its cost when the provider's charge is missing or null", () => {
    for (const details of [
      '"cost_details":null',
      '"cost_details":{"upstream_inference_cost":null}',
      '"x":1',
    ]) {
      const text = `{"usage":{"cost":6.075e-7,"is_byok":true,${details}}}`;
      expect(costInBody(body(text)), text).toBeUndefined();
    }
    const generation = (upstream: string) =>
      costFromGeneration(
        `{"data":{"total_cost":6.075e-7,"is_byok":true,"upstream_inference_cost":${upstream}}}`,
      );
    expect(generation("null")).toBeUndefined();
    expect(generation("0.00001215")?.costNano).toBe(12_758n);
  });

  it("finds the usage object when a later 'usage' key is not one", () => {
    const text =
      '{"usage":{"cost":0.5},"choices":[{"message":{"content":"é","tool_calls":[{"usage":"a string"}]}}]}';
    expect(costInBody(body(text))?.costNano).toBe(500_000_000n);
  });

  it("takes the last usage object when there are several, as the stream's final event does", () => {
    expect(costInBody(body('{"a":{"usage":{"cost":1}},"usage":{"cost":2}}'))?.costNano).toBe(2_000_000_000n);
  });

  it("ends its search at a failed match at the very start of the text", () => {
    expect(findUsageObject('"usage":"none here"}')).toBeUndefined();
  });

  it("does not take a usage key quoted inside a string value", () => {
    expect(findUsageObject('{"content":"say \\"usage\\":{\\"cost\\":9}"}')).toBeUndefined();
    expect(costInBody(body('{"content":"say \\"usage\\":{\\"cost\\":9}"}'))).toBeUndefined();
  });

  it("trusts no cost that is missing, negative, not a number or truncated", () => {
    for (const text of [
      '{"choices":[]}',
      '{"usage":{"prompt_tokens":5}}',
      '{"usage":{"cost":-0.01}}',
      '{"usage":{"cost":"0.01"}}',
      '{"usage":{"cost":0.01',
    ]) {
      expect(costInBody(body(text)), text).toBeUndefined();
    }
  });
});
