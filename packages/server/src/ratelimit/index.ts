// The contract suite (./contract.js) is deliberately not re-exported: it imports vitest, which has no
// place in the server's runtime graph. Backend tests import it directly.
export { type Decision, decide, type HitOutcome, type RateRule, RL_CHAT, RL_SESSIONS } from "./decide.js";
export { chatGrantKey, chatUserKey, sessionsKey } from "./keys.js";
export { MemoryRateLimitStore, type MemoryRateLimitStoreOptions } from "./memory-store.js";
export type { RateDecision, RateLimitStore } from "./store.js";
