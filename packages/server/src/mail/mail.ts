/**
 * The mail port: how Wattfare sends payers their verification and password-reset links.
 *
 * - `SmtpMail` (nodemailer) when `WATTFARE_SMTP_URL` is set — production.
 * - `OutboxMail` otherwise: each message goes to the `mail_outbox` table, where tests read it; outside
 *   production the message is also printed to the log so a developer can click the link. In production
 *   (no SMTP configured: nothing is delivered) its links are withheld, so the table never holds a live
 *   reset or verification token.
 */
import { createTransport, type Transporter } from "nodemailer";
import type { Logger } from "pino";
import type { Config } from "../config.js";
import type { Clock } from "../deps.js";
import type { Store } from "../store/port.js";

export interface MailMessage {
  to: string;
  subject: string;
  /** Plain text only: no HTML mail means no HTML injection through an email address or a name. */
  text: string;
}

export interface MailPort {
  /** Resolves once the message is accepted for delivery; rejects when it was not. */
  send(message: MailMessage): Promise<void>;
  close(): Promise<void>;
}

const WITHHELD_LINK = "[link withheld: this server has no WATTFARE_SMTP_URL, so it delivers no mail]";

/** Development and tests: messages land in the store's outbox (and, outside production, the log). */
export class OutboxMail implements MailPort {
  constructor(
    private readonly store: Pick<Store, "addOutboxMessage">,
    private readonly clock: Clock,
    /** Set outside production only: message bodies carry one-time links, which must never reach production logs. */
    private readonly devLog: Logger | undefined,
    /** Production without SMTP: store the message with its links replaced, as nobody will receive it. */
    private readonly withholdLinks = false,
  ) {}

  async send(message: MailMessage): Promise<void> {
    const text = this.withholdLinks ? message.text.replace(/https?:\/\/\S+/g, WITHHELD_LINK) : message.text;
    await this.store.addOutboxMessage({
      to: message.to,
      subject: message.subject,
      text,
      createdAt: this.clock.now(),
    });
    this.devLog?.info(
      { mailTo: message.to, subject: message.subject },
      `mail (outbox, development only):\n${message.text}`,
    );
  }

  async close(): Promise<void> {}
}

/** Production: SMTP through nodemailer. */
export class SmtpMail implements MailPort {
  constructor(
    private readonly transport: Transporter,
    private readonly from: string,
  ) {}

  async send(message: MailMessage): Promise<void> {
    await this.transport.sendMail({
      from: this.from,
      to: message.to,
      subject: message.subject,
      text: message.text,
    });
  }

  async close(): Promise<void> {
    this.transport.close();
  }
}

/**
 * The mail port the config asks for.
 *
 * @example
 * const mail = createMailPort(deps.config, deps.store, deps.clock, deps.logger);
 */
export function createMailPort(
  config: Config,
  store: Pick<Store, "addOutboxMessage">,
  clock: Clock,
  logger: Logger,
): MailPort {
  if (config.mail.smtpUrl !== undefined) {
    return new SmtpMail(createTransport(config.mail.smtpUrl), config.mail.from);
  }
  if (config.production) {
    logger.warn(
      "WATTFARE_SMTP_URL is not set: payer emails go to the mail_outbox table and are not delivered",
    );
  }
  return config.production
    ? new OutboxMail(store, clock, undefined, true)
    : new OutboxMail(store, clock, logger);
}
