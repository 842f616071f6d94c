import type { Config } from "../../config.js";
import type { TokenConfig } from "../../security/index.js";

/** Session tokens live 10 minutes (API reference). */
export const SESSION_TTL_SECONDS = 600;

export function tokenConfig(config: Config): TokenConfig {
  return { issuer: config.publicUrl, audience: "wattfare-session", ttlSeconds: SESSION_TTL_SECONDS };
}
