import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { chatGrantKey, chatUserKey, sessionsKey } from "./keys.js";

type Owner = { kind: "sessions"; appId: string } | { kind: "user" | "grant"; appId: string; id: string };

function keyOf(owner: Owner): string {
  if (owner.kind === "sessions") return sessionsKey(owner.appId);
  return owner.kind === "user" ? chatUserKey(owner.appId, owner.id) : chatGrantKey(owner.appId, owner.id);
}

/** Reads a key back left to right, as the comment in keys.ts argues is always possible. */
function ownerOf(key: string): Owner {
  const sessions = /^rl:sessions:([^:]+)$/.exec(key);
  if (sessions?.[1] !== undefined) return { kind: "sessions", appId: sessions[1] };
  const chat = /^rl:chat:([^:]+):(user|grant):(.*)$/s.exec(key);
  if (chat?.[1] === undefined || chat[3] === undefined) throw new Error(`unreadable key ${key}`);
  return { kind: chat[2] === "user" ? "user" : "grant", appId: chat[1], id: chat[3] };
}

describe("rate-limit keys", () => {
  it("put sessions, chat users and chat grants in separate namespaces", () => {
    expect(sessionsKey("app12345")).toBe("rl:sessions:app12345");
    expect(chatUserKey("app12345", "alice")).toBe("rl:chat:app12345:user:alice");
    expect(chatGrantKey("app12345", "g1")).toBe("rl:chat:app12345:grant:g1");
  });

  it("use ids verbatim, colons included", () => {
    expect(chatUserKey("app12345", "org:42:grant:7")).toBe("rl:chat:app12345:user:org:42:grant:7");
  });

  it("keep a user whose id looks like a namespace apart from the grant it imitates", () => {
    expect(chatUserKey("app12345", "x:grant:y")).not.toBe(chatGrantKey("app12345", "y"));
    expect(chatUserKey("app12345", "grant:y")).not.toBe(chatGrantKey("app12345", "y"));
  });

  it("refuse an appId that is empty or contains ':', on which collision-freedom rests", () => {
    // Otherwise user "c" of app "a:user:b" and user "b:user:c" of app "a" would share a key.
    expect(() => chatUserKey("a:user:b", "c")).toThrow(RangeError);
    expect(() => sessionsKey("")).toThrow(RangeError);
    expect(() => chatGrantKey("a:b", "c")).toThrow(RangeError);
  });

  it("map every owner to a key from which it can be read back, so no two owners share a key", () => {
    const appId = fc.string({ minLength: 1, maxLength: 12 }).filter((s) => !s.includes(":"));
    const id = fc.string({
      unit: fc.constantFrom(":", "user", "grant", "sessions", "x", "\n", "é"),
      maxLength: 8,
    });
    const owner: fc.Arbitrary<Owner> = fc.oneof(
      fc.record({ kind: fc.constant("sessions" as const), appId }),
      fc.record({ kind: fc.constantFrom("user" as const, "grant" as const), appId, id }),
    );
    fc.assert(
      fc.property(owner, (o) => {
        expect(ownerOf(keyOf(o))).toEqual(o);
      }),
      { numRuns: 2000 },
    );
  });
});
