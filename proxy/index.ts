/** The HTTP proxy (`txfn serve`) for other packages: the server, its tokens and its database role. */
export { startProxy, type JsonBody, type ProxyContext, type ProxyExtension, type ProxyServer } from "./server.ts";
export { DEFAULTS as PROXY_DEFAULTS, ProxyConfigError, LOG_LEVELS, type LogLevel, type ProxyConfig } from "./config.ts";
export { httpFailure, type HttpFailure } from "./invoker.ts";
export { type PathItems } from "./openapi.ts";
export { ProxyRoleError, checkInvokerRole, provisionInvokerRole } from "./role.ts";
export {
  TokenError,
  allows,
  createToken,
  hashToken,
  listTokens,
  revokeToken,
  type CreatedToken,
  type TokenGrant,
  type TokenInfo,
  type TokenSpec,
} from "./tokens.ts";
export { workflowEndpoints, type WorkflowEndpointOptions } from "./workflows.ts";
