/**
 * Errors of durable workflows, one class per thing a caller handles differently. Pure (no Node
 * API): workflow code imports some of them from "txfn" to throw or catch them.
 */
import type { ParkReason, RecordedWorkflowError, StepKind, WorkflowStatus } from "./types.ts";

/** Base class of every workflow error. */
export class WorkflowError extends Error {
  override name = "WorkflowError";
}

/** Bad options or arguments (unknown keys, wrong types). */
export class WorkflowOptionsError extends TypeError {
  override name = "WorkflowOptionsError";
}

/**
 * Thrown by the body of `ctx.step` to fail the step at once, without the remaining retries
 * (Temporal's non-retryable ApplicationFailure): a declined card, a 4xx answer.
 */
export class NonRetryableError extends Error {
  override name = "NonRetryableError";
  constructor(
    message: string,
    /** JSON-safe details, recorded with the step's error. */
    readonly details?: unknown,
  ) {
    super(message);
  }
}

/**
 * A step failed: a transaction function's recorded application error, or an external step that
 * used up its retries. Thrown by `ctx.transaction` / `ctx.step` the first time and, from the
 * recorded history, on every replay, so workflow code that catches it behaves the same.
 */
export class StepFailedError extends WorkflowError {
  override name = "StepFailedError";
  constructor(
    readonly stepNumber: number,
    readonly stepName: string,
    readonly kind: StepKind,
    /** The recorded error (name, message, data…). */
    readonly failure: RecordedWorkflowError,
  ) {
    super(`${kind === "step" ? "external" : kind} step ${stepNumber} (${stepName}) failed: ${failure.name}: ${failure.message}`);
  }
}

/** A child workflow ended in another status than SUCCESS (thrown by the parent's `result()`). */
export class ChildWorkflowFailedError extends WorkflowError {
  override name = "ChildWorkflowFailedError";
  constructor(
    readonly childId: string,
    readonly status: WorkflowStatus,
    readonly failure: RecordedWorkflowError | null,
  ) {
    super(`child workflow ${childId} ended ${status}${failure ? `: ${failure.name}: ${failure.message}` : ""}`);
  }
}

/** `handle.result()` of a workflow that ended ERROR, COMPENSATED or CANCELLED. */
export class WorkflowFailedError extends WorkflowError {
  override name = "WorkflowFailedError";
  constructor(
    readonly workflowId: string,
    readonly status: WorkflowStatus,
    readonly failure: RecordedWorkflowError | null,
    readonly parkReason: ParkReason | null = null,
  ) {
    super(`workflow ${workflowId} ended ${status}${failure ? `: ${failure.name}: ${failure.message}` : ""}`);
  }
}

/**
 * On replay, the workflow called something else at a recorded position than it did the first
 * time (another step name or kind): its code is not deterministic, or changed incompatibly.
 */
export class NonDeterminismError extends WorkflowError {
  override name = "NonDeterminismError";
  constructor(
    message: string,
    readonly stepNumber: number,
  ) {
    super(message);
  }
}

/** A workflow id that exists with another workflow name or another input. */
export class WorkflowConflictError extends WorkflowError {
  override name = "WorkflowConflictError";
}

/** No workflow with this id. */
export class WorkflowNotFoundError extends WorkflowError {
  override name = "WorkflowNotFoundError";
}

/**
 * Starting a workflow by a name that no executor has registered (a typo, or a worker that was never
 * started): refused unless the caller allows queueing it (`allowUnregistered`, CLI
 * `--allow-unregistered`). `known` lists the names executors have registered.
 */
export class WorkflowNotRegisteredError extends WorkflowNotFoundError {
  override name = "WorkflowNotRegisteredError";
  constructor(
    readonly workflowName: string,
    readonly known: readonly string[],
  ) {
    super(
      `unknown workflow ${JSON.stringify(workflowName)}: no executor has registered it ` +
        `(${known.length ? `known workflows: ${known.join(", ")}` : "no executor has registered any workflow yet"})`,
    );
  }
}

/** A module of a workflow project could not be imported (`loadProject`); `file` names it, `cause` is the import's error. */
export class WorkflowLoadError extends WorkflowError {
  override name = "WorkflowLoadError";
  constructor(
    readonly file: string,
    cause: unknown,
  ) {
    super(`cannot load ${file}: ${oneLine(cause)}`, { cause });
  }
}

/** An error as one line: its code (when it has one) and its message's lines joined, at most 500 characters. */
function oneLine(err: unknown): string {
  const e = err as { code?: unknown; name?: unknown; message?: unknown } | null;
  const message = typeof e?.message === "string" ? e.message : String(err);
  const code = typeof e?.code === "string" ? e.code : typeof e?.name === "string" && e.name !== "Error" ? e.name : "";
  const text = message
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .join(" ");
  const line = code && !text.startsWith(code) ? `${code}: ${text}` : text;
  return line.length > 500 ? `${line.slice(0, 499)}…` : line;
}

/** cancel/resume of a workflow in a status that does not allow it. */
export class WorkflowStateError extends WorkflowError {
  override name = "WorkflowStateError";
}

/** `handle.result({ timeoutMs })` ran out of time; the workflow goes on. */
export class WorkflowTimeoutError extends WorkflowError {
  override name = "WorkflowTimeoutError";
}
