import { describe, expect, it } from "vitest";
import { decodeSse, encodeSse, type SseItem } from "./sse.js";

function bytes(...chunks: Array<string | Uint8Array>): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks)
        controller.enqueue(typeof chunk === "string" ? encoder.encode(chunk) : chunk);
      controller.close();
    },
  });
}

async function decode(stream: ReadableStream<Uint8Array>): Promise<SseItem[]> {
  const items: SseItem[] = [];
  for await (const item of decodeSse(stream)) items.push(item);
  return items;
}

describe("decodeSse", () => {
  it("yields each event's data and each comment in order", async () => {
    expect(await decode(bytes(': OPENROUTER PROCESSING\n\ndata: {"a":1}\n\ndata: [DONE]\n\n'))).toEqual([
      { kind: "comment", text: "OPENROUTER PROCESSING" },
      { kind: "data", data: '{"a":1}' },
      { kind: "data", data: "[DONE]" },
    ]);
  });

  it("reassembles events split anywhere across chunks, including inside CRLF", async () => {
    const text = 'data: {"a":1}\r\n\r\ndata: {"b":2}\r\n\r\n';
    const chunks = text.split("");
    expect(await decode(bytes(...chunks))).toEqual([
      { kind: "data", data: '{"a":1}' },
      { kind: "data", data: '{"b":2}' },
    ]);
  });

  it("accepts CR-only line endings", async () => {
    expect(await decode(bytes("data: x\r\rdata: y\r\r"))).toEqual([
      { kind: "data", data: "x" },
      { kind: "data", data: "y" },
    ]);
  });

  it("keeps a multi-byte character split between chunks intact", async () => {
    const encoded = new TextEncoder().encode('data: {"t":"héllo 👋"}\n\n');
    const cut = encoded.indexOf(0xf0) + 2;
    expect(await decode(bytes(encoded.slice(0, cut), encoded.slice(cut)))).toEqual([
      { kind: "data", data: '{"t":"héllo 👋"}' },
    ]);
  });

  it("joins multi-line data with LF and ignores event, id and retry fields", async () => {
    expect(await decode(bytes("event: x\nid: 1\nretry: 5\ndata: one\ndata:two\n\n"))).toEqual([
      { kind: "data", data: "one\ntwo" },
    ]);
  });

  it("delivers a last event that lacks its blank line", async () => {
    expect(await decode(bytes("data: last"))).toEqual([{ kind: "data", data: "last" }]);
  });

  it("cancels the body when the consumer stops early", async () => {
    let cancelled = false;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(new TextEncoder().encode("data: x\n\n"));
      },
      cancel() {
        cancelled = true;
      },
    });
    for await (const _ of decodeSse(body)) break;
    expect(cancelled).toBe(true);
  });
});

describe("encodeSse", () => {
  it("round-trips data and comments through the decoder", async () => {
    const items: SseItem[] = [
      { kind: "comment", text: "keep-alive" },
      { kind: "data", data: '{"a":"b"}' },
      { kind: "data", data: "two\nlines" },
    ];
    expect(await decode(bytes(items.map(encodeSse).join("")))).toEqual(items);
  });
});
