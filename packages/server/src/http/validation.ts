import type { z } from "zod";
import { ApiError } from "../errors.js";

/** Parses with a zod schema; the first problem becomes a 400 naming the field. */
export function parseOr400<T>(schema: z.ZodType<T>, value: unknown, what = "body"): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue && issue.path.length > 0 ? issue.path.join(".") : what;
  const message = issue ? `${field}: ${issue.message}` : `${what} is invalid`;
  return fail(message, field);
}

function fail(message: string, param: string): never {
  throw new ApiError("invalid_request", message, { param });
}

/** `appUserId` (body, query and x-wattfare-user alike): 1–256 ASCII chars 0x21–0x7E. */
export const APP_USER_ID = /^[\x21-\x7E]{1,256}$/;
export const APP_USER_ID_MESSAGE = "must be 1-256 printable ASCII characters without spaces";
