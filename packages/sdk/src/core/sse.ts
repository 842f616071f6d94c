/**
 * A server-sent events decoder (WHATWG HTML §9.2.6, the parts chat streams use): lines end in LF, CRLF
 * or CR; a blank line dispatches; `data:` lines join with LF; lines starting with `:` are comments.
 * It carries only the last partial line between chunks, so memory stays bounded by one event.
 */

/** One decoded item: an event's data, or a comment line (kept so a proxy can forward keep-alives). */
export type SseItem = { kind: "data"; data: string } | { kind: "comment"; text: string };

/**
 * Decodes a byte stream into SSE items. Cancelling the iteration (break/return) cancels the reader.
 */
export async function* decodeSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseItem, void, undefined> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const lines = new LineSplitter();
  let data: string[] = [];
  let finished = false;
  function* dispatch(line: string): Generator<SseItem> {
    if (line === "") {
      if (data.length > 0) yield { kind: "data", data: data.join("\n") };
      data = [];
      return;
    }
    if (line.startsWith(":")) {
      yield { kind: "comment", text: line.slice(1).trimStart() };
      return;
    }
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") data.push(value);
    // `event`, `id` and `retry` carry nothing chat streams use.
  }
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      for (const line of lines.push(decoder.decode(value, { stream: true }))) yield* dispatch(line);
    }
    for (const line of lines.push(decoder.decode())) yield* dispatch(line);
    for (const line of lines.flush()) yield* dispatch(line);
    // A stream that ends without a blank line still delivers its last event.
    yield* dispatch("");
    finished = true;
  } finally {
    if (!finished) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

/** Splits text into lines on LF, CRLF or CR, holding a trailing partial line (and a lone CR) back. */
class LineSplitter {
  private rest = "";

  push(text: string): string[] {
    const buffer = this.rest + text;
    const lines: string[] = [];
    let start = 0;
    for (let i = 0; i < buffer.length; i++) {
      const char = buffer[i];
      if (char !== "\n" && char !== "\r") continue;
      // A CR at the very end may be the first half of a CRLF split across chunks: wait for more.
      if (char === "\r" && i === buffer.length - 1) break;
      lines.push(buffer.slice(start, i));
      if (char === "\r" && buffer[i + 1] === "\n") i++;
      start = i + 1;
    }
    this.rest = buffer.slice(start);
    return lines;
  }

  flush(): string[] {
    const rest = this.rest.endsWith("\r") ? this.rest.slice(0, -1) : this.rest;
    this.rest = "";
    return rest === "" ? [] : [rest];
  }
}

/**
 * Encodes items back to SSE bytes; a multi-line data value becomes several `data:` lines so the
 * receiver joins it back to the same value.
 */
export function encodeSse(item: SseItem): string {
  if (item.kind === "comment") return `: ${item.text}\n\n`;
  return `${item.data
    .split("\n")
    .map((line) => `data: ${line}`)
    .join("\n")}\n\n`;
}
