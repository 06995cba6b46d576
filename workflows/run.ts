/**
 * One run of a workflow body by an executor: the replay of its recorded history, the context its
 * body gets, the saga compensation, and the final status. Like a DBOS workflow (and unlike
 * Temporal's event-sourced sandbox), the body is plain async code run again from the top on
 * recovery; each ctx call takes the next step number and returns the recorded outcome when the
 * history has one. The step protocol is workflows/README.md.
 */
import type { TransactionFunction } from "../types.ts";
import { isWorkflow } from "./define.ts";
import {
  ChildWorkflowFailedError,
  NonDeterminismError,
  NonRetryableError,
  StepFailedError,
  WorkflowOptionsError,
} from "./errors.ts";
import {
  backoffDelay,
  isTransactionDescriptor,
  validateName,
  validateSleepMs,
  validateStartOptions,
  validateStepOptions,
  validateTransactionStepOptions,
} from "./options.ts";
import { decodeOutput, jsonText, type StepRecord, type StepRow, type WorkflowRow, type WorkflowStore } from "./store.ts";
import type {
  ChildHandle,
  Compensation,
  RecordedWorkflowError,
  StepContext,
  StepKind,
  StartOptions,
  WorkflowContext,
  WorkflowDefinition,
  WorkflowStatus,
} from "./types.ts";
import { RetriesExhaustedError, isTransientError } from "../client/index.ts";

/** Why a run stopped without finishing the workflow (nothing more is written for it). */
export type AbortReason = "cancelled" | "lease-lost" | "shutdown" | "infrastructure";

/** Control flow of the engine, not of the workflow: a body that catches it cannot keep the run going. */
export class RunAborted extends Error {
  override name = "RunAborted";
  constructor(readonly reason: AbortReason) {
    super(`workflow run stopped: ${reason}`);
  }
}

/** A step attempt ran past its timeoutMs. */
export class StepTimeoutError extends Error {
  override name = "StepTimeoutError";
}

/** What a run needs from its executor. */
export interface RunHost {
  readonly store: WorkflowStore;
  readonly incarnation: string;
  readonly executorId: string;
  /** Export name of a transaction function descriptor (or the name itself). @throws WorkflowOptionsError */
  functionName(fn: TransactionFunction<any, any> | string): string;
  /** This executor's code hash of a registered workflow. @throws WorkflowOptionsError when not registered */
  codeHashOf(name: string): string;
  /** Starts running a workflow this incarnation owns (a child just started). */
  runOwned(id: string): void;
  /** Resolves with the workflow's row once it is terminal. */
  waitTerminal(id: string, signal: AbortSignal): Promise<WorkflowRow>;
}

/** The final outcome of a run, for the executor's log and tests. */
export type RunOutcome = { finished: WorkflowStatus; output?: unknown } | { aborted: AbortReason };

const bigintSafe = (_k: string, v: unknown) => (typeof v === "bigint" ? v.toString() : v);

/** The recorded form of an error: name, message, stack, and its own enumerable properties as data. */
export function describeError(e: unknown): RecordedWorkflowError {
  if (e === null || typeof e !== "object") return { name: "Error", message: String(e), data: { thrown: e === undefined ? null : e } };
  const err = e as Error & Record<string, unknown>;
  const out: RecordedWorkflowError = { name: String(err.name || err.constructor?.name || "Error"), message: String(err.message ?? "") };
  if (typeof err.stack === "string") out.stack = err.stack;
  const data: Record<string, unknown> = {};
  for (const k of Object.keys(err)) if (k !== "name" && k !== "message" && k !== "stack") data[k] = err[k];
  if (Object.keys(data).length) {
    try {
      out.data = JSON.parse(JSON.stringify(data, bigintSafe)) as Record<string, unknown>;
    } catch {
      out.data = { unserializable: true };
    }
  }
  return out;
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    // setTimeout holds at most 2^31-1 ms; longer sleeps wake up and sleep again.
    const t = setTimeout(done, Math.min(ms, 2 ** 31 - 1));
    function done() {
      signal.removeEventListener("abort", onAbort);
      if (ms > 2 ** 31 - 1) abortableSleep(ms - (2 ** 31 - 1), signal).then(resolve, reject);
      else resolve();
    }
    function onAbort() {
      clearTimeout(t);
      reject(signal.reason);
    }
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

interface Registered {
  step: number;
  run: () => Promise<unknown>;
}

export class WorkflowRun {
  private readonly controller = new AbortController();
  private abortReason: AbortReason | null = null;
  /** A NonDeterminismError stays fatal even if the body catches it. */
  private fatal: NonDeterminismError | null = null;
  private nextStep = 1;
  private readonly history = new Map<number, StepRow>();
  private readonly lastRecorded: number;
  private readonly compensations: Registered[] = [];
  private compensating: number | null = null;
  private readonly inflight = new Set<Promise<unknown>>();
  /**
   * Outcomes of external steps not written yet: the next statement of this run writes them in its
   * own transaction (a transaction step, a sleep/now/random record, the finish), and they are
   * flushed on their own before another external step or a child starts. Losing them in a crash
   * only makes the step run again (at least once); see workflows/README.md.
   */
  private deferred: StepRecord[] = [];

  constructor(
    private readonly host: RunHost,
    readonly row: WorkflowRow,
    private readonly definition: WorkflowDefinition,
    history: StepRow[],
  ) {
    for (const s of history) this.history.set(s.step, s);
    this.lastRecorded = history.length ? history[history.length - 1]!.step : 0;
  }

  get id(): string {
    return this.row.id;
  }

  /** Stops the run at its next step boundary (sleeps and step attempts are interrupted). Idempotent. */
  abort(reason: AbortReason): RunAborted {
    if (this.abortReason === null) {
      this.abortReason = reason;
      this.controller.abort(new RunAborted(reason));
    }
    return new RunAborted(this.abortReason);
  }

  /** Runs the body (replaying the history), compensates on failure, records the final status. */
  async execute(): Promise<RunOutcome> {
    let outcome: { ok: true; value: unknown } | { ok: false; error: unknown };
    try {
      outcome = { ok: true, value: await this.definition.body(this.context(), this.row.input) };
    } catch (error) {
      outcome = { ok: false, error };
    }
    await this.settle();
    const stop = this.stopped(outcome.ok ? null : outcome.error);
    if (stop) return stop;
    if (outcome.ok) {
      if (this.lastRecorded >= this.nextStep) {
        this.fatal = new NonDeterminismError(
          `workflow ${this.id} (${this.row.name}) returned after step ${this.nextStep - 1}, but its history has steps up to ${this.lastRecorded}: the code no longer makes the calls it made when they were recorded`,
          this.nextStep,
        );
        return this.finish("ERROR", undefined, describeError(this.fatal), "non-determinism");
      }
      return this.finish("SUCCESS", outcome.value, null, null);
    }
    return this.compensate(outcome.error);
  }

  /** Saga: the registered undo of each completed step, newest first, each a checkpointed call. */
  private async compensate(error: unknown): Promise<RunOutcome> {
    if (this.compensations.length === 0) return this.finish("ERROR", undefined, describeError(error), null);
    const failures: { step: number; error: RecordedWorkflowError }[] = [];
    // Newest step first, by step number: concurrent steps may complete (and register) in another
    // order on a replay than they did the first time; their numbers do not change.
    for (const c of [...this.compensations].sort((a, b) => b.step - a.step)) {
      this.compensating = c.step;
      try {
        await c.run();
      } catch (e) {
        const stop = this.stopped(e);
        if (stop) return stop;
        failures.push({ step: c.step, error: describeError(e) });
      }
      await this.settle();
    }
    this.compensating = null;
    const stop = this.stopped(null);
    if (stop) return stop;
    const recorded = describeError(error);
    if (failures.length) {
      recorded.compensationFailures = failures;
      return this.finish("ERROR", undefined, recorded, null);
    }
    return this.finish("COMPENSATED", undefined, recorded, null);
  }

  /** The run must stop without a normal outcome: aborted, non-deterministic, or the database is unreachable. */
  private stopped(error: unknown): Promise<RunOutcome> | null {
    if (this.abortReason === null && this.fatal === null && error !== null && isInfrastructureError(error)) this.abort("infrastructure");
    if (this.abortReason !== null) return Promise.resolve({ aborted: this.abortReason });
    if (this.fatal !== null) return this.finish("ERROR", undefined, describeError(this.fatal), "non-determinism");
    return null;
  }

  private async finish(status: Exclude<WorkflowStatus, "PENDING">, output: unknown, error: RecordedWorkflowError | null, park: "non-determinism" | null): Promise<RunOutcome> {
    const errorJson = error === null ? null : JSON.stringify(error);
    const outputJson = jsonText(output);
    const done = await this.withDeferred((batch) => this.host.store.finish(this.id, this.host.incarnation, status, outputJson, errorJson, park, batch));
    if (!done) return { aborted: (await this.host.store.get(this.id))?.status === "CANCELLED" ? "cancelled" : "lease-lost" };
    // The output as a reader of the row gets it (through JSON), so a local waiter sees the same value.
    return status === "SUCCESS" ? { finished: status, output: outputJson === null ? undefined : JSON.parse(outputJson) } : { finished: status };
  }

  /** Waits for ctx calls the body started but did not await. */
  private async settle(): Promise<void> {
    while (this.inflight.size) await Promise.allSettled([...this.inflight]);
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    const forget = () => this.inflight.delete(p);
    p.then(forget, forget);
    return p;
  }

  private checkLive(): void {
    if (this.fatal) throw this.fatal;
    if (this.abortReason !== null) throw new RunAborted(this.abortReason);
  }

  /** Takes the next step number; checks it against the history (the determinism check). */
  private begin(kind: StepKind, name: string): { n: number; rec: StepRow | undefined } {
    this.checkLive();
    const n = this.nextStep++;
    const rec = this.history.get(n);
    if (rec && (rec.kind !== kind || rec.name !== name)) {
      this.fatal = new NonDeterminismError(
        `workflow ${this.id} (${this.row.name}) is not deterministic: step ${n} is now ${kind} ${JSON.stringify(name)}, ` +
          `but the recorded history has ${rec.kind} ${JSON.stringify(rec.name)} there (code hash ${this.row.code_hash ?? "?"})`,
        n,
      );
      throw this.fatal;
    }
    return { n, rec };
  }

  /** A store call: a database that stays unreachable stops the run at once (it is retried later), whatever the body catches. */
  private async db<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (e) {
      if (isInfrastructureError(e)) throw this.abort("infrastructure");
      throw e;
    }
  }

  /** Hands the deferred records to one statement; puts them back if it fails. */
  private async withDeferred<T>(call: (batch: StepRecord[]) => Promise<T>): Promise<T> {
    const batch = this.deferred.splice(0);
    try {
      return await call(batch);
    } catch (e) {
      this.deferred.unshift(...batch);
      throw e;
    }
  }

  /** Writes the deferred records now (before an external effect that may depend on them). */
  private async flushDeferred(): Promise<void> {
    if (this.deferred.length === 0) return;
    const held = await this.db(() => this.withDeferred((batch) => this.host.store.flush(this.host.incarnation, this.id, batch)));
    if (!held) await this.fenceFailed();
  }

  /** A write was refused by the fence: the workflow was cancelled or another executor owns it now. */
  private async fenceFailed(): Promise<never> {
    const row = await this.db(() => this.host.store.get(this.id));
    throw this.abort(row?.status === "CANCELLED" ? "cancelled" : "lease-lost");
  }

  private async record(n: number, kind: StepKind, name: string, ok: boolean, value: unknown, attempts: number | null, startedAt: Date): Promise<StepRow> {
    const json = ok ? jsonText(value) : JSON.stringify(describeError(value));
    const rec = await this.db(() =>
      this.withDeferred((batch) =>
        this.host.store.recordStep(
          this.host.incarnation,
          this.id,
          { workflowId: this.id, step: n, kind, name, ok, json, attempts, compensates: this.compensating, startedAt },
          batch,
        ),
      ),
    );
    if (!rec) return this.fenceFailed();
    if (rec.kind !== kind || rec.name !== name) {
      this.fatal = new NonDeterminismError(`workflow ${this.id}: step ${n} was recorded meanwhile as ${rec.kind} ${rec.name}, not ${kind} ${name}`, n);
      throw this.fatal;
    }
    return rec;
  }

  private registerCompensation<O>(n: number, compensate: Compensation<O> | null, input: unknown, output: O): void {
    if (compensate === null) return;
    const ctx = this.context();
    const run = isTransactionDescriptor(compensate)
      ? () => ctx.transaction(compensate, input)
      : () => (compensate as (o: O) => Promise<unknown>)(output);
    this.compensations.push({ step: n, run });
  }

  private ctx: WorkflowContext | null = null;

  private context(): WorkflowContext {
    if (this.ctx) return this.ctx;
    const run = this;
    this.ctx = Object.freeze({
      workflowId: this.row.id,
      workflowName: this.row.name,
      bundleVersion: this.row.bundle_version,
      transaction: <I, O>(fn: TransactionFunction<I, O> | string, input: I, options?: unknown) => run.track(run.transaction<I, O>(fn, input, options)),
      step: <O>(name: string, fn: (s: StepContext) => Promise<O> | O, options?: unknown) => run.track(run.step<O>(name, fn, options)),
      sleep: (ms: number) => run.track(run.sleep(ms)),
      now: () => run.track(run.recorded("now", () => Date.now())) as Promise<number>,
      random: () => run.track(run.recorded("random", () => Math.random())) as Promise<number>,
      startChild: <I, O>(wf: WorkflowDefinition<I, O>, input: I, options?: StartOptions) => run.track(run.startChild<I, O>(wf, input, options)),
      child: async <I, O>(wf: WorkflowDefinition<I, O>, input: I, options?: StartOptions) => (await run.ctx!.startChild(wf, input, options)).result() as Promise<O>,
    } satisfies WorkflowContext);
    return this.ctx;
  }

  private async transaction<I, O>(fn: TransactionFunction<I, O> | string, input: I, options: unknown): Promise<O> {
    const name = this.host.functionName(fn);
    const { compensate } = validateTransactionStepOptions<O>(name, options);
    const { n, rec } = this.begin("transaction", name);
    let ok: boolean;
    let output: unknown;
    let failure: RecordedWorkflowError | null = null;
    if (rec) {
      ok = rec.status === "ok";
      output = decodeOutput(rec.output);
      failure = rec.error;
    } else {
      const env = await this.db(() =>
        this.withDeferred((deferred) =>
          this.host.store.transactionStep({
            owner: this.host.incarnation, workflowId: this.id, step: n, fn: name, input, version: this.row.bundle_version,
            compensates: this.compensating, startedAt: new Date(), deferred,
          }),
        ),
      );
      if (env === null) return this.fenceFailed();
      ok = env.error === undefined;
      output = env.output;
      failure = env.error ?? null;
    }
    this.checkLive();
    if (!ok) throw new StepFailedError(n, name, "transaction", failure ?? { name: "Error", message: "unknown failure" });
    this.registerCompensation(n, compensate, input, output as O);
    return output as O;
  }

  private async step<O>(name: string, fn: (s: StepContext) => Promise<O> | O, options: unknown): Promise<O> {
    validateName("ctx.step(name, fn): name", name);
    if (typeof fn !== "function") throw new WorkflowOptionsError(`ctx.step(${JSON.stringify(name)}, fn): fn must be a function`);
    const opts = validateStepOptions<O>(name, options);
    const { n, rec: recorded } = this.begin("step", name);
    let rec = recorded;
    if (!rec) {
      await this.flushDeferred();
      const startedAt = new Date();
      let attempt = 0;
      let result: { ok: boolean; value: unknown };
      for (;;) {
        attempt++;
        this.checkLive();
        try {
          result = { ok: true, value: await this.attempt(n, attempt, fn, opts.timeoutMs) };
          break;
        } catch (e) {
          this.checkLive();
          if (e instanceof NonRetryableError || attempt > opts.retries) {
            result = { ok: false, value: e };
            break;
          }
        }
        try {
          await abortableSleep(backoffDelay(opts.backoff, attempt), this.controller.signal);
        } catch {
          this.checkLive();
        }
      }
      // Deferred: written by the run's next statement (module comment of `deferred`).
      const json = result.ok ? jsonText(result.value) : JSON.stringify(describeError(result.value));
      this.deferred.push({ workflowId: this.id, step: n, kind: "step", name, ok: result.ok, json, attempts: attempt, compensates: this.compensating, startedAt });
      this.checkLive();
      if (!result.ok) throw new StepFailedError(n, name, "step", JSON.parse(json!) as RecordedWorkflowError);
      const output = decodeOutput(json) as O; // what a replay will return
      this.registerCompensation(n, opts.compensate, undefined, output);
      return output;
    }
    this.checkLive();
    if (rec.status !== "ok") throw new StepFailedError(n, name, "step", rec.error ?? { name: "Error", message: "unknown failure" });
    const output = decodeOutput(rec.output) as O;
    this.registerCompensation(n, opts.compensate, undefined, output);
    return output;
  }

  /** One attempt of an external step, raced against its timeout and the run's abort. */
  private attempt<O>(n: number, attempt: number, fn: (s: StepContext) => Promise<O> | O, timeoutMs: number | null): Promise<O> {
    const ac = new AbortController();
    const onRunAbort = () => ac.abort(this.controller.signal.reason);
    this.controller.signal.addEventListener("abort", onRunAbort, { once: true });
    const timer = timeoutMs === null ? undefined : setTimeout(() => ac.abort(new StepTimeoutError(`attempt ${attempt} timed out after ${timeoutMs} ms`)), timeoutMs);
    const stepCtx: StepContext = Object.freeze({ idempotencyKey: `${this.id}:${n}`, workflowId: this.id, stepNumber: n, attempt, signal: ac.signal });
    const aborted = new Promise<never>((_, reject) => ac.signal.addEventListener("abort", () => reject(ac.signal.reason), { once: true }));
    aborted.catch(() => {}); // an abort after the attempt settled must not be an unhandled rejection
    return Promise.race([Promise.resolve().then(() => fn(stepCtx)), aborted]).finally(() => {
      clearTimeout(timer);
      this.controller.signal.removeEventListener("abort", onRunAbort);
    });
  }

  private async sleep(ms: number): Promise<void> {
    validateSleepMs(ms);
    const { n, rec: recorded } = this.begin("sleep", "sleep");
    const rec = recorded ?? (await this.record(n, "sleep", "sleep", true, Date.now() + ms, null, new Date()));
    const wake = decodeOutput(rec.output) as number;
    try {
      await abortableSleep(Math.max(0, wake - Date.now()), this.controller.signal);
    } catch {
      this.checkLive();
    }
    this.checkLive();
  }

  private async recorded(kind: "now" | "random", value: () => number): Promise<number> {
    const { n, rec } = this.begin(kind, kind);
    const r = rec ?? (await this.record(n, kind, kind, true, value(), null, new Date()));
    this.checkLive();
    return decodeOutput(r.output) as number;
  }

  private async startChild<I, O>(wf: WorkflowDefinition<I, O>, input: I, options: StartOptions | undefined): Promise<ChildHandle<O>> {
    if (!isWorkflow(wf)) throw new WorkflowOptionsError("ctx.startChild(workflow, input): workflow must be made by workflow(name, body)");
    const opts = validateStartOptions("ctx.startChild", options);
    const codeHash = this.host.codeHashOf(wf.name);
    const { n, rec } = this.begin("child", wf.name);
    let childId: string;
    if (rec) {
      childId = (decodeOutput(rec.output) as { workflowId: string }).workflowId;
    } else {
      childId = opts.id ?? `${this.id}/${n}`;
      await this.flushDeferred();
      const r = await this.db(() =>
        this.host.store.startChild(
          this.host.incarnation,
          { id: this.id, step: n, compensates: this.compensating, startedAt: new Date(), bundleVersion: this.row.bundle_version },
          { id: childId, name: wf.name, input, executorId: this.host.executorId, codeHash },
        ),
      );
      if (r === null) return this.fenceFailed();
      if (r.inserted) this.host.runOwned(childId);
    }
    this.checkLive();
    const run = this;
    return Object.freeze({
      workflowId: childId,
      result: () =>
        run.track(
          (async () => {
            run.checkLive();
            let row: WorkflowRow;
            try {
              row = await run.db(() => run.host.waitTerminal(childId, run.controller.signal));
            } catch (e) {
              run.checkLive();
              throw e;
            }
            if (row.status === "SUCCESS") return decodeOutput(row.output) as O;
            throw new ChildWorkflowFailedError(childId, row.status, row.error);
          })(),
        ),
    });
  }
}

/** Errors that say the database could not be reached or kept failing transiently: the run is retried later, not failed. */
export function isInfrastructureError(e: unknown): boolean {
  return e instanceof RetriesExhaustedError || (!(e instanceof StepFailedError) && isTransientError(e));
}
