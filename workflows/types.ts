/**
 * The public contract of txfn's durable workflows: what workflow code sees (`WorkflowContext`)
 * and what a client sees (`WorkflowInfo`, `StepInfo`, `WorkflowHandle`).
 *
 * Like Temporal's TypeScript SDK, the contract lives in one small types file; the pure
 * `workflow()` factory is in define.ts (re-exported from the package root), the Node-side engine
 * (executor, client, store) in the other files of this folder. The protocol is workflows/README.md.
 */
import type { TransactionFunction, TXFN_KIND } from "../types.ts";

/** Statuses of a workflow (txfn.workflows.status). Only PENDING is not terminal. */
export type WorkflowStatus = "PENDING" | "SUCCESS" | "ERROR" | "CANCELLED" | "COMPENSATED";

/** Why the engine (not the workflow) stopped a workflow as ERROR; `resume` continues such a workflow. */
export type ParkReason = "code-changed" | "recovery-limit" | "non-determinism";

/** Kinds of recorded steps (txfn.workflow_steps.kind). */
export type StepKind = "transaction" | "step" | "sleep" | "now" | "random" | "child";

/** Backoff between attempts of an external step: initialMs · factor^(attempt-1), at most maxMs. */
export interface Backoff {
  /** Delay before the second attempt, ms. Default 100. */
  initialMs?: number;
  /** Multiplier per attempt (≥ 1). Default 2. */
  factor?: number;
  /** Largest delay, ms. Default 10 000. */
  maxMs?: number;
}

/**
 * Undo of a completed step, run when the workflow fails (saga). Either a transaction function,
 * which is called with the SAME input as the step it undoes (e.g. releaseInventory for
 * reserveInventory), or an async function of the step's output that performs the undo through
 * `ctx.transaction` / `ctx.step` (so the undo itself is checkpointed).
 */
export type Compensation<O> = TransactionFunction<any, any> | ((output: O) => Promise<unknown>);

/** Options of `ctx.transaction(fn, input, options)`. Unknown keys are rejected. */
export interface TransactionStepOptions<O> {
  compensate?: Compensation<O>;
}

/** Options of `ctx.step(name, fn, options)`. Unknown keys are rejected. */
export interface StepOptions<O> {
  /** Retries after the first attempt (so `retries + 1` attempts at most). Default 3. */
  retries?: number;
  backoff?: Backoff;
  /** Abort an attempt after this many ms (its `signal` fires; the attempt counts as failed). Default: none. */
  timeoutMs?: number;
  compensate?: Compensation<O>;
}

/** What the body of an external step receives. */
export interface StepContext {
  /**
   * `<workflowId>:<stepNumber>`: the same on every attempt and after every recovery, so the
   * external service can deduplicate (hand it over as its idempotency key).
   */
  readonly idempotencyKey: string;
  readonly workflowId: string;
  readonly stepNumber: number;
  /** 1 for the first attempt of this run of the step. */
  readonly attempt: number;
  /** Aborted on timeout, cancellation, lease loss or executor shutdown. */
  readonly signal: AbortSignal;
}

/** Options when starting a workflow (client, executor or `ctx.startChild`). Unknown keys are rejected. */
export interface StartOptions {
  /** The workflow id (idempotency key of the whole workflow). Default: a random UUID (children: `<parent>/<step>`). */
  id?: string;
}

/** A started child workflow, as seen from its parent. */
export interface ChildHandle<O> {
  readonly workflowId: string;
  /** Waits until the child is terminal: its output, or a ChildWorkflowFailedError. */
  result(): Promise<O>;
}

/**
 * What a workflow body receives. Every method is a checkpointed step: on recovery the body runs
 * again from the top and each call at the same position returns its recorded outcome instead of
 * running again; a call whose name differs from the recorded one is a NonDeterminismError.
 */
export interface WorkflowContext {
  readonly workflowId: string;
  readonly workflowName: string;
  /** Bundle version every ctx.transaction of this workflow runs (the active one at start). */
  readonly bundleVersion: number | null;
  /**
   * Runs a transaction function in the database through `txfn.invoke` with key
   * `<workflowId>:<step>`: exactly once. Resolves to its output; an application error is thrown
   * as a StepFailedError (recorded, so a replay throws it again).
   */
  transaction<I, O>(fn: TransactionFunction<I, O> | string, input: I, options?: TransactionStepOptions<O>): Promise<O>;
  /** External work, at least once: retried per `options`, its output recorded after it succeeds. */
  step<O>(name: string, fn: (step: StepContext) => Promise<O> | O, options?: StepOptions<O>): Promise<O>;
  /** Durable sleep: the wake-up time is recorded, so a recovered workflow sleeps only what is left. */
  sleep(ms: number): Promise<void>;
  /** Current time (epoch ms), recorded: a replay gets the same value. */
  now(): Promise<number>;
  /** A random number in [0, 1), recorded. */
  random(): Promise<number>;
  /** Starts a child workflow (id `<workflowId>/<step>` unless given) and returns its handle. */
  startChild<I, O>(workflow: WorkflowDefinition<I, O>, input: I, options?: StartOptions): Promise<ChildHandle<O>>;
  /** Starts a child workflow and waits for its result. */
  child<I, O>(workflow: WorkflowDefinition<I, O>, input: I, options?: StartOptions): Promise<O>;
}

/** The body of a workflow: ordinary async code whose side effects go through `ctx`. */
export type WorkflowBody<I, O> = (ctx: WorkflowContext, input: I) => Promise<O>;

/** What `workflow(name, body)` returns: export it from a module the executor loads. */
export interface WorkflowDefinition<I = any, O = any> {
  readonly [TXFN_KIND]: "workflow";
  readonly name: string;
  readonly body: WorkflowBody<I, O>;
  /** Phantom fields for type inference (never present at runtime). */
  readonly __input?: I;
  readonly __output?: O;
}

/** A recorded error (workflow error, step error): the shape txfn.invocations uses too. */
export interface RecordedWorkflowError {
  name: string;
  message: string;
  stack?: string;
  /** The error's own enumerable properties. */
  data?: Record<string, unknown>;
  [more: string]: unknown;
}

/** A row of txfn.workflows, as clients see it. */
export interface WorkflowInfo {
  id: string;
  name: string;
  status: WorkflowStatus;
  input: unknown;
  output: unknown;
  error: RecordedWorkflowError | null;
  parkReason: ParkReason | null;
  parentId: string | null;
  bundleVersion: number | null;
  codeHash: string | null;
  executorId: string | null;
  attempts: number;
  recoveryAttempts: number;
  createdAt: Date;
  updatedAt: Date;
  endedAt: Date | null;
}

/** A row of txfn.workflow_steps. */
export interface StepInfo {
  step: number;
  kind: StepKind;
  name: string;
  status: "ok" | "error";
  output: unknown;
  error: RecordedWorkflowError | null;
  invocationId: string | null;
  attempts: number | null;
  compensates: number | null;
  startedAt: Date | null;
  endedAt: Date;
}

/** A started workflow, from outside. */
export interface WorkflowHandle<O = unknown> {
  readonly workflowId: string;
  /** Its current row. @throws WorkflowNotFoundError */
  info(): Promise<WorkflowInfo>;
  /**
   * Waits until it is terminal: the output on SUCCESS, else throws a WorkflowFailedError carrying
   * the status and the recorded error. `timeoutMs` bounds the wait (WorkflowTimeoutError).
   */
  result(options?: { timeoutMs?: number }): Promise<O>;
  /** Cancels it (and its pending children) at the next step boundary. */
  cancel(): Promise<WorkflowInfo>;
}
