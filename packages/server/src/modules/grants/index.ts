export { registerGrantRoutes } from "./routes.js";
export {
  type ApprovedGrant,
  approveGrant,
  DEFAULT_GRANT_EXPIRY_SECONDS,
  GRANT_PERIOD,
  type GrantStatus,
  grantAccountRef,
  grantInvalid,
  grantStatus,
  hashGrantToken,
  MAX_GRANT_EXPIRY_SECONDS,
  resolveGrant,
} from "./service.js";
