/**
 * A real Wattfare (listening on port 0, with its public URL set to that very address) in front of the
 * simulator, whose OAuth pages stand in for OpenRouter's; every log line is captured as text so tests
 * can prove what never reaches the log. `browser()` gives an inject()-based client that keeps cookies
 * and CSRF tokens like a browser does.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { startSimulator } from "@wattfare/openrouter-sim";
import type { LightMyRequestResponse as InjectResponse } from "fastify";
import { createLogger } from "../logger.js";
import type { OutboxMessage } from "../store/port.js";
import { createHarness, type Harness, type ManualClock } from "./harness.js";

type Simulator = Awaited<ReturnType<typeof startSimulator>>;

export interface PayerHarness extends Harness {
  sim: Simulator;
  /** Wattfare's address, equal to `config.publicUrl`. */
  url: string;
  /** Everything logged so far (pino JSON lines). */
  logs(): string;
  /** Mails in the outbox to `to`, oldest first (waits for mails still being sent). */
  mailsTo(to: string): Promise<OutboxMessage[]>;
  browser(): InjectBrowser;
}

export async function createPayerHarness(
  options: { env?: Record<string, string>; clock?: ManualClock; logLevel?: string } = {},
): Promise<PayerHarness> {
  const sim = await startSimulator();
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString("utf8"));
      done();
    },
  });
  const h = await createHarness({
    env: {
      WATTFARE_PUBLIC_URL: url,
      WATTFARE_UPSTREAM_URL: sim.apiUrl,
      WATTFARE_OPENROUTER_AUTH_URL: `${sim.url}/auth`,
      ...options.env,
    },
    logger: createLogger(options.logLevel ?? "trace", sink),
    ...(options.clock ? { clock: options.clock } : {}),
  });
  // The app was built knowing its URL; the already-listening server hands it every request.
  server.on("request", (req, res) => h.app.routing(req, res));
  return {
    ...h,
    sim,
    url,
    logs: () => chunks.join(""),
    async mailsTo(to) {
      await h.app.payers.service.idle();
      return h.store.outboxMessages(to);
    },
    browser: () => new InjectBrowser(h, url),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await h.close();
      await sim.close();
    },
  };
}

/** The first http(s) link in a mail. */
export function linkIn(message: OutboxMessage): string {
  const match = /https?:\/\/\S+/.exec(message.text);
  if (!match) throw new Error(`no link in mail "${message.subject}"`);
  return match[0];
}

/**
 * A cookie-keeping client over inject(): form posts carry `Origin` = the public URL and, unless told
 * otherwise, the CSRF token of the last page it loaded.
 */
export class InjectBrowser {
  readonly cookies = new Map<string, string>();
  lastHtml = "";

  constructor(
    private readonly h: Harness,
    private readonly origin: string,
  ) {}

  /** The CSRF token in the last page loaded. */
  csrf(): string {
    const match = /name="csrf" value="([^"]+)"/.exec(this.lastHtml);
    if (!match?.[1]) throw new Error("no csrf field in the last page");
    return match[1];
  }

  async get(url: string, headers: Record<string, string> = {}): Promise<InjectResponse> {
    const res = await this.h.app.inject({
      method: "GET",
      url,
      headers: { ...this.cookieHeader(), ...headers },
    });
    return this.keep(res);
  }

  /**
   * POSTs a form. `csrf` defaults to the token of the last page; pass null to send none. Headers
   * replace the defaults (`origin: ""` sends no Origin).
   */
  async post(
    url: string,
    fields: Record<string, string>,
    options: { csrf?: string | null; headers?: Record<string, string> } = {},
  ): Promise<InjectResponse> {
    const csrf = options.csrf === undefined ? this.csrf() : options.csrf;
    const body = new URLSearchParams(csrf === null ? fields : { csrf, ...fields }).toString();
    const headers: Record<string, string> = {
      "content-type": "application/x-www-form-urlencoded",
      origin: this.origin,
      ...this.cookieHeader(),
      ...options.headers,
    };
    for (const [name, value] of Object.entries(headers)) if (value === "") delete headers[name];
    const res = await this.h.app.inject({ method: "POST", url, headers, payload: body });
    return this.keep(res);
  }

  /** POSTs JSON the way a script on Wattfare's own page does (same `Origin`, this browser's cookies). */
  async postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<InjectResponse> {
    const all: Record<string, string> = {
      "content-type": "application/json",
      origin: this.origin,
      ...this.cookieHeader(),
      ...headers,
    };
    for (const [name, value] of Object.entries(all)) if (value === "") delete all[name];
    const res = await this.h.app.inject({ method: "POST", url, headers: all, payload: JSON.stringify(body) });
    return this.keep(res);
  }

  private cookieHeader(): Record<string, string> {
    if (this.cookies.size === 0) return {};
    return { cookie: [...this.cookies].map(([name, value]) => `${name}=${value}`).join("; ") };
  }

  private keep(res: InjectResponse): InjectResponse {
    for (const cookie of res.cookies as { name: string; value: string; maxAge?: number }[]) {
      if (cookie.maxAge === 0 || cookie.value === "") this.cookies.delete(cookie.name);
      else this.cookies.set(cookie.name, cookie.value);
    }
    if (String(res.headers["content-type"] ?? "").startsWith("text/html")) this.lastHtml = res.body;
    return res;
  }
}

/**
 * Plays the payer on the simulator's OpenRouter consent page without a browser: loads the authorize
 * URL, submits Authorize (or Deny) and returns the callback URL OpenRouter redirects to.
 */
export async function answerConsentPage(
  authorizeUrl: string,
  decision: "approve" | "deny" = "approve",
): Promise<string> {
  const page = await fetch(authorizeUrl);
  const html = await page.text();
  const request = /name="request" value="([^"]+)"/.exec(html)?.[1];
  if (page.status !== 200 || request === undefined)
    throw new Error(`consent page failed: ${page.status} ${html}`);
  const answered = await fetch(new URL("/auth", authorizeUrl), {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ request, decision }).toString(),
    redirect: "manual",
  });
  const location = answered.headers.get("location");
  if (location === null) throw new Error(`consent answer did not redirect: ${answered.status}`);
  return location;
}
