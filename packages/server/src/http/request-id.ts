import { randomUUID } from "node:crypto";

/**
 * Request ids are always ours: a client's x-request-id is only logged, never trusted (DESIGN.md).
 *
 * `req_` + 32 hex digits: the first 12 are the millisecond time, the other 20 random (80 bits), like a
 * UUIDv7. The id is the key of a reservation and a ledger row, so ids that grow with time are appended to
 * the right edge of those indexes; random ids scattered every insert over the whole index, which on a
 * grown database made each group commit write (and first read) a page per row.
 */
export function newRequestId(now = Date.now()): string {
  // The UUID's fully random digits only (8 + 12): its version and variant digits sit in between.
  const uuid = randomUUID();
  return `req_${now.toString(16).padStart(12, "0")}${uuid.slice(0, 8)}${uuid.slice(24)}`;
}
