export { registerGrantRoutes } from "./routes.js";
export {
  type ApprovedGrant,
  approveGrant,
  checkGrantUsable,
  DEFAULT_GRANT_EXPIRY_SECONDS,
  findGrant,
  GRANT_PERIOD,
  type GrantStatus,
  grantAccountRef,
  grantInvalid,
  grantStatus,
  hashGrantToken,
  MAX_GRANT_EXPIRY_SECONDS,
  resolveGrant,
} from "./service.js";
