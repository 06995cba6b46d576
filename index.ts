/**
 * The authoring API: what a function project imports from "txfn".
 *
 * This module is bundled into every function bundle and runs inside PostgreSQL's V8, so it
 * imports nothing but the types files and pure modules, and uses no Node API. `workflow()` (the
 * Node-side engine runs the workflows: workflows/) is re-exported from its pure definition module.
 */
import { TXFN_KIND, type IsolationLevel, type TransactionBody, type TransactionFunction, type TransactionOptions } from "./types.ts";

export type {
  Context,
  IsolationLevel,
  LogLevel,
  Row,
  TransactionBody,
  TransactionFunction,
  TransactionOptions,
} from "./types.ts";
export { TXFN_KIND } from "./types.ts";

export { workflow, isWorkflow } from "./workflows/define.ts";
export {
  ChildWorkflowFailedError,
  NonDeterminismError,
  NonRetryableError,
  StepFailedError,
  WorkflowFailedError,
} from "./workflows/errors.ts";
export type {
  Backoff,
  ChildHandle,
  Compensation,
  StartOptions,
  StepContext,
  StepOptions,
  TransactionStepOptions,
  WorkflowBody,
  WorkflowContext,
  WorkflowDefinition,
  WorkflowHandle,
  WorkflowInfo,
  WorkflowStatus,
} from "./workflows/types.ts";

const ISOLATION_LEVELS: readonly IsolationLevel[] = ["serializable", "repeatable read", "read committed"];
const OPTION_KEYS = ["isolation", "readOnly"] as const;

/**
 * Declares a transaction function: `body(ctx, input)` runs inside PostgreSQL, in one
 * transaction with its idempotency record (see DESIGN "Exactly-once rules").
 *
 * @param options `{ isolation?: "serializable" | "repeatable read" | "read committed", readOnly?: boolean }`;
 *   defaults `serializable`, `false`. Unknown keys or bad values throw a TypeError naming them.
 * @param body synchronous `(ctx, input) => output`; throwing records an application error.
 * @returns a descriptor to export from a module: its export name is the function's name.
 */
export function transaction<I, O>(options: TransactionOptions, body: TransactionBody<I, O>): TransactionFunction<I, O> {
  if (typeof body !== "function") throw new TypeError("transaction(options, body): body must be a function");
  return Object.freeze({ [TXFN_KIND]: "transaction" as const, options: validateTransactionOptions(options), body });
}

/** The one place that checks `transaction()` options: unknown keys and bad values are errors. */
export function validateTransactionOptions(options: unknown): Readonly<Required<TransactionOptions>> {
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new TypeError("transaction(options, body): options must be an object such as { isolation: \"serializable\" }");
  }
  const o = options as Record<string, unknown>;
  const unknown = Object.keys(o).filter((k) => !(OPTION_KEYS as readonly string[]).includes(k));
  if (unknown.length) {
    throw new TypeError(`transaction options: unknown key(s) ${unknown.join(", ")} (allowed: ${OPTION_KEYS.join(", ")})`);
  }
  const isolation = o.isolation ?? "serializable";
  if (!ISOLATION_LEVELS.includes(isolation as IsolationLevel)) {
    throw new TypeError(`transaction options: isolation must be one of ${ISOLATION_LEVELS.map((l) => JSON.stringify(l)).join(", ")}, got ${JSON.stringify(isolation)}`);
  }
  const readOnly = o.readOnly ?? false;
  if (typeof readOnly !== "boolean") throw new TypeError(`transaction options: readOnly must be a boolean, got ${JSON.stringify(readOnly)}`);
  return Object.freeze({ isolation: isolation as IsolationLevel, readOnly });
}

/** True when `value` is a descriptor made by `transaction()` (works across bundle copies). */
export function isTransactionFunction(value: unknown): value is TransactionFunction {
  return typeof value === "object" && value !== null && (value as Record<string, unknown>)[TXFN_KIND] === "transaction";
}
