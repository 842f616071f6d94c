/**
 * The server secret: from WATTFARE_SERVER_SECRET, or in development a random one generated on first run
 * under the data directory (0600). config.ts already refuses production without the env secret.
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { Config } from "./config.js";
import { createKeyRing, type KeyRing } from "./security/index.js";

export const DEV_SECRET_FILE = "server-secret";

export function loadKeyRing(config: Config): KeyRing {
  const current = config.serverSecret ?? devSecret(config);
  const previous = config.serverSecretPrevious;
  return createKeyRing(
    Buffer.from(current, "utf8"),
    previous === undefined ? undefined : Buffer.from(previous, "utf8"),
  );
}

function devSecret(config: Config): string {
  if (config.production) throw new Error("refusing the generated dev secret in production");
  const file = path.join(config.dataDir, DEV_SECRET_FILE);
  try {
    return fs.readFileSync(file, "utf8").trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const secret = randomBytes(48).toString("base64url");
  try {
    fs.writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: "wx" });
    return secret;
  } catch (error) {
    // Another process (the CLI beside a starting server) won the race: use its secret.
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return fs.readFileSync(file, "utf8").trim();
    throw error;
  }
}
