/**
 * Runs the example against any Wattfare: `WATTFARE_SECRET_KEY=… WATTFARE_BASE_URL=… PORT=3000 npm start`
 * (in examples/chat-app). The app's origin must be registered for the key's app. For a complete
 * offline setup, run `npm run demo` at the repository root instead.
 */
import { Wattfare } from "@wattfare/sdk/server";
import { startChatApp } from "./server.js";

const port = Number(process.env.PORT ?? 3000);
const app = await startChatApp({ wattfare: new Wattfare(), port });
process.stdout.write(`Chat app on ${app.url} (register this origin for your Wattfare app)\n`);
const stop = () => void app.close().then(() => process.exit(0));
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
