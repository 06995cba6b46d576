/**
 * The one place that checks workflow options and arguments: unknown keys and bad values are
 * WorkflowOptionsErrors naming them. Pure (no Node API): define.ts uses it too.
 */
import { TXFN_KIND, type TransactionFunction } from "../types.ts";
import { WorkflowOptionsError } from "./errors.ts";
import type { Backoff, Compensation, StartOptions, StepOptions, TransactionStepOptions } from "./types.ts";

type Obj = Record<string, unknown>;

function objectOf(what: string, value: unknown, allowed: readonly string[]): Obj {
  if (value === undefined) return {};
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new WorkflowOptionsError(`${what}: options must be an object (allowed keys: ${allowed.join(", ")})`);
  }
  const o = value as Obj;
  const unknown = Object.keys(o).filter((k) => !allowed.includes(k));
  if (unknown.length) throw new WorkflowOptionsError(`${what}: unknown option(s) ${unknown.join(", ")} (allowed: ${allowed.join(", ")})`);
  return o;
}

function integer(what: string, key: string, value: unknown, dflt: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return dflt;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new WorkflowOptionsError(`${what}: ${key} must be an integer in [${min}, ${max}], got ${JSON.stringify(value)}`);
  }
  return value;
}

function number(what: string, key: string, value: unknown, dflt: number, min: number): number {
  if (value === undefined) return dflt;
  if (typeof value !== "number" || !Number.isFinite(value) || value < min) {
    throw new WorkflowOptionsError(`${what}: ${key} must be a number ≥ ${min}, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** True for a `transaction(...)` descriptor (works across bundle copies). */
export function isTransactionDescriptor(value: unknown): value is TransactionFunction {
  return typeof value === "object" && value !== null && (value as Obj)[TXFN_KIND] === "transaction";
}

const NAME = /^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$/;

/** Workflow and step names: 1–128 characters, letters, digits, `_ . : -`, not starting with a digit or punctuation. */
export function validateName(what: string, name: unknown): string {
  if (typeof name !== "string" || !NAME.test(name)) {
    throw new WorkflowOptionsError(`${what} must be 1–128 characters of letters, digits, _ . : - starting with a letter or _, got ${JSON.stringify(name)}`);
  }
  return name;
}

/** Workflow ids: 1–200 printable characters (they become idempotency-key prefixes). */
export function validateWorkflowId(id: unknown): string {
  if (typeof id !== "string" || id.length === 0 || id.length > 200 || /[\u0000-\u001f\u007f]/.test(id)) {
    throw new WorkflowOptionsError(`workflow id must be a string of 1–200 printable characters, got ${JSON.stringify(id)}`);
  }
  return id;
}

const START_KEYS = ["id"] as const;

export function validateStartOptions(what: string, options: unknown): { id: string | null } {
  const o = objectOf(what, options, START_KEYS) as StartOptions;
  return { id: o.id === undefined ? null : validateWorkflowId(o.id) };
}

function validateCompensation<O>(what: string, value: unknown): Compensation<O> | null {
  if (value === undefined || value === null) return null;
  if (typeof value === "function" || isTransactionDescriptor(value)) return value as Compensation<O>;
  throw new WorkflowOptionsError(`${what}: compensate must be a transaction function or an async function of the step's output`);
}

export interface ResolvedBackoff {
  initialMs: number;
  factor: number;
  maxMs: number;
}

export interface ResolvedStepOptions<O> {
  retries: number;
  backoff: ResolvedBackoff;
  timeoutMs: number | null;
  compensate: Compensation<O> | null;
}

const STEP_KEYS = ["retries", "backoff", "timeoutMs", "compensate"] as const;
const BACKOFF_KEYS = ["initialMs", "factor", "maxMs"] as const;

/** Options of ctx.step: retries default 3, backoff 100 ms × 2^n up to 10 s, no timeout. */
export function validateStepOptions<O>(name: string, options: unknown): ResolvedStepOptions<O> {
  const what = `ctx.step(${JSON.stringify(name)})`;
  const o = objectOf(what, options, STEP_KEYS) as StepOptions<O>;
  const b = objectOf(`${what} backoff`, o.backoff, BACKOFF_KEYS) as Backoff;
  const backoff = {
    initialMs: number(what, "backoff.initialMs", b.initialMs, 100, 0),
    factor: number(what, "backoff.factor", b.factor, 2, 1),
    maxMs: number(what, "backoff.maxMs", b.maxMs, 10_000, 0),
  };
  return {
    retries: integer(what, "retries", o.retries, 3, 0, 1000),
    backoff,
    timeoutMs: o.timeoutMs === undefined ? null : integer(what, "timeoutMs", o.timeoutMs, 0, 1),
    compensate: validateCompensation<O>(what, o.compensate),
  };
}

const TRANSACTION_STEP_KEYS = ["compensate"] as const;

export function validateTransactionStepOptions<O>(fnName: string, options: unknown): { compensate: Compensation<O> | null } {
  const what = `ctx.transaction(${fnName})`;
  const o = objectOf(what, options, TRANSACTION_STEP_KEYS) as TransactionStepOptions<O>;
  return { compensate: validateCompensation<O>(what, o.compensate) };
}

/** Delay before attempt `attempt + 1` (attempt ≥ 1). */
export function backoffDelay(b: ResolvedBackoff, attempt: number): number {
  return Math.min(b.maxMs, b.initialMs * b.factor ** (attempt - 1));
}

/** A sleep duration: a finite number of ms ≥ 0, at most about 24.8 days (setTimeout's limit is handled by chunking). */
export function validateSleepMs(ms: unknown): number {
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) {
    throw new WorkflowOptionsError(`ctx.sleep(ms): ms must be a finite number ≥ 0, got ${JSON.stringify(ms)}`);
  }
  return ms;
}

// --- executors ---------------------------------------------------------------------------------

/** Something with pino's methods (a pino logger fits). */
export interface WorkflowLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export interface ExecutorTuning {
  /** Stable name of this executor; a restart with the same id recovers its workflows at once. Default: `<hostname>:<pid>:<random>`. */
  executorId?: string;
  /** Lease length, ms: another executor takes over this one's workflows this long after its last heartbeat. Default 10 000. */
  leaseMs?: number;
  /** Heartbeat period, ms (< leaseMs / 2). Default leaseMs / 4. */
  heartbeatMs?: number;
  /** Look for claimable workflows at least this often, ms (NOTIFY wakes it sooner). Default 1000. */
  pollMs?: number;
  /** Workflows run at once by this executor. Default 100. */
  maxConcurrent?: number;
  /** Workflows claimed per claim statement. Default 20. */
  claimBatch?: number;
  /** Consecutive recoveries without a new step before a workflow is parked as ERROR (poison). Default 10. */
  maxRecoveryAttempts?: number;
  /** Database connections for steps and bookkeeping. Default 10. */
  poolSize?: number;
  /** Transient database errors retried per statement (same key). Default 8. */
  maxRetries?: number;
  /** application_name of the connections. Default "txfn-workflows". */
  applicationName?: string;
  /** Apply txfn's system migrations at start (needs the rights deploy needs). Default true. */
  migrate?: boolean;
  /** Logger (pino-compatible); default: none. */
  logger?: WorkflowLogger;
}

export type ResolvedTuning = Required<Omit<ExecutorTuning, "logger">> & { logger: WorkflowLogger | null };

export const EXECUTOR_TUNING_KEYS = [
  "executorId", "leaseMs", "heartbeatMs", "pollMs", "maxConcurrent", "claimBatch", "maxRecoveryAttempts", "poolSize",
  "maxRetries", "applicationName", "migrate", "logger",
] as const;

/** Validates executor tuning (the caller has already taken its own keys out). */
export function resolveTuning(o: ExecutorTuning, defaultExecutorId: string): ResolvedTuning {
  const what = "startExecutor";
  const leaseMs = integer(what, "leaseMs", o.leaseMs, 10_000, 200);
  const heartbeatMs = integer(what, "heartbeatMs", o.heartbeatMs, Math.floor(leaseMs / 4), 10, Math.floor(leaseMs / 2));
  const executorId = o.executorId === undefined ? defaultExecutorId : o.executorId;
  if (typeof executorId !== "string" || executorId.length === 0 || executorId.length > 200) {
    throw new WorkflowOptionsError(`${what}: executorId must be a string of 1–200 characters`);
  }
  if (o.migrate !== undefined && typeof o.migrate !== "boolean") throw new WorkflowOptionsError(`${what}: migrate must be a boolean`);
  if (o.applicationName !== undefined && typeof o.applicationName !== "string") {
    throw new WorkflowOptionsError(`${what}: applicationName must be a string`);
  }
  if (o.logger !== undefined && (typeof o.logger !== "object" || o.logger === null || typeof o.logger.info !== "function")) {
    throw new WorkflowOptionsError(`${what}: logger must be a pino-compatible logger`);
  }
  return {
    executorId,
    leaseMs,
    heartbeatMs,
    pollMs: integer(what, "pollMs", o.pollMs, 1000, 10),
    maxConcurrent: integer(what, "maxConcurrent", o.maxConcurrent, 100, 1),
    claimBatch: integer(what, "claimBatch", o.claimBatch, 20, 1),
    maxRecoveryAttempts: integer(what, "maxRecoveryAttempts", o.maxRecoveryAttempts, 10, 1),
    poolSize: integer(what, "poolSize", o.poolSize, 10, 2),
    maxRetries: integer(what, "maxRetries", o.maxRetries, 8, 0),
    applicationName: o.applicationName ?? "txfn-workflows",
    migrate: o.migrate ?? true,
    logger: o.logger ?? null,
  };
}

/** Rejects keys of `given` not in `allowed`. */
export function rejectUnknownKeys(what: string, given: object, allowed: readonly string[]): void {
  objectOf(what, given, allowed);
}
