export { createMailPort, type MailMessage, type MailPort, OutboxMail, SmtpMail } from "./mail.js";
