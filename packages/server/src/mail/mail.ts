/**
 * The mail port: how Wattfare sends payers their verification and password-reset links.
 *
 * - `SmtpMail` (nodemailer) when `WATTFARE_SMTP_URL` is set — production.
 * - `OutboxMail` otherwise: each message goes to the `mail_outbox` table, where tests read it; outside
 *   production the message is also printed to the log so a developer can click the link.
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

/** Development and tests: messages land in the store's outbox (and, outside production, the log). */
export class OutboxMail implements MailPort {
  constructor(
    private readonly store: Pick<Store, "addOutboxMessage">,
    private readonly clock: Clock,
    /** Set outside production only: message bodies carry one-time links, which must never reach production logs. */
    private readonly devLog: Logger | undefined,
  ) {}

  async send(message: MailMessage): Promise<void> {
    await this.store.addOutboxMessage({ ...message, createdAt: this.clock.now() });
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
  return new OutboxMail(store, clock, config.production ? undefined : logger);
}
