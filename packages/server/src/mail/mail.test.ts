import { Writable } from "node:stream";
import { createTransport } from "nodemailer";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../config.js";
import type { OutboxMessage } from "../store/port.js";
import { ManualClock, TEST_SECRET } from "../testing/harness.js";
import { createMailPort, OutboxMail, SmtpMail } from "./mail.js";

const message = { to: "alice@example.com", subject: "Hello", text: "Open https://pay.example/x?token=t0k3n" };

/** Production, with no WATTFARE_SMTP_URL. */
const productionConfig = () =>
  loadConfig(
    {
      NODE_ENV: "production",
      WATTFARE_SERVER_SECRET: TEST_SECRET,
      WATTFARE_PUBLIC_URL: "https://pay.example",
    },
    "/tmp",
  );

function captureLogger() {
  const lines: string[] = [];
  const logger = pino(
    { level: "info" },
    new Writable({
      write(chunk: Buffer, _e, done) {
        lines.push(chunk.toString());
        done();
      },
    }),
  );
  return { logger, text: () => lines.join("") };
}

describe("OutboxMail", () => {
  it("stores every message with the time it was sent", async () => {
    const stored: Omit<OutboxMessage, "id">[] = [];
    const mail = new OutboxMail(
      { addOutboxMessage: async (m) => void stored.push(m) },
      new ManualClock(1000),
      undefined,
    );
    await mail.send(message);
    expect(stored).toEqual([{ ...message, createdAt: 1000 }]);
  });

  it("prints the message, link included, to the log in development only", async () => {
    const store = { addOutboxMessage: async () => undefined };
    const dev = captureLogger();
    await new OutboxMail(store, new ManualClock(), dev.logger).send(message);
    expect(dev.text()).toContain("token=t0k3n");

    const production = captureLogger();
    const port = createMailPort(productionConfig(), store, new ManualClock(), production.logger);
    expect(port).toBeInstanceOf(OutboxMail);
    await port.send(message);
    expect(production.text()).toContain("WATTFARE_SMTP_URL is not set");
    expect(production.text()).not.toContain("t0k3n");
  });

  it("keeps no live link in the outbox in production, where nothing is delivered without SMTP", async () => {
    const stored: Omit<OutboxMessage, "id">[] = [];
    const port = createMailPort(
      productionConfig(),
      { addOutboxMessage: async (m) => void stored.push(m) },
      new ManualClock(5),
      captureLogger().logger,
    );
    await port.send(message);
    expect(stored).toEqual([
      {
        to: message.to,
        subject: message.subject,
        text: "Open [link withheld: this server has no WATTFARE_SMTP_URL, so it delivers no mail]",
        createdAt: 5,
      },
    ]);
  });
});

describe("SmtpMail", () => {
  it("is chosen when WATTFARE_SMTP_URL is set, with the configured From", () => {
    const config = loadConfig(
      {
        WATTFARE_SERVER_SECRET: TEST_SECRET,
        WATTFARE_SMTP_URL: "smtp://user:pass@127.0.0.1:2525",
        WATTFARE_MAIL_FROM: "Pay <pay@example.com>",
      },
      "/tmp",
    );
    expect(config.mail).toEqual({
      smtpUrl: "smtp://user:pass@127.0.0.1:2525",
      from: "Pay <pay@example.com>",
    });
    expect(
      createMailPort(
        config,
        { addOutboxMessage: async () => undefined },
        new ManualClock(),
        pino({ level: "silent" }),
      ),
    ).toBeInstanceOf(SmtpMail);
  });

  it("defaults From to no-reply at the public host", () => {
    const config = loadConfig(
      { WATTFARE_SERVER_SECRET: TEST_SECRET, WATTFARE_PUBLIC_URL: "https://pay.example" },
      "/tmp",
    );
    expect(config.mail.from).toBe("Wattfare <no-reply@pay.example>");
  });

  it("rejects a WATTFARE_SMTP_URL that is not smtp(s)://", () => {
    expect(() =>
      loadConfig({ WATTFARE_SERVER_SECRET: TEST_SECRET, WATTFARE_SMTP_URL: "http://mail" }, "/tmp"),
    ).toThrow(/WATTFARE_SMTP_URL/);
  });

  it("hands a plain-text message with From, To and Subject to the transport", async () => {
    const transport = createTransport({ jsonTransport: true });
    const sent: string[] = [];
    const original = transport.sendMail.bind(transport);
    transport.sendMail = (async (mail: Parameters<typeof original>[0]) => {
      const info = await original(mail);
      sent.push(String((info as { message: string }).message));
      return info;
    }) as typeof transport.sendMail;
    await new SmtpMail(transport, "Wattfare <no-reply@pay.example>").send(message);
    const json = JSON.parse(sent[0] ?? "{}") as {
      from: { address: string };
      to: { address: string }[];
      subject: string;
      text: string;
      html?: string;
    };
    expect(json.from.address).toBe("no-reply@pay.example");
    expect(json.to[0]?.address).toBe("alice@example.com");
    expect(json.subject).toBe("Hello");
    expect(json.text).toBe(message.text);
    expect(json.html).toBeUndefined();
  });
});
