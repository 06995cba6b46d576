/** The Node side of txfn for other packages (CLI, proxy, workflows): invoke, deploy, inspect. */
export { TxfnClient, type ClientOptions, type InvokeOptions, type InvokeResult } from "./client.ts";
export {
  ClientOptionsError,
  DatabaseError,
  FunctionNotFoundError,
  KeyReusedError,
  RetriesExhaustedError,
  TXF,
  TxfnError,
  isConnectionError,
  isTransientError,
  type RecordedError,
} from "./errors.ts";
export {
  DeployError,
  deploy,
  listInvocations,
  listVersions,
  rollback,
  type DeployResult,
  type InvocationRow,
  type VersionInfo,
} from "./deploy.ts";
