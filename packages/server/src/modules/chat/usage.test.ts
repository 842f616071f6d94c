import { describe, expect, it } from "vitest";
import { costFromGeneration, costInBody, costInText } from "./usage.js";

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

  it("takes only the document's own usage, never one nested deeper, wherever each stands", () => {
    const read = (text: string) => [costInText(text)?.costNano, costInBody(body(text))?.costNano];
    expect(read('{"usage":{"cost":2},"a":{"usage":{"cost":1}}}')).toEqual([2_000_000_000n, 2_000_000_000n]);
    expect(read('{"a":{"usage":{"cost":1}}}')).toEqual([undefined, undefined]);
    expect(read('{"a":[{"usage":{"cost":1}}] }')).toEqual([undefined, undefined]);
    // debug.echo_upstream_body: a stream's first chunk echoes the request, tool schemas included.
    const echo =
      '{"id":"gen-1","choices":[],"debug":{"echo_upstream_body":{"tools":[{"function":{"parameters":{"properties":{"usage":{"cost":0}}}}}]}}}';
    expect(read(echo)).toEqual([undefined, undefined]);
  });

  it("ends its search at a failed match at the very start of the text", () => {
    expect(costInText('"usage":"none here"}')).toBeUndefined();
  });

  it("does not take a usage key quoted inside a string value", () => {
    expect(costInText('{"content":"say \\"usage\\":{\\"cost\\":9}"}')).toBeUndefined();
    expect(costInBody(body('{"content":"say \\"usage\\":{\\"cost\\":9}"}'))).toBeUndefined();
  });

  it("does not take a key that only ends in usage after an escaped quote", () => {
    expect(costInText('{"say \\"usage":{"cost":9}}')).toBeUndefined();
    expect(costInText('{"usage":{"cost":1},"say \\"usage":{"cost":9}}')?.costNano).toBe(1_000_000_000n);
    expect(costInText('{"say \\\\","usage":{"cost":2}}')?.costNano).toBe(2_000_000_000n);
  });

  it("trusts no earlier usage object when the last one is not valid JSON", () => {
    for (const last of ['{"cost":2,}', '{"cost":2,"x":', '{"cost":2 "x":1}']) {
      const text = `{"a":{"usage":{"cost":1}},"usage":${last}}`;
      expect(costInText(text), text).toBeUndefined();
    }
  });

  it("reads the tokens, and a repeated key's last value, as JSON.parse would", () => {
    const usage = (fields: string) => costInText(`{"usage":{${fields}}}`);
    expect(usage('"prompt_tokens":7,"completion_tokens":1e1,"cost":1e-9')).toEqual({
      costNano: 1n,
      promptTokens: 7,
      completionTokens: 10,
    });
    expect(usage('"prompt_tokens":-1,"completion_tokens":2.5,"cost":0')).toEqual({
      costNano: 0n,
      promptTokens: null,
      completionTokens: null,
    });
    expect(usage('"cost":1,"cost":null')).toBeUndefined();
    const byok = '"cost":0.001,"is_byok":true,"cost_details":{"upstream_inference_cost":0.02}';
    expect(usage(byok)?.costNano).toBe(21_000_000n);
    expect(usage(`${byok},"cost_details":null`)).toBeUndefined();
    expect(usage(`${byok},"is_byok":false`)?.costNano).toBe(1_000_000n);
    expect(
      usage('"c\\u006fst":0.5,"\\u0069s_byok":true,"cost_details":{"upstream_inference_cost":1}')?.costNano,
    ).toBe(1_500_000_000n);
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
