/**
 * Rate-limit keys, one namespace per limited thing (DESIGN.md "Errors and limits"):
 * `rl:sessions:<appId>`, `rl:chat:<appId>:user:<appUserId>`, `rl:chat:<appId>:grant:<grantId>`.
 *
 * Ids are used verbatim — readable in Redis, and an appUserId may contain ':' — yet no two keys can
 * collide: the appId is checked to contain no ':', so `rl:chat:<appId>:` ends at the first ':' after
 * `rl:chat:`; what follows starts with either `user:` or `grant:`, neither a prefix of the other; and the
 * id is always the last component, taking the whole rest of the key. Reading a key back left to right
 * therefore recovers (kind, appId, id) uniquely, which is exactly "no collisions". (An id containing
 * `:grant:` stays inside its user namespace: `rl:chat:app:user:x:grant:y` can only be user `x:grant:y`.)
 */

/** @example sessionsKey("app12345") === "rl:sessions:app12345" */
export function sessionsKey(appId: string): string {
  return `rl:sessions:${checkAppId(appId)}`;
}

/** @example chatUserKey("app12345", "alice") === "rl:chat:app12345:user:alice" */
export function chatUserKey(appId: string, appUserId: string): string {
  return `rl:chat:${checkAppId(appId)}:user:${appUserId}`;
}

/** @example chatGrantKey("app12345", "g1") === "rl:chat:app12345:grant:g1" */
export function chatGrantKey(appId: string, grantId: string): string {
  return `rl:chat:${checkAppId(appId)}:grant:${grantId}`;
}

/** The no-collision argument above rests on this check (real appIds are `[a-z0-9]{8,32}`). */
function checkAppId(appId: string): string {
  if (appId.length === 0 || appId.includes(":")) {
    throw new RangeError(`appId must be non-empty and contain no ':', got ${JSON.stringify(appId)}`);
  }
  return appId;
}
