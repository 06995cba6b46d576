/**
 * The Node side of txfn's durable workflows, for the CLI, the proxy and applications:
 * executors (`startExecutor`), the client (`WorkflowClient`), project loading, and the errors.
 * Workflow code itself imports `workflow` and the context types from "txfn" (the package root).
 */
export { startExecutor, Executor, type ExecutorOptions } from "./executor.ts";
export { WorkflowClient, type ClientStartOptions, type ListOptions, type WorkflowClientOptions } from "./client.ts";
export { loadProject, bodyHash, type LoadedProject, type LoadedWorkflow } from "./loader.ts";
export { workflow, isWorkflow } from "./define.ts";
export type { ExecutorTuning, WorkflowLogger } from "./options.ts";
export {
  ChildWorkflowFailedError,
  NonDeterminismError,
  NonRetryableError,
  StepFailedError,
  WorkflowConflictError,
  WorkflowError,
  WorkflowFailedError,
  WorkflowLoadError,
  WorkflowNotFoundError,
  WorkflowNotRegisteredError,
  WorkflowOptionsError,
  WorkflowStateError,
  WorkflowTimeoutError,
} from "./errors.ts";
export type * from "./types.ts";
