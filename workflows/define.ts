/**
 * `workflow(name, body)`: declares a durable workflow. Pure (no Node API), re-exported from the
 * package root next to `transaction()`; the Node-side executor (executor.ts) runs the bodies.
 */
import { TXFN_KIND } from "../types.ts";
import { WorkflowOptionsError } from "./errors.ts";
import { validateName } from "./options.ts";
import type { WorkflowBody, WorkflowDefinition } from "./types.ts";

/**
 * Declares a workflow named `name` (its identity in txfn.workflows: keep it stable).
 *
 * The body is ordinary async TypeScript that reaches the world only through its context —
 * `ctx.transaction` (exactly once, in the database), `ctx.step` (external, at least once, with a
 * stable idempotency key), `ctx.sleep`, `ctx.now`, `ctx.random`, `ctx.child` — like a DBOS
 * workflow; each call is checkpointed in txfn.workflow_steps, and a recovered workflow runs the
 * body again from the top, replaying recorded steps. So the body must be deterministic: the
 * same input and the same recorded outcomes must lead to the same calls in the same order.
 *
 * @param name 1–128 characters: letters, digits, `_ . : -`, starting with a letter or `_`.
 * @param body `async (ctx, input) => output`; output and input must be JSON values.
 * @returns a descriptor to export from a module the executor loads (`txfn worker <dir>` loads
 *   `<dir>/workflows/*.ts` and the project's top-level files).
 * @throws WorkflowOptionsError for a bad name or a body that is not a function.
 */
export function workflow<I, O>(name: string, body: WorkflowBody<I, O>): WorkflowDefinition<I, O> {
  validateName("workflow(name, body): name", name);
  if (typeof body !== "function") throw new WorkflowOptionsError(`workflow(${JSON.stringify(name)}, body): body must be an async function`);
  return Object.freeze({ [TXFN_KIND]: "workflow" as const, name, body });
}

/** True when `value` is a descriptor made by `workflow()` (works across module copies). */
export function isWorkflow(value: unknown): value is WorkflowDefinition {
  return typeof value === "object" && value !== null && (value as Record<string, unknown>)[TXFN_KIND] === "workflow";
}
