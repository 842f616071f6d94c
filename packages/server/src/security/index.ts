export {
  APP_ID_PATTERN,
  GRANT_TOKEN_PATTERN,
  generateAppId,
  generateGrantToken,
  generateSecretKey,
  hashSecretKey,
  type ParsedSecretKey,
  parseSecretKey,
  SECRET_KEY_PREFIX,
  SECRET_LENGTH,
  safeEqualHash,
  secretKeyAppId,
} from "./app-keys.js";
export { createCsrfToken, csrfTokenOfThisServer, verifyCsrfToken } from "./csrf.js";
export {
  decryptFundingKey,
  encryptFundingKey,
  FundingDecryptError,
  type FundingDecryptFailure,
  fundingKeyFingerprint,
  isFundingKeyShaped,
  needsReencryption,
  OPENROUTER_KEY_PREFIX,
  openRouterKeyHash,
} from "./funding-crypto.js";
export { type Reencryption, reencryptFundingKeys } from "./funding-rotation.js";
export {
  createKeyRing,
  deriveSubkeys,
  type KeyRing,
  keyIdOf,
  MIN_SERVER_SECRET_BYTES,
  type SubkeySet,
} from "./keyring.js";
export { isLocalOrigin, isOriginList, type ParsedOrigin, parseOrigin } from "./origins.js";
export {
  APP_USER_ID_PATTERN,
  type GrantSessionClaims,
  type GrantTerms,
  issuedBeforeCompromise,
  type SessionClaims,
  type SessionRejection,
  SessionTokenError,
  type SessionTyp,
  type SignedSession,
  signGrantSession,
  signUserSession,
  type TokenConfig,
  type UserSessionClaims,
  verifySession,
} from "./tokens.js";
