/**
 * The README's Next.js (App Router) and node:http snippets, type-checked by the build and run against
 * a real Wattfare. Next.js route handlers are plain Fetch-API functions, so they need no Next
 * dependency; `currentUser` stands in for the app's own auth (next-auth, Clerk, a session cookie…).
 */
import { createServer, type Server } from "node:http";
import { type ChatHarness, createChatHarness, ManualClock } from "@wattfare/server/testing";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { ChatCompletionMessageParam } from "../core/chat-types.js";
import { APIError } from "../core/errors.js";
import type { Session } from "../core/types.js";
import { Wattfare } from "./client.js";
import { toNodeHandler } from "./node.js";
import { createSessionHandler } from "./session-handler.js";

type CurrentUser = (request: Request) => Promise<{ id: string } | null>;

/** The two route files of a Next.js app, as the README shows them. */
function nextJsRoutes(wattfare: Wattfare, currentUser: CurrentUser) {
  // app/api/wattfare/session/route.ts
  const sessionHandler = createSessionHandler(
    async (request) => {
      const user = await currentUser(request);
      return user ? { appUserId: user.id } : null;
    },
    { client: wattfare },
  );
  async function sessionRoutePOST(request: Request): Promise<Response> {
    return sessionHandler(request);
  }

  // app/api/chat/route.ts
  async function chatRoutePOST(request: Request): Promise<Response> {
    const user = await currentUser(request);
    if (!user) return Response.json({ error: { code: "auth", message: "Sign in first." } }, { status: 401 });
    const { messages } = (await request.json()) as { messages: ChatCompletionMessageParam[] };
    try {
      const stream = await wattfare.chat.completions.create(
        { model: "openai/gpt-4o-mini", messages, stream: true },
        { user: user.id, signal: request.signal },
      );
      return new Response(stream.toReadableStream(), {
        headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
      });
    } catch (error) {
      // 402s mean the user must act (connect, raise the cap, fix funding): tell the page which.
      if (error instanceof APIError && error.status === 402) {
        return Response.json({ error: { code: error.code, message: error.message } }, { status: 402 });
      }
      throw error;
    }
  }

  return { sessionRoutePOST, chatRoutePOST };
}

let h: ChatHarness;
let wattfare: Wattfare;
/** The app's auth, faked: the `uid` cookie. */
const currentUser: CurrentUser = async (request) => {
  const uid = /uid=([^;]+)/.exec(request.headers.get("cookie") ?? "")?.[1];
  return uid ? { id: uid } : null;
};

beforeEach(async () => {
  const clock = new ManualClock();
  h = await createChatHarness({ clock, sim: { responseTokens: 12, now: () => clock.now() } });
  wattfare = new Wattfare({ secretKey: h.secretKey, baseUrl: h.url });
});
afterEach(async () => h.close());

const chatInit = (cookie: string): RequestInit => ({
  method: "POST",
  headers: { cookie, "content-type": "application/json" },
  body: JSON.stringify({ messages: [{ role: "user", content: "Hello" }] }),
});
const chatRequest = (cookie: string) => new Request("https://app.example/api/chat", chatInit(cookie));

describe("the Next.js App Router snippet", () => {
  it("mints a session for the signed-in user", async () => {
    const { sessionRoutePOST } = nextJsRoutes(wattfare, currentUser);
    const res = await sessionRoutePOST(
      new Request("https://app.example/api/wattfare/session", {
        method: "POST",
        headers: { cookie: "uid=alice" },
      }),
    );
    expect(res.status).toBe(200);
    expect(((await res.json()) as Session).token.split(".")).toHaveLength(3);
  });

  it("streams a chat to the page as OpenAI-format SSE", async () => {
    const key = await h.connect("alice", 5);
    const { chatRoutePOST } = nextJsRoutes(wattfare, currentUser);
    const res = await chatRoutePOST(chatRequest("uid=alice"));
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const text = await res.text();
    expect(text).toMatch(/^(: [^\n]*\n\n)*data: \{"id":/);
    expect(text.endsWith("data: [DONE]\n\n")).toBe(true);
    await h.drain();
    expect(await h.ledgerTotal()).toBe(h.sim.control.billedNano(key));
  });

  it("tells the page with a 402 and the code when the user must connect a budget first", async () => {
    const { chatRoutePOST } = nextJsRoutes(wattfare, currentUser);
    const res = await chatRoutePOST(chatRequest("uid=bob"));
    expect(res.status).toBe(402);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("not_connected");
  });
});

describe("the node:http snippet", () => {
  let server: Server;
  afterEach(async () => new Promise<void>((resolve) => server.close(() => resolve())));

  it("stops the model when the browser leaves while the route still waits for Wattfare's answer", async () => {
    await h.connect("alice", 5);
    h.sim.control.setFaults({ hangAfterChunks: 2 }); // the model goes quiet: only the route leaving ends it
    let browserLeft!: () => void;
    const left = new Promise<void>((resolve) => {
      browserLeft = resolve;
    });
    // Wattfare's answer reaches the route only after the browser has gone.
    const slow = new Wattfare({
      secretKey: h.secretKey,
      baseUrl: h.url,
      fetch: async (input, init) => {
        const response = await fetch(input, init);
        await left;
        return response;
      },
    });
    const node = toNodeHandler(nextJsRoutes(slow, currentUser).chatRoutePOST, {
      onError: (error) => {
        throw new Error(`no handler fault expected: ${String(error)}`);
      },
    });
    let finished = false;
    server = createServer((req, res) => {
      res.once("close", browserLeft);
      void node(req, res).then(() => {
        finished = true;
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    const url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;

    const browser = new AbortController();
    const pending = fetch(url, { ...chatInit("uid=alice"), signal: browser.signal }).catch(() => undefined);
    while (h.sim.control.requests().length === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    browser.abort();
    await pending;

    const generationId = h.sim.control.requests().at(-1)?.generationId ?? "";
    expect((await h.sim.control.waitForGeneration(generationId)).cancelled).toBe(true);
    await vi.waitFor(() => expect(finished).toBe(true));
  });

  it("pipes a chat stream to the browser and stops the model when the browser leaves", async () => {
    const key = await h.connect("alice", 5);
    h.sim.control.setFaults({ hangAfterChunks: 2 }); // the model goes quiet: only the browser leaving ends it
    const { chatRoutePOST } = nextJsRoutes(wattfare, currentUser);
    server = createServer(toNodeHandler(chatRoutePOST));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    const url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;

    const browser = new AbortController();
    const res = await fetch(url, { ...chatInit("uid=alice"), signal: browser.signal });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let text = "";
    while (!text.includes('"content"')) {
      const { done, value } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    expect(text).toContain('"content"');
    browser.abort();

    const generationId = h.sim.control.requests().at(-1)?.generationId ?? "";
    const generation = await h.sim.control.waitForGeneration(generationId);
    expect(generation.cancelled).toBe(true);
    await h.drain();
    await h.reconcile();
    expect(await h.ledgerTotal()).toBe(h.sim.control.billedNano(key));
  });
});
