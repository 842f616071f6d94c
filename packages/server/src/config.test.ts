import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, unknownSettings } from "./config.js";
import { DEV_SECRET_FILE, loadKeyRing } from "./server-secret.js";

const SECRET = "s".repeat(40);

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env, "/srv");
  } catch (error) {
    if (error instanceof ConfigError) return [...error.problems];
    throw error;
  }
  return [];
}

describe("unknownSettings", () => {
  it("names WATTFARE_ variables neither the server nor the SDK reads, and nothing else", () => {
    expect(
      unknownSettings({
        WATTFARE_PUBLC_URL: "https://pay.example", // misspelt
        WATTFARE_PUBLIC_URL: "https://pay.example",
        WATTFARE_SECRET_KEY: "sk_live_x", // the SDK's
        WATTFARE_BASE_URL: "http://127.0.0.1:8787",
        WATTFARE_CHAT_PER_MINUTE: "60",
        PATH: "/usr/bin",
      }),
    ).toEqual(["WATTFARE_CHAT_PER_MINUTE", "WATTFARE_PUBLC_URL"]);
  });
});

describe("loadConfig", () => {
  it("needs no configuration at all in development, with SQLite under ./data of the directory npm ran from", () => {
    const config = loadConfig({ INIT_CWD: "/home/me/project" });
    expect(config.database).toEqual({ kind: "sqlite", path: "/home/me/project/data/wattfare.db" });
    expect(config.port).toBe(8787);
    expect(config.upstreamUrl).toBe("https://openrouter.ai/api/v1");
    expect(config.openRouterAuthUrl).toBe("https://openrouter.ai/auth");
    expect(config.publicUrl).toBe("http://localhost:8787");
    expect(config.production).toBe(false);
    expect(Object.isFrozen(config)).toBe(true);
  });

  it("names every problem at once", () => {
    const problems = problemsOf({
      PORT: "70000",
      WATTFARE_SERVER_SECRET: "short",
      WATTFARE_UPSTREAM_URL: "ftp://x",
    });
    expect(problems.some((p) => p.startsWith("PORT"))).toBe(true);
    expect(problems.some((p) => p.startsWith("WATTFARE_UPSTREAM_URL"))).toBe(true);
    expect(problemsOf({ WATTFARE_SERVER_SECRET: "short", WATTFARE_REDIS_URL: "redis://x" })).toHaveLength(2);
  });

  it("requires a real secret and an https public URL in production", () => {
    const problems = problemsOf({ NODE_ENV: "production", WATTFARE_PUBLIC_URL: "http://example.com" });
    expect(problems.join("\n")).toContain("WATTFARE_SERVER_SECRET: required when NODE_ENV=production");
    expect(problems.join("\n")).toContain("WATTFARE_PUBLIC_URL: must be https");
    expect(
      problemsOf({
        NODE_ENV: "production",
        WATTFARE_PUBLIC_URL: "https://w.example",
        WATTFARE_SERVER_SECRET: SECRET,
      }),
    ).toEqual([]);
  });

  it("refuses a NODE_ENV that means production but would not turn its rules on", () => {
    for (const near of ["Production", "PRODUCTION", "prod", "production "]) {
      expect(problemsOf({ NODE_ENV: near })).toEqual([
        'NODE_ENV: must be exactly "production" for production\'s rules (they are off for any other value)',
      ]);
    }
    for (const other of ["development", "test", "staging"])
      expect(problemsOf({ NODE_ENV: other })).toEqual([]);
  });

  it("refuses a plain-http upstream or OAuth page in production, except on a loopback host", () => {
    const prod = {
      NODE_ENV: "production",
      WATTFARE_PUBLIC_URL: "https://w.example",
      WATTFARE_SERVER_SECRET: SECRET,
    };
    expect(problemsOf({ ...prod, WATTFARE_UPSTREAM_URL: "http://evil.example/api/v1" })).toEqual([
      "WATTFARE_UPSTREAM_URL: must be https when NODE_ENV=production (plain http only to a loopback host)",
    ]);
    expect(problemsOf({ ...prod, WATTFARE_OPENROUTER_AUTH_URL: "http://openrouter.ai/auth" })).toHaveLength(
      1,
    );
    expect(problemsOf({ ...prod, WATTFARE_UPSTREAM_URL: "http://127.0.0.1:4010/api/v1" })).toEqual([]);
    expect(problemsOf({ WATTFARE_UPSTREAM_URL: "http://sim.internal/api/v1" })).toEqual([]); // development
    expect(problemsOf({ WATTFARE_UPSTREAM_URL: "https://openrouter.ai/api/v1?x=1" })).toEqual([
      "WATTFARE_UPSTREAM_URL: must have no query or fragment",
    ]);
  });

  it("refuses credentials in the upstream, OAuth page and public URLs, without repeating them", () => {
    expect(problemsOf({ WATTFARE_UPSTREAM_URL: "https://me:hunter2@proxy.example/api/v1" })).toEqual([
      "WATTFARE_UPSTREAM_URL: must have no user:password@",
    ]);
    expect(problemsOf({ WATTFARE_OPENROUTER_AUTH_URL: "https://me@openrouter.ai/auth" })).toEqual([
      "WATTFARE_OPENROUTER_AUTH_URL: must have no user:password@",
    ]);
    expect(problemsOf({ WATTFARE_PUBLIC_URL: "https://me:hunter2@w.example" })[0]).toContain(
      "WATTFARE_PUBLIC_URL: must be an origin",
    );
  });

  it.each([
    ["PORT", ""],
    ["PORT", " "],
    ["PORT", "0x1f90"],
    ["PORT", "80.5"],
    ["WATTFARE_UPSTREAM_CONNECTIONS", "1e3"],
  ])("refuses %s=%j: numbers are whole decimal numbers", (name, value) => {
    expect(problemsOf({ [name]: value }).join("\n")).toContain(`${name}: must be a whole number`);
  });

  it.each([
    ["WATTFARE_MAX_MONTHLY_USD", ""],
    ["WATTFARE_MAX_MONTHLY_USD", "0x10"],
    ["WATTFARE_MAX_MONTHLY_USD", "1e3"],
    ["WATTFARE_DEFAULT_MONTHLY_USD", "0b11"],
    ["WATTFARE_DEFAULT_MONTHLY_USD", " 5"],
  ])("refuses %s=%j: amounts are plain decimal numbers of USD", (name, value) => {
    expect(problemsOf({ [name]: value })).toEqual([`${name}: must be an amount in USD, e.g. 1000 or 2.50`]);
  });

  it("reads amounts in USD with cents", () => {
    const config = loadConfig({ WATTFARE_MAX_MONTHLY_USD: "250.50", WATTFARE_DEFAULT_MONTHLY_USD: "2.5" });
    expect(config.limits).toMatchObject({ maxMonthlyUsd: 250.5, defaultMonthlyUsd: 2.5 });
  });

  it("refuses a server secret of whitespace, or with whitespace at either end, and a mail sender of two lines", () => {
    expect(problemsOf({ WATTFARE_SERVER_SECRET: " ".repeat(40) })[0]).toContain("WATTFARE_SERVER_SECRET");
    expect(problemsOf({ WATTFARE_SERVER_SECRET: `${SECRET}\n` })[0]).toContain("no whitespace");
    expect(problemsOf({ WATTFARE_MAIL_FROM: "a@b.example\r\nBcc: x@y.example" })[0]).toContain(
      "WATTFARE_MAIL_FROM: must be one line",
    );
  });

  it("says PostgreSQL and Redis are not supported yet rather than ignoring them", () => {
    expect(problemsOf({ WATTFARE_DATABASE_URL: "postgres://localhost/db" })[0]).toContain(
      "not supported yet",
    );
    expect(problemsOf({ WATTFARE_REDIS_URL: "redis://localhost" })[0]).toContain("not supported yet");
    expect(problemsOf({ WATTFARE_DATABASE_URL: "mysql://x" })[0]).toContain("sqlite:");
  });

  it("resolves a sqlite: path against the working directory", () => {
    expect(loadConfig({ WATTFARE_DATABASE_URL: "sqlite:./db/w.db" }, "/srv").database.path).toBe(
      "/srv/db/w.db",
    );
  });

  it("trusts X-Forwarded-For only from the listed proxies, never from a hop count or every peer", () => {
    expect(loadConfig({}).trustProxy).toBe(false);
    expect(loadConfig({ WATTFARE_TRUST_PROXY: "10.0.0.0/8, loopback,fd00::/8,192.0.2.7" }).trustProxy).toBe(
      "10.0.0.0/8,loopback,fd00::/8,192.0.2.7",
    );
    for (const value of ["true", "*", "2", "10.0.0.0/33", "::1/129", "proxy.example", "10.0.0.1/8/1", ""]) {
      expect(problemsOf({ WATTFARE_TRUST_PROXY: value }).join("\n")).toMatch(/WATTFARE_TRUST_PROXY/);
    }
  });

  it("refuses a public URL with a path", () => {
    expect(problemsOf({ WATTFARE_PUBLIC_URL: "https://w.example/app" })[0]).toContain("without a path");
  });
});

describe("the server secret", () => {
  it("is generated once under the data directory with 0600 permissions and reused", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wattfare-secret-"));
    const config = loadConfig({ WATTFARE_DATA_DIR: dir });
    const first = loadKeyRing(config);
    const file = path.join(dir, DEV_SECRET_FILE);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(loadKeyRing(config).current.kid).toBe(first.current.kid);
  });

  it("comes from WATTFARE_SERVER_SECRET when set, with the previous one kept for rotation", () => {
    const ring = loadKeyRing(
      loadConfig({ WATTFARE_SERVER_SECRET: SECRET, WATTFARE_SERVER_SECRET_PREVIOUS: "p".repeat(40) }),
    );
    expect(ring.previous).toBeDefined();
    expect(ring.byKid(ring.previous?.kid ?? "")).toBe(ring.previous);
  });
});
