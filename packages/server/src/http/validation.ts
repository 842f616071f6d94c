import type { z } from "zod";
import { ApiError } from "../errors.js";

/**
 * Parses with a zod schema; the first problem becomes a 400 naming the field, in `param` and in the
 * message: an unknown field by its own name (`requestLimit.extra`), a body that is not a JSON object
 * as such.
 */
export function parseOr400<T>(schema: z.ZodType<T>, value: unknown, what = "body"): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  if (!issue) return fail(`${what} is invalid`, what);
  if (issue.code === "unrecognized_keys") {
    const [first = "", ...others] = issue.keys;
    const field = [...issue.path, first].join(".");
    const also = others.length === 0 ? "" : ` (also unknown: ${others.join(", ")})`;
    const known = fieldsAt(schema, issue.path);
    const expected = known === undefined ? "" : `; accepted here: ${known.join(", ")}`;
    return fail(`${field}: unknown field${also}${expected}`, field);
  }
  if (
    what === "body" &&
    issue.path.length === 0 &&
    issue.code === "invalid_type" &&
    issue.expected === "object"
  ) {
    return fail("The request body must be a JSON object (Content-Type: application/json).", what);
  }
  const field = issue.path.length > 0 ? issue.path.join(".") : what;
  return fail(`${field}: ${issue.message}`, field);
}

type Shaped = { shape?: Record<string, unknown>; unwrap?: () => unknown };

/** The field names of the object schema at `path` (through optional wrappers), if it is one. */
function fieldsAt(schema: unknown, path: readonly PropertyKey[]): string[] | undefined {
  const unwrapped = (s: unknown): Shaped | undefined => {
    let current = s as Shaped | undefined;
    while (current?.unwrap !== undefined && current.shape === undefined) current = current.unwrap() as Shaped;
    return current;
  };
  let current = unwrapped(schema);
  // An array was unwrapped into its element already: its index leads nowhere further.
  for (const key of path) if (typeof key !== "number") current = unwrapped(current?.shape?.[String(key)]);
  const shape = current?.shape;
  return shape === undefined ? undefined : Object.keys(shape);
}

function fail(message: string, param: string): never {
  throw new ApiError("invalid_request", message, { param });
}

/** `appUserId` (body, query and x-wattfare-user alike): 1–256 ASCII chars 0x21–0x7E. */
export const APP_USER_ID = /^[\x21-\x7E]{1,256}$/;
export const APP_USER_ID_MESSAGE = "must be 1-256 printable ASCII characters without spaces";
