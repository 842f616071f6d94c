export { registerSessionRoutes } from "./routes.js";
export { SESSION_TTL_SECONDS, tokenConfig } from "./service.js";
export { type VerifiedSession, verifySessionToken } from "./verify.js";
