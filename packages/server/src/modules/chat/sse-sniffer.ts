/**
 * Watches an SSE byte stream inline, as it is forwarded, for the `usage` event. It never holds more than
 * the current partial line (bounded), so memory stays flat whatever the stream's length; the bytes
 * themselves are forwarded untouched by the caller. Comment lines (`: OPENROUTER PROCESSING`) and
 * `[DONE]` are simply not usage.
 */
const NEWLINE = 0x0a;
const USAGE = Buffer.from('"usage"');
/** A JSON key: inside a string every quote is escaped, so these bytes only ever open an `error` member. */
const ERROR_KEY = Buffer.from('"error":');
const DONE = Buffer.from("data: [DONE]");

const COLON = 0x3a;
const N = 0x6e;

/** Whether the value of the JSON member whose key ends at `i` is `null` (spaces and the colon skipped). */
function nullValueAt(line: Buffer, i: number): boolean {
  let j = i;
  while (j < line.length && (line[j] === 0x20 || line[j] === 0x09 || line[j] === COLON)) j++;
  return line[j] === N;
}

export class SseUsageSniffer {
  private partial: Buffer[] = [];
  private partialLength = 0;
  /** The last complete `data:` line that carried a usage object. */
  private usageLine: string | undefined;
  private overflowed = false;
  private closedByUpstream = false;
  /** The last complete line was not blank: an event is open until a blank line ends it. */
  private eventOpen = false;

  constructor(private readonly maxLineBytes = 1024 * 1024) {}

  push(chunk: Buffer): void {
    let start = 0;
    let nl = chunk.indexOf(NEWLINE, start);
    while (nl !== -1) {
      this.line(chunk.subarray(start, nl));
      start = nl + 1;
      nl = chunk.indexOf(NEWLINE, start);
    }
    if (start < chunk.length) this.keep(chunk.subarray(start));
  }

  private keep(piece: Buffer): void {
    if (this.overflowed) return;
    this.partialLength += piece.length;
    if (this.partialLength > this.maxLineBytes) {
      // A line this long is not a usage event we can afford to hold; skip to its end.
      this.overflowed = true;
      this.partial = [];
      return;
    }
    // Copy: the caller's chunk may be reused by the stream once forwarded.
    this.partial.push(Buffer.from(piece));
  }

  private line(tail: Buffer): void {
    if (this.overflowed) {
      this.overflowed = false;
      this.partialLength = 0;
      return;
    }
    const line = this.partial.length === 0 ? tail : Buffer.concat([...this.partial, tail]);
    this.partial = [];
    this.partialLength = 0;
    this.eventOpen = line.length > 1 || (line.length === 1 && line[0] !== 0x0d); // "\r" of a CRLF blank line
    if (line.length <= 5 || line[0] !== 0x64 /* d */) return;
    const usage = line.indexOf(USAGE);
    // `"usage":null` alone (OpenAI's shape for every chunk but the usage one) must not replace a usage
    // seen before it.
    const nullOnly =
      usage !== -1 && line.indexOf(USAGE, usage + 1) === -1 && nullValueAt(line, usage + USAGE.length);
    if (usage !== -1 && !nullOnly) {
      const text = line.toString("utf8");
      if (text.startsWith("data:")) this.usageLine = text.slice(5).trim();
    }
    if (line.indexOf(ERROR_KEY) !== -1 || line.subarray(0, DONE.length).equals(DONE)) {
      this.closedByUpstream = true;
    }
  }

  /**
   * True once the stream has said its last word itself: `data: [DONE]`, or an event with an `error`
   * (OpenRouter's mid-stream error). A connection that breaks after that needs no error event of ours.
   */
  get ended(): boolean {
    return this.closedByUpstream;
  }

  /**
   * True when the stream stopped after a complete line whose event no blank line has ended (and not
   * part-way through a line): one more newline ends that event, which SSE clients otherwise drop.
   */
  get endsInOpenEvent(): boolean {
    return this.eventOpen && this.partialLength === 0 && !this.overflowed;
  }

  /** The JSON text of the last data event that carried `usage`, if any. */
  get lastUsageEvent(): string | undefined {
    return this.usageLine;
  }
}
