import { describe, expect, it } from "vitest";
import { valueForSchema } from "./schema-value.js";

const word = () => "word";

describe("valueForSchema", () => {
  it("takes the required properties, or every property when none is listed", () => {
    const properties = { a: { type: "string" }, b: { type: "integer" } };
    expect(valueForSchema({ type: "object", properties, required: ["b"] }, word)).toEqual({ b: 1 });
    expect(valueForSchema({ type: "object", properties }, word)).toEqual({ a: "word", b: 1 });
    expect(valueForSchema({ type: "object" }, word)).toEqual({});
  });

  it("picks enums' first value, const, and the first non-null alternative or type", () => {
    expect(valueForSchema({ enum: [3, 4] }, word)).toBe(3);
    expect(valueForSchema({ const: "x" }, word)).toBe("x");
    expect(valueForSchema({ oneOf: [{ type: "null" }, { type: "boolean" }] }, word)).toBe(true);
    expect(valueForSchema({ type: ["null", "number"] }, word)).toBe(1);
    expect(valueForSchema({ type: "null" }, word)).toBeNull();
  });

  it("keeps numbers within their bounds and strings within their lengths and formats", () => {
    expect(valueForSchema({ type: "integer", minimum: 5 }, word)).toBe(5);
    expect(valueForSchema({ type: "integer", exclusiveMinimum: 1 }, word)).toBe(2);
    expect(valueForSchema({ type: "number", maximum: 0.5 }, word)).toBe(0.5);
    expect(valueForSchema({ type: "integer", exclusiveMaximum: 0 }, word)).toBe(-1);
    expect(valueForSchema({ type: "string", minLength: 10 }, word)).toBe("wordwordwo");
    expect(valueForSchema({ type: "string", maxLength: 2 }, word)).toBe("wo");
    expect(valueForSchema({ type: "string", format: "date-time" }, word)).toBe("2025-01-01T00:00:00Z");
  });

  it("fills arrays to minItems, follows local $refs and merges allOf", () => {
    const schema = {
      $defs: { id: { type: "integer" } },
      type: "array",
      items: { $ref: "#/$defs/id" },
      minItems: 2,
    };
    expect(valueForSchema(schema, word)).toEqual([1, 1]);
    expect(valueForSchema({ type: "array", items: { type: "string" } }, word)).toEqual([]);
    expect(
      valueForSchema(
        { allOf: [{ properties: { a: { type: "boolean" } } }, { properties: { b: { const: 2 } } }] },
        word,
      ),
    ).toEqual({ a: true, b: 2 });
  });

  it("ends a recursive $ref in null instead of looping", () => {
    const tree = { type: "object", properties: { child: { $ref: "#" } } };
    const value = JSON.stringify(valueForSchema(tree, word));
    expect(value).toContain("null");
    expect(value.length).toBeLessThan(200);
  });
});
