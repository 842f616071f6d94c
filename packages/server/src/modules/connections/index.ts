export { registerConnectionRoutes } from "./routes.js";
export { connectionAccount, connectionStatus, type ConnectionStatus, type FundingStatus } from "./service.js";
