import { describe, expect, it } from "vitest";
import { type CpuProfile, categorize, summarizeProfile } from "./profile.js";

const frame = (id: number, functionName: string, url: string, children: number[] = []) => ({
  id,
  callFrame: { functionName, url, lineNumber: 9, columnNumber: 0 },
  children,
});

// root → serve (wattfare) → parse (wattfare) ; root → (idle) ; root → write (undici)
const profile: CpuProfile = {
  nodes: [
    frame(1, "(root)", "", [2, 4, 5]),
    frame(2, "serve", "file:///repo/packages/server/dist/modules/chat/proxy.js", [3]),
    frame(3, "parse", "file:///repo/packages/server/dist/modules/chat/chat-request.js"),
    frame(4, "(idle)", ""),
    frame(5, "write", "file:///repo/node_modules/undici/lib/client.js"),
  ],
  startTime: 1000,
  endTime: 1500,
  samples: [3, 3, 2, 5, 4],
  timeDeltas: [100, 100, 100, 100, 100],
};

describe("summarizeProfile", () => {
  it("splits self time by function and package, leaving idle time out of the shares", () => {
    const s = summarizeProfile(profile);
    expect(s.samples).toBe(5);
    expect(s.busyMs).toBeCloseTo(0.4);
    expect(s.selfByCategory.map((r) => [r.name, r.share])).toEqual([
      ["wattfare server", 0.75],
      ["undici", 0.25],
    ]);
    expect(s.selfByFunction[0]?.name).toBe("parse packages/server/dist/modules/chat/chat-request.js:10");
  });

  it("counts inclusive time of Wattfare's functions over their callees", () => {
    const s = summarizeProfile(profile);
    const serve = s.inclusiveWattfare.find((r) => r.name.startsWith("serve "));
    expect(serve?.share).toBeCloseTo(0.75);
  });

  it("keeps only the samples inside the window", () => {
    // Sample timestamps: 1100, 1200, 1300, 1400, 1500.
    const s = summarizeProfile(profile, { fromUs: 1250, toUs: 1450 });
    expect(s.samples).toBe(2);
    expect(s.selfByCategory.map((r) => r.name)).toEqual(["wattfare server", "undici"]);
  });
});

describe("categorize", () => {
  it("names packages, node internals and V8 pseudo-frames", () => {
    expect(categorize("file:///x/node_modules/@fastify/ajv/index.js", "f")).toBe("@fastify/ajv");
    expect(categorize("node:internal/streams/readable", "f")).toBe("node:streams");
    expect(categorize("node:net", "f")).toBe("node:net");
    expect(categorize("", "(garbage collector)")).toBe("(garbage collector)");
    expect(categorize("", "JSONParse")).toBe("V8 builtins / native");
  });
});
