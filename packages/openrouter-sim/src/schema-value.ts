/**
 * A deterministic JSON value that matches a JSON schema, for tool-call arguments and structured outputs.
 * Not a validator: it follows the parts of JSON Schema that request schemas use (types, properties,
 * required, enum, const, items/minItems, anyOf/oneOf/allOf, local `$ref`, numeric bounds, string formats
 * and lengths) and picks the plainest value each allows.
 */
import { isRecord, type JsonObject } from "./json.js";

/** Deeper schemas (or `$ref` cycles) end in `null` rather than recursing for ever. */
const MAX_DEPTH = 12;

/** Fixed values for the common string formats, so a `format` keeps its meaning. */
const FORMAT_VALUES: Record<string, string> = {
  "date-time": "2025-01-01T00:00:00Z",
  date: "2025-01-01",
  time: "00:00:00Z",
  email: "user@example.com",
  uri: "https://example.com",
  url: "https://example.com",
  uuid: "00000000-0000-4000-8000-000000000000",
  hostname: "example.com",
  ipv4: "127.0.0.1",
  ipv6: "::1",
};

/** `#/a/b` within the root schema, JSON Pointer escapes included; undefined when it does not resolve. */
function resolveRef(root: unknown, ref: string): unknown {
  if (ref === "#") return root;
  if (!ref.startsWith("#/")) return undefined;
  let node: unknown = root;
  for (const raw of ref.slice(2).split("/")) {
    const key = decodeURIComponent(raw).replaceAll("~1", "/").replaceAll("~0", "~");
    if (!isRecord(node)) return undefined;
    node = node[key];
  }
  return node;
}

function typeOf(schema: JsonObject): string {
  const type = schema.type;
  if (typeof type === "string") return type;
  if (Array.isArray(type)) {
    const first = type.find((t) => typeof t === "string" && t !== "null") ?? type[0];
    return typeof first === "string" ? first : "string";
  }
  if (isRecord(schema.properties)) return "object";
  if (schema.items !== undefined) return "array";
  return "string";
}

function numberFor(schema: JsonObject, integer: boolean): number {
  let value = 1;
  const { minimum, maximum, exclusiveMinimum, exclusiveMaximum } = schema;
  if (typeof minimum === "number" && value < minimum) value = integer ? Math.ceil(minimum) : minimum;
  if (typeof exclusiveMinimum === "number" && value <= exclusiveMinimum)
    value = integer ? Math.floor(exclusiveMinimum) + 1 : exclusiveMinimum + 1;
  if (typeof maximum === "number" && value > maximum) value = integer ? Math.floor(maximum) : maximum;
  if (typeof exclusiveMaximum === "number" && value >= exclusiveMaximum)
    value = integer ? Math.ceil(exclusiveMaximum) - 1 : exclusiveMaximum - 1;
  return value;
}

function stringFor(schema: JsonObject, word: () => string): string {
  const format = typeof schema.format === "string" ? FORMAT_VALUES[schema.format] : undefined;
  let text = format ?? word();
  if (typeof schema.minLength === "number" && text.length < schema.minLength) {
    text = text.padEnd(schema.minLength, text === "" ? "x" : text);
  }
  if (typeof schema.maxLength === "number" && text.length > schema.maxLength) {
    text = text.slice(0, Math.max(0, schema.maxLength));
  }
  return text;
}

/** `allOf` as one schema: its parts' keywords, with properties and required merged. */
function mergeAllOf(schema: JsonObject, parts: unknown[], root: unknown): JsonObject {
  const merged: JsonObject = { ...schema };
  delete merged.allOf;
  const properties: JsonObject = isRecord(schema.properties) ? { ...schema.properties } : {};
  const required = new Set<unknown>(Array.isArray(schema.required) ? schema.required : []);
  for (let part of parts) {
    if (isRecord(part) && typeof part.$ref === "string") part = resolveRef(root, part.$ref);
    if (!isRecord(part)) continue;
    Object.assign(merged, part, merged.type === undefined ? {} : { type: merged.type });
    if (isRecord(part.properties)) Object.assign(properties, part.properties);
    if (Array.isArray(part.required)) for (const name of part.required) required.add(name);
  }
  if (Object.keys(properties).length > 0) merged.properties = properties;
  if (required.size > 0) merged.required = [...required];
  return merged;
}

function valueAt(schema: unknown, root: unknown, word: () => string, depth: number): unknown {
  if (depth > MAX_DEPTH || schema === false) return null;
  if (!isRecord(schema)) return word();
  if (typeof schema.$ref === "string") return valueAt(resolveRef(root, schema.$ref), root, word, depth + 1);
  if ("const" in schema) return schema.const;
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0];
  if (Array.isArray(schema.allOf) && schema.allOf.length > 0) {
    return valueAt(mergeAllOf(schema, schema.allOf, root), root, word, depth + 1);
  }
  for (const key of ["anyOf", "oneOf"] as const) {
    const options = schema[key];
    if (Array.isArray(options) && options.length > 0) {
      const chosen = options.find((o) => !(isRecord(o) && o.type === "null")) ?? options[0];
      return valueAt(chosen, root, word, depth + 1);
    }
  }
  switch (typeOf(schema)) {
    case "object": {
      const properties = isRecord(schema.properties) ? schema.properties : {};
      const required = Array.isArray(schema.required)
        ? schema.required.filter((name): name is string => typeof name === "string")
        : [];
      const names = required.length > 0 ? required : Object.keys(properties);
      const value: JsonObject = {};
      for (const name of names) value[name] = valueAt(properties[name], root, word, depth + 1);
      return value;
    }
    case "array": {
      const count = typeof schema.minItems === "number" ? Math.min(Math.max(0, schema.minItems), 100) : 0;
      return Array.from({ length: count }, () => valueAt(schema.items, root, word, depth + 1));
    }
    case "integer":
      return numberFor(schema, true);
    case "number":
      return numberFor(schema, false);
    case "boolean":
      return true;
    case "null":
      return null;
    default:
      return stringFor(schema, word);
  }
}

/** The value for `schema`; each string draws the next word from `word`. */
export function valueForSchema(schema: unknown, word: () => string): unknown {
  return valueAt(schema, schema, word, 0);
}
