/** Shared helpers for this package's tests (not exported from the package). */
import OpenAI from "openai";
import { startSimulator } from "./server.js";
import type { Simulator } from "./types.js";

/** A simulator with the tests' fixed seed and a key funded with $100. */
export async function fundedSimulator(): Promise<{ sim: Simulator; key: string }> {
  const sim = await startSimulator({ seed: 7 });
  return { sim, key: sim.control.createKey({ credits: 100 }) };
}

export const HI = [{ role: "user" as const, content: "Hi" }];
/** `3 + ceil(bytes('{"role":"user","content":"Hi"}') / 4) + 4` = 3 + 8 + 4. */
export const HI_PROMPT_TOKENS = 15;

export function openai(sim: Simulator, apiKey: string, options: { timeout?: number } = {}): OpenAI {
  // No retries: a test must see exactly the response the simulator gave.
  return new OpenAI({ apiKey, baseURL: sim.apiUrl, maxRetries: 0, ...options });
}

export function postChat(
  sim: Simulator,
  key: string | null,
  body: unknown,
  init: { signal?: AbortSignal } = {},
): Promise<Response> {
  return fetch(`${sim.apiUrl}/chat/completions`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(key === null ? {} : { authorization: `Bearer ${key}` }),
    },
    body: typeof body === "string" ? body : JSON.stringify(body),
    ...init,
  });
}

/** The `data:` payloads of an SSE body, in order. */
export function dataEvents(sse: string): string[] {
  return sse
    .split("\n")
    .filter((line) => line.startsWith("data: "))
    .map((line) => line.slice("data: ".length));
}

/** Reads a streaming body until `count` data events have arrived; returns what was read. */
export async function readEvents(response: Response, count: number): Promise<string> {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (dataEvents(text).length < count) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  reader.releaseLock();
  return text;
}

export async function getJson(
  sim: Simulator,
  path: string,
  key?: string,
): Promise<{ status: number; body: Record<string, unknown>; text: string }> {
  const response = await fetch(`${sim.apiUrl}${path}`, {
    headers: key === undefined ? {} : { authorization: `Bearer ${key}` },
  });
  const text = await response.text();
  return { status: response.status, body: JSON.parse(text) as Record<string, unknown>, text };
}
