/**
 * The browser entry as a browser loads it: only relative `.js` imports (no bare specifiers, no Node
 * modules), and errors that the server entry recognises.
 */
import { getEventListeners } from "node:events";
import { readdir, readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import * as server from "../server/index.js";
import * as browser from "./index.js";

const DIST = fileURLToPath(new URL("../../dist/", import.meta.url));

/** Every module the built browser entry loads, following its imports from dist/browser/index.js. */
async function importGraph(): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  const pending = ["browser/index.js"];
  while (pending.length > 0) {
    const file = pending.pop() ?? "";
    if (graph.has(file)) continue;
    const source = await readFile(`${DIST}${file}`, "utf8");
    const specifiers = [...source.matchAll(/^(?:import|export)\s[^;]*?from\s+"([^"]+)"/gms)].map(
      (m) => m[1] ?? "",
    );
    graph.set(file, specifiers);
    for (const specifier of specifiers) {
      if (specifier.startsWith(".")) pending.push(new URL(specifier, `file:///${file}`).pathname.slice(1));
    }
  }
  return graph;
}

describe("the built browser entry", () => {
  it("imports only relative .js modules, so a plain <script type=module> can load it", async () => {
    const graph = await importGraph();
    expect(graph.size).toBeGreaterThan(3);
    for (const [file, specifiers] of graph) {
      for (const specifier of specifiers) {
        expect(specifier, `${file} imports ${specifier}`).toMatch(/^\.\.?\/.*\.js$/);
      }
    }
    expect([...graph.keys()].some((file) => file.startsWith("server/"))).toBe(false);
  });

  it("mentions no Node API in any module it loads", async () => {
    for (const file of (await importGraph()).keys()) {
      // Code only: the JSDoc examples may well show server code.
      const source = (await readFile(`${DIST}${file}`, "utf8")).replaceAll(/\/\*[\s\S]*?\*\//g, "");
      expect(source, file).not.toMatch(/\bnode:|\brequire\(|\bprocess\.|\bBuffer\b/);
    }
  });

  it("is what package.json exports at ./browser", async () => {
    const pkg = JSON.parse(await readFile(`${DIST}../package.json`, "utf8")) as {
      exports: Record<string, { default: string }>;
    };
    expect(pkg.exports["./browser"]?.default).toBe("./dist/browser/index.js");
    expect((await readdir(`${DIST}browser`)).includes("index.js")).toBe(true);
  });
});

describe("errors shared with the server entry", () => {
  it("uses one set of classes and codes, so the server's isWattfareError recognises browser errors", () => {
    expect(browser.BudgetExceededError).toBe(server.BudgetExceededError);
    expect(browser.ERROR_CODES).toBe(server.ERROR_CODES);
    const closed = new browser.PopupClosedError();
    expect(server.isWattfareError(closed, "popup_closed")).toBe(true);
    expect(closed).toBeInstanceOf(server.WattfareError);
  });

  it("types a relayed error body by its code, as the server entry would have thrown it", async () => {
    const relayed = new Response(
      JSON.stringify({ error: { code: "budget_exceeded", message: "Cap reached." } }),
      {
        status: 402,
      },
    );
    const error = await browser.errorFromResponse(relayed);
    expect(error).toBeInstanceOf(server.BudgetExceededError);
    expect(error).toMatchObject({ code: "budget_exceeded", status: 402, message: "Cap reached." });
  });
});

describe("readChatStream", () => {
  const sse = (events: string[]) =>
    new Response(events.map((data) => `data: ${data}\n\n`).join(""), {
      headers: { "content-type": "text/event-stream" },
    });
  const chunk = (content: string) => JSON.stringify({ choices: [{ index: 0, delta: { content } }] });

  it("yields the chunks your backend piped through, up to [DONE]", async () => {
    let text = "";
    for await (const c of await browser.readChatStream(sse([chunk("Hel"), chunk("lo"), "[DONE]"]))) {
      text += c.choices[0]?.delta.content ?? "";
    }
    expect(text).toBe("Hello");
  });

  it("throws an error event from inside the stream as an UpstreamError", async () => {
    const stream = await browser.readChatStream(
      sse([chunk("Hel"), JSON.stringify({ error: { code: "upstream", message: "The provider failed." } })]),
    );
    const read = async () => {
      for await (const _ of stream);
    };
    await expect(read()).rejects.toMatchObject({ code: "upstream", message: "The provider failed." });
  });

  /** An SSE answer that sends `first` and then stalls until cancelled; `cancelled` says whether it was. */
  const stalling = (first: string) => {
    const state = { cancelled: false };
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(`data: ${first}\n\n`));
      },
      cancel() {
        state.cancelled = true;
      },
    });
    return { state, response: new Response(body, { headers: { "content-type": "text/event-stream" } }) };
  };

  it("stops a stalled stream at once on stream.abort(), cancelling the body, and ends the loop quietly", async () => {
    const { state, response } = stalling(chunk("Hel"));
    const stream = await browser.readChatStream(response);
    const seen: string[] = [];
    const reading = (async () => {
      for await (const c of stream) {
        seen.push(c.choices[0]?.delta.content ?? "");
        stream.abort();
      }
    })();
    await expect(reading).resolves.toBeUndefined();
    expect(seen).toEqual(["Hel"]);
    expect(state.cancelled).toBe(true);
  });

  it("stops a stalled stream when the signal given to readChatStream fires, as a user abort", async () => {
    const { state, response } = stalling(chunk("Hel"));
    const controller = new AbortController();
    const stream = await browser.readChatStream(response, { signal: controller.signal });
    const reading = (async () => {
      for await (const _ of stream) controller.abort();
    })();
    await expect(reading).rejects.toBeInstanceOf(browser.APIUserAbortError);
    expect(state.cancelled).toBe(true);
  });

  it("stops listening to the caller's signal once a stream is aborted, even if it is never read", async () => {
    const controller = new AbortController();
    for (let i = 0; i < 5; i++) {
      const stream = await browser.readChatStream(stalling(chunk("Hel")).response, {
        signal: controller.signal,
      });
      stream.abort();
    }
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
  });

  it("throws an error answer as its typed error before reading anything", async () => {
    const answer = new Response(
      JSON.stringify({ error: { code: "not_connected", message: "Connect first." } }),
      {
        status: 402,
      },
    );
    await expect(browser.readChatStream(answer)).rejects.toBeInstanceOf(browser.NotConnectedError);
  });
});

describe("createWattfare", () => {
  it("refuses a baseUrl that is not Wattfare's origin, and a client without any token source", () => {
    const getSessionToken = () => "t";
    expect(() => browser.createWattfare({ baseUrl: "wattfare.com", getSessionToken })).toThrow(TypeError);
    expect(() => browser.createWattfare({ baseUrl: "https://w.example/wattfare", getSessionToken })).toThrow(
      /without a path/,
    );
    expect(() => browser.createWattfare({ baseUrl: "https://w.example/api/v1", getSessionToken })).toThrow(
      /appends \/api\/v1/,
    );
    expect(() => browser.createWattfare({ baseUrl: "https://w.example" })).toThrow(/getSessionToken/);
  });

  it("knows which relayed errors recover() can fix", () => {
    const wattfare = browser.createWattfare({ baseUrl: "https://w.example/", getSessionToken: () => "t" });
    expect(wattfare.baseUrl).toBe("https://w.example");
    for (const code of ["not_connected", "budget_exceeded", "funding_invalid", "grant_invalid"]) {
      expect(wattfare.canRecover({ error: { code, message: "" } })).toBe(true);
      expect(wattfare.canRecover({ code })).toBe(true);
    }
    expect(wattfare.canRecover({ error: { code: "rate_limited" } })).toBe(false);
    expect(wattfare.canRecover(new Error("boom"))).toBe(false);
    expect(wattfare.canRecover(null)).toBe(false);
  });
});

describe("calls that need a session token", () => {
  it("reject with APIUserAbortError as soon as their signal fires, while the token is still being fetched", async () => {
    const sent: string[] = [];
    const wattfare = browser.createWattfare({
      baseUrl: "https://w.example",
      getSessionToken: () => new Promise<string>(() => {}), // the app's session endpoint hangs
      fetch: async (input) => {
        sent.push(String(input));
        return new Response("{}");
      },
    });
    const controller = new AbortController();
    const calls = [
      wattfare.status({ signal: controller.signal }),
      wattfare.disconnect({ signal: controller.signal }),
      wattfare.lowerCap(1, { signal: controller.signal }),
    ].map((call) => call.catch((error: unknown) => error));
    controller.abort();
    const outcomes = await Promise.race([
      Promise.all(calls),
      new Promise((resolve) => setTimeout(() => resolve("still pending"), 200)),
    ]);
    expect(outcomes).toEqual([
      expect.any(browser.APIUserAbortError),
      expect.any(browser.APIUserAbortError),
      expect.any(browser.APIUserAbortError),
    ]);
    expect(sent).toEqual([]);
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
  });
});

describe("status listeners", () => {
  it("all hear a changed status, and the call still resolves, when one of them throws (it is reported to the page)", async () => {
    const reported: unknown[] = [];
    const page = globalThis as { reportError?: (error: unknown) => void };
    page.reportError = (error) => reported.push(error);
    try {
      const status = {
        connected: true,
        limits: { monthlyUsd: 5 },
        usage: { monthlyUsd: 0 },
        remainingUsd: 5,
      };
      const wattfare = browser.createWattfare({
        baseUrl: "https://w.example",
        getSessionToken: async () => "token",
        fetch: async () =>
          new Response(JSON.stringify(status), { headers: { "content-type": "application/json" } }),
      });
      const heard: string[] = [];
      const broken = new Error("a bug in the app's listener");
      wattfare.on("status", () => {
        heard.push("first");
        throw broken;
      });
      wattfare.on("status", () => heard.push("second"));
      await expect(wattfare.status()).resolves.toMatchObject({ connected: true });
      expect(heard).toEqual(["first", "second"]);
      expect(reported).toEqual([broken]);
    } finally {
      delete page.reportError;
    }
  });
});
