export { DEFAULT_MODEL_ID } from "./chat-request.js";
export { MODERATION_TRIGGER } from "./chat-route.js";
export { formatScaled, parseDecimalCeil } from "./decimal.js";
export { findModel, MODEL_CATALOGUE, type ModelPricing, type SimModel } from "./models.js";
export { CODE_LIFETIME_MS, s256Challenge } from "./oauth-routes.js";
export { startSimulator } from "./server.js";
export { countPromptTokens, type PromptCount } from "./tokenizer.js";
export type {
  CreateKeyOptions,
  Faults,
  FinishReason,
  GenerationRecord,
  KeyState,
  LimitReset,
  RecordedRequest,
  Simulator,
  SimulatorControl,
  SimulatorOptions,
  Timing,
} from "./types.js";
