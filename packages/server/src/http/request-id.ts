import { randomUUID } from "node:crypto";

/** Request ids are always ours: a client's x-request-id is only logged, never trusted (DESIGN.md). */
export function newRequestId(): string {
  return `req_${randomUUID().replaceAll("-", "")}`;
}
