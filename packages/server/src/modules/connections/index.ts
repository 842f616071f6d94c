export { registerConnectionRoutes } from "./routes.js";
export { type ConnectionStatus, connectionAccount, connectionStatus, type FundingStatus } from "./service.js";
