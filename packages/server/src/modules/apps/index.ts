export {
  AppInputError,
  authenticateSecretKey,
  bearerToken,
  type CreatedApp,
  createApp,
  DEFAULT_ROTATION_GRACE_MS,
  normalizeOrigins,
  requireApp,
  rotateAppKey,
} from "./service.js";
