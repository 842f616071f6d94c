export {
  AppInputError,
  authenticateSecretKey,
  bearerToken,
  createApp,
  DEFAULT_ROTATION_GRACE_MS,
  normalizeOrigins,
  requireApp,
  rotateAppKey,
  type CreatedApp,
} from "./service.js";
