/** `npm run demo`: starts the offline demo, prints where to go, and stops everything on Ctrl-C. */
import { startDemo } from "./demo.js";

const demo = await startDemo({
  onMail: ({ to, subject, text }) =>
    process.stdout.write(`\nEmail to ${to}: ${subject}\n${text.replace(/^/gm, "  | ")}\n`),
});
process.stdout.write(`
Wattfare demo: everything runs on this machine, offline (a simulator stands in for OpenRouter).

  Open ${demo.appUrl}
    Sign in with any name and password, press "Connect your AI budget", and in Wattfare's window create an
    account, connect funding ("Connect with OpenRouter", then "Authorize" on the simulator's page)
    and approve a monthly cap. Then chat; pick the "Expensive" model to run out and raise the cap.
  Or  ${demo.appUrl}/grants
    No sign-in: approve a one-time grant and chat on it.

  Wattfare:             ${demo.wattfareUrl} (payer dashboard: ${demo.wattfareUrl}/account)
  OpenRouter simulator: ${demo.simulatorUrl}
  Data (deleted on exit): ${demo.dataDir}
  Emails to payers (confirmation and password-reset links) are printed here.

Press Ctrl-C to stop.
`);

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  process.stdout.write("\nStopping the demo…\n");
  demo.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
