import { describe, expect, it } from "vitest";
import { SessionTokens, tokenLifetimeMs } from "./session-tokens.js";

/** A JWT-shaped token with these claims (the signature is never checked by the browser). */
function jwt(claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${part({ alg: "HS256" })}.${part(claims)}.sig`;
}

/** A session endpoint that mints 10-minute tokens stamped with Wattfare's (not the page's) clock. */
function endpoint(serverNowSeconds: () => number) {
  let calls = 0;
  const source = async () => {
    calls++;
    const iat = serverNowSeconds();
    return { token: jwt({ n: calls, iat, exp: iat + 600 }), expiresAt: iat + 600 };
  };
  return { source, calls: () => calls };
}

describe("SessionTokens", () => {
  it("reuses a token until a minute before its lifetime ends, measured from when it arrived", async () => {
    let now = 1_000_000;
    const { source, calls } = endpoint(() => 1_700_000_000);
    const tokens = new SessionTokens(source, () => now);
    const first = await tokens.get();
    now += 539_000;
    expect(await tokens.get()).toBe(first);
    now += 1_000; // 540 s after it arrived: 60 s before expiry
    expect(await tokens.get()).not.toBe(first);
    expect(calls()).toBe(2);
  });

  it("ignores the page's clock skew: a token whose exp is in the page's past is still cached", async () => {
    // The page's clock runs an hour ahead of Wattfare's.
    let now = Date.UTC(2026, 0, 1, 13);
    const { source, calls } = endpoint(() => Date.UTC(2026, 0, 1, 12) / 1000);
    const tokens = new SessionTokens(source, () => now);
    const first = await tokens.get();
    now += 60_000;
    expect(await tokens.get()).toBe(first);
    expect(calls()).toBe(1);
  });

  it("shares one in-flight fetch between concurrent callers", async () => {
    const { source, calls } = endpoint(() => 1_700_000_000);
    const tokens = new SessionTokens(source);
    const all = await Promise.all([tokens.get(), tokens.get(), tokens.get()]);
    expect(new Set(all).size).toBe(1);
    expect(calls()).toBe(1);
  });

  it("fetches again after invalidate(), but not when a newer token already replaced the refused one", async () => {
    const { source, calls } = endpoint(() => 1_700_000_000);
    const tokens = new SessionTokens(source);
    const first = await tokens.get();
    tokens.invalidate(first);
    const second = await tokens.get();
    expect(second).not.toBe(first);
    tokens.invalidate(first); // a late 401 for the old token
    expect(await tokens.get()).toBe(second);
    expect(calls()).toBe(2);
  });

  it("lets the next caller try again after a failed fetch", async () => {
    let fail = true;
    const tokens = new SessionTokens(async () => {
      if (fail) throw new Error("offline");
      return jwt({ iat: 1, exp: 601 });
    });
    await expect(tokens.get()).rejects.toThrow("offline");
    fail = false;
    await expect(tokens.get()).resolves.toMatch(/\.sig$/);
  });

  it("accepts a bare token string, and refuses an empty answer with a TypeError", async () => {
    await expect(new SessionTokens(() => "abc").get()).resolves.toBe("abc");
    await expect(new SessionTokens(() => ({ token: "" })).get()).rejects.toBeInstanceOf(TypeError);
  });
});

describe("tokenLifetimeMs", () => {
  it("is exp − iat in ms, and 0 for anything that is not a JWT with both claims", () => {
    expect(tokenLifetimeMs(jwt({ iat: 100, exp: 700 }))).toBe(600_000);
    expect(tokenLifetimeMs(jwt({ exp: 700 }))).toBe(0);
    expect(tokenLifetimeMs(jwt({ iat: 700, exp: 100 }))).toBe(0);
    expect(tokenLifetimeMs("opaque")).toBe(0);
    expect(tokenLifetimeMs("a.!!!.c")).toBe(0);
  });

  it("asks the source again after clear(), and does not cache a fetch that was under way", async () => {
    let release: (token: string) => void = () => {};
    let calls = 0;
    const tokens = new SessionTokens(() => {
      calls++;
      return calls === 1
        ? new Promise<string>((resolve) => {
            release = resolve;
          })
        : Promise.resolve(jwt({ user: "bob", iat: 1, exp: 601 }));
    });
    const aliceFetch = tokens.get();
    tokens.clear(); // alice signed out while her token was being fetched
    const bob = await tokens.get();
    release(jwt({ user: "alice", iat: 1, exp: 601 }));
    await aliceFetch;
    expect(await tokens.get()).toBe(bob);
    expect(calls).toBe(2);
  });
});
