/**
 * Workflow executors: run workflows to completion across crashes. `txfn worker` is one; a proxy
 * (`txfn serve`) embeds one with `startExecutor()`.
 *
 * An executor process is one *incarnation* (a UUID) of a stable executor id. It holds a lease in
 * txfn.workflow_executors renewed by heartbeats; workflows it runs are owned by its incarnation.
 * It claims unowned workflows and those of expired incarnations (FOR UPDATE SKIP LOCKED, so two
 * executors recovering at once take disjoint sets), including, at start-up, those of earlier
 * incarnations of its own executor id (a restarted worker recovers its workflows at once, like
 * DBOS's executor-id recovery). A workflow recorded with other code is parked, not continued; one
 * recovered too often without progress is parked as poison. See workflows/README.md.
 */
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import pg from "pg";
import { ensureSystemSchema } from "../migrations/index.ts";
import type { TransactionFunction } from "../types.ts";
import { makeHandle, waitTerminal } from "./client.ts";
import { isWorkflow } from "./define.ts";
import { WorkflowOptionsError, WorkflowStateError } from "./errors.ts";
import { bodyHash, type LoadedProject, type LoadedWorkflow } from "./loader.ts";
import {
  EXECUTOR_TUNING_KEYS,
  isTransactionDescriptor,
  rejectUnknownKeys,
  resolveTuning,
  validateName,
  validateStartOptions,
  type ExecutorTuning,
  type ResolvedTuning,
} from "./options.ts";
import { WorkflowRun, describeError, type AbortReason, type RunHost, type RunOutcome } from "./run.ts";
import { WorkflowStore, type StepRow, type WorkflowRow } from "./store.ts";
import type { StartOptions, WorkflowDefinition, WorkflowHandle } from "./types.ts";

export interface ExecutorOptions extends ExecutorTuning {
  databaseUrl: string;
  /** The workflows this executor runs: definitions (code hash = hash of the body's text) or a loaded project (hash of each module file). */
  workflows: readonly WorkflowDefinition[] | LoadedProject;
  /**
   * Where transaction function descriptors get their names (their export names): module
   * namespaces (`import * as checkout from "./checkout.ts"`) or `{ name: descriptor }` records.
   * A loaded project brings its own. `ctx.transaction("name", …)` needs none.
   */
  functions?: readonly Record<string, unknown>[] | Record<string, unknown>;
}

interface Entry {
  run: WorkflowRun | null;
  pendingAbort: AbortReason | null;
  /** Settles when the local run ends, with its outcome when it got one. */
  done: Promise<RunOutcome | null>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Starts an executor: applies txfn's system migrations (unless `migrate: false`), registers its
 * incarnation, and begins claiming workflows (recovering PENDING ones at once).
 * @throws WorkflowOptionsError for bad options; database errors when it cannot register.
 */
export async function startExecutor(options: ExecutorOptions): Promise<Executor> {
  const executor = new Executor(options);
  await executor.begin();
  return executor;
}

export class Executor {
  readonly executorId: string;
  readonly store: WorkflowStore;
  private readonly url: string;
  private readonly tuning: ResolvedTuning;
  private readonly defs = new Map<string, LoadedWorkflow>();
  private readonly fnNames = new Map<TransactionFunction<any, any>, string>();
  private readonly runs = new Map<string, Entry>();
  private inc = randomUUID();
  private state: "new" | "running" | "stopping" | "stopped" = "new";
  private wakeUp: (() => void) | null = null;
  private wakePending = false;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private beating = false;
  private lastBeat = Date.now();
  private control: pg.Client | null = null;
  private loop: Promise<void> = Promise.resolve();
  private reincarnating: Promise<void> | null = null;
  private readonly names: string[];
  private readonly hashes: string[];
  /** name → code hash: what this executor registers in txfn.workflow_executors.workflows. */
  private readonly served: Record<string, string>;
  /** Names of PENDING workflows seen here that this executor does not run (each warned about once). */
  private readonly seenUnknown = new Set<string>();

  constructor(options: ExecutorOptions) {
    rejectUnknownKeys("startExecutor", options, ["databaseUrl", "workflows", "functions", ...EXECUTOR_TUNING_KEYS]);
    if (typeof options.databaseUrl !== "string" || options.databaseUrl === "") throw new WorkflowOptionsError("startExecutor: databaseUrl is required");
    this.url = options.databaseUrl;
    this.tuning = resolveTuning(options, `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`);
    this.executorId = this.tuning.executorId;
    const loaded: LoadedWorkflow[] = Array.isArray(options.workflows)
      ? (options.workflows as WorkflowDefinition[]).map((d) => {
          if (!isWorkflow(d)) throw new WorkflowOptionsError("startExecutor: workflows must be made by workflow(name, body)");
          return { definition: d, codeHash: bodyHash(d), file: null };
        })
      : (options.workflows as LoadedProject).workflows;
    if (!loaded || loaded.length === 0) throw new WorkflowOptionsError("startExecutor: give at least one workflow");
    for (const w of loaded) {
      if (this.defs.has(w.definition.name)) throw new WorkflowOptionsError(`startExecutor: two workflows are named ${w.definition.name}`);
      this.defs.set(w.definition.name, w);
    }
    if (!Array.isArray(options.workflows)) for (const [d, n] of (options.workflows as LoadedProject).functions) this.fnNames.set(d, n);
    const namespaces = options.functions === undefined ? [] : Array.isArray(options.functions) ? options.functions : [options.functions];
    for (const ns of namespaces as Record<string, unknown>[]) {
      for (const [name, value] of Object.entries(ns)) if (isTransactionDescriptor(value) && !this.fnNames.has(value)) this.fnNames.set(value, name);
    }
    this.names = [...this.defs.keys()];
    this.hashes = this.names.map((n) => this.defs.get(n)!.codeHash);
    this.served = Object.fromEntries(this.names.map((n, i) => [n, this.hashes[i]!]));
    this.store = new WorkflowStore({ url: this.url, poolSize: this.tuning.poolSize, maxRetries: this.tuning.maxRetries, applicationName: this.tuning.applicationName });
  }

  /** The current incarnation (a new one after a lost lease). */
  get incarnation(): string {
    return this.inc;
  }

  /** Workflows running here now. */
  get running(): number {
    return this.runs.size;
  }

  /** Registers and starts the claim loop and heartbeats; called by startExecutor. */
  async begin(): Promise<void> {
    if (this.state !== "new") throw new WorkflowStateError("executor already started");
    if (this.tuning.migrate) await this.migrate();
    await this.store.register(this.inc, this.executorId, this.tuning.leaseMs, hostname(), process.pid, this.served);
    this.lastBeat = Date.now();
    this.state = "running";
    await this.store.collectExecutors().catch(() => {});
    await this.connectControl();
    this.heartbeatTimer = setInterval(() => void this.beat(), this.tuning.heartbeatMs);
    this.loop = this.claimLoop();
    this.log("info", { workflows: this.names, incarnation: this.inc }, "executor ready");
    void this.warnPendingUnknown();
  }

  private async migrate(): Promise<void> {
    const c = new pg.Client({ connectionString: this.url, application_name: this.tuning.applicationName });
    await c.connect();
    try {
      await c.query("BEGIN");
      await ensureSystemSchema(c);
      await c.query("COMMIT");
    } catch (err) {
      await c.query("ROLLBACK").catch(() => {});
      throw err;
    } finally {
      await c.end();
    }
  }

  /**
   * Starts a workflow and runs it here at once (no claim round trip). An existing id with the
   * same name and input returns its handle without running it again.
   * @throws WorkflowOptionsError (not registered here), WorkflowConflictError, WorkflowStateError (stopped)
   */
  async start<I, O>(workflow: WorkflowDefinition<I, O> | string, input: I, options: StartOptions = {}): Promise<WorkflowHandle<O>> {
    if (this.state !== "running") throw new WorkflowStateError(`executor ${this.executorId} is ${this.state}`);
    const name = isWorkflow(workflow) ? workflow.name : validateName("workflow name", workflow);
    const def = this.defs.get(name);
    if (!def) throw new WorkflowOptionsError(`workflow ${JSON.stringify(name)} is not registered with this executor (it has: ${this.names.join(", ")})`);
    const { id } = validateStartOptions("executor.start", options);
    const wid = id ?? randomUUID();
    const { inserted, row } = await this.store.insertWorkflow({ id: wid, name, input, owner: this.inc, executorId: this.executorId, codeHash: def.codeHash });
    if (inserted) this.launch(wid, row, []);
    return this.handle<O>(wid);
  }

  /**
   * A handle. While the workflow runs here, `result()` waits for the local run and, on SUCCESS,
   * returns its output without reading the row again (as DBOS's handles do for local workflows).
   */
  handle<O = unknown>(id: string): WorkflowHandle<O> {
    const base = makeHandle<O>(this.store, id, () => this.runs.get(id)?.done);
    const local = this.runs.get(id)?.done;
    if (!local) return base;
    return Object.freeze({
      ...base,
      async result(options: { timeoutMs?: number } = {}) {
        if (options.timeoutMs === undefined) {
          const outcome = await local;
          if (outcome && "finished" in outcome && outcome.finished === "SUCCESS") return outcome.output as O;
        }
        return base.result(options);
      },
    });
  }

  /**
   * Stops: no more claims, running workflows stop at their next step boundary (an external step
   * in flight is abandoned and runs again elsewhere: at least once), the incarnation is expired
   * so other executors take its workflows over at once, connections are closed.
   */
  async stop(): Promise<void> {
    if (this.state === "stopped" || this.state === "stopping") return;
    const wasRunning = this.state === "running";
    this.state = "stopping";
    clearInterval(this.heartbeatTimer);
    this.wake();
    for (const id of this.runs.keys()) this.abortRun(id, "shutdown");
    await Promise.allSettled([...this.runs.values()].map((e) => e.done));
    await this.loop;
    if (wasRunning) await this.store.expire(this.inc).catch(() => {});
    await this.control?.end().catch(() => {});
    await this.store.close();
    this.state = "stopped";
    this.log("info", {}, "executor stopped");
  }

  // --- claiming and running ----------------------------------------------------------------------

  private wake(): void {
    this.wakePending = true;
    this.wakeUp?.();
  }

  private waitWake(ms: number): Promise<void> {
    if (this.wakePending) {
      this.wakePending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(t);
        self.wakeUp = null;
        self.wakePending = false;
        resolve();
      }
      this.wakeUp = done;
    });
  }

  private async claimLoop(): Promise<void> {
    while (this.state === "running") {
      if (this.reincarnating) await this.reincarnating;
      const room = Math.min(this.tuning.maxConcurrent - this.runs.size, this.tuning.claimBatch);
      let claimed = 0;
      if (room > 0) {
        try {
          const rows = await this.store.claim(this.inc, this.executorId, this.names, this.hashes, [...this.runs.keys()], room);
          claimed = rows.length;
          for (const row of rows) this.launch(row.id, row, row.steps === 0 ? [] : null);
          if (claimed) this.log("debug", { claimed: rows.map((r) => r.id) }, "claimed workflows");
        } catch (err) {
          this.log("warn", { err: describeError(err) }, "claim failed");
        }
      }
      if (this.state !== "running") break;
      if (claimed > 0 && claimed === room) continue;
      await this.waitWake(this.tuning.pollMs);
    }
  }

  /** Runs workflow `id` here unless it already runs here; loads its row/history when not given. */
  private launch(id: string, given: WorkflowRow | null, history: StepRow[] | null): void {
    if (this.runs.has(id)) return;
    const entry: Entry = { run: null, pendingAbort: null, done: Promise.resolve(null) };
    this.runs.set(id, entry);
    const inc = this.inc;
    entry.done = (async (): Promise<RunOutcome | null> => {
      try {
        const row = given ?? (await this.store.get(id));
        if (!row || row.status !== "PENDING" || row.owner !== inc) return null;
        const def = this.defs.get(row.name);
        if (!def) return null;
        if (await this.parkIfNeeded(row, def, inc)) return null;
        const run = new WorkflowRun(this.runHost(inc), row, def.definition, history ?? (await this.store.history(id)));
        entry.run = run;
        if (entry.pendingAbort) run.abort(entry.pendingAbort);
        const outcome = await run.execute();
        this.log(
          "aborted" in outcome && outcome.aborted === "infrastructure" ? "warn" : "debug",
          { workflowId: id, name: row.name, ...("aborted" in outcome ? outcome : { finished: outcome.finished }) },
          "workflow run ended",
        );
        return outcome;
      } catch (err) {
        // The store kept failing (or a bug): the workflow stays PENDING and owned by this
        // incarnation, and the claim loop takes it again (owner = me and not running here).
        this.log("warn", { workflowId: id, err: describeError(err) }, "workflow run failed; it will be claimed again");
        return null;
      } finally {
        this.runs.delete(id);
        this.wake();
      }
    })();
  }

  /** Parks (ERROR + park_reason) a workflow recorded with other code, or recovered too often without progress. */
  private async parkIfNeeded(row: WorkflowRow, def: LoadedWorkflow, inc: string): Promise<boolean> {
    let reason: "code-changed" | "recovery-limit" | null = null;
    let error: { name: string; message: string; data: Record<string, unknown> } | null = null;
    if (row.code_hash !== null && row.code_hash !== def.codeHash) {
      reason = "code-changed";
      error = {
        name: "WorkflowCodeChanged",
        message:
          `workflow ${row.id} (${row.name}) started with code ${row.code_hash.slice(0, 12)}, but executor ${this.executorId} has ` +
          `${def.codeHash.slice(0, 12)}${def.file ? ` (${def.file})` : ""}: it is not continued with other code. Run an executor with the ` +
          `original code, or continue it with this code: txfn workflow resume ${row.id} --new-code`,
        data: { recorded: row.code_hash, current: def.codeHash },
      };
    } else if (row.recovery_attempts > this.tuning.maxRecoveryAttempts) {
      reason = "recovery-limit";
      error = {
        name: "RecoveryLimitExceeded",
        message:
          `workflow ${row.id} (${row.name}) was recovered ${row.recovery_attempts - 1} times in a row without recording a new step ` +
          `(limit ${this.tuning.maxRecoveryAttempts}): parked as a poison workflow (it may crash its executor). ` +
          `Fix the cause, then: txfn workflow resume ${row.id}`,
        data: { recoveryAttempts: row.recovery_attempts, steps: row.progress_steps },
      };
    }
    if (!reason || !error) return false;
    await this.store.finish(row.id, inc, "ERROR", null, JSON.stringify(error), reason);
    this.log("warn", { workflowId: row.id, name: row.name, reason }, error.message);
    return true;
  }

  private runHost(inc: string): RunHost {
    return {
      store: this.store,
      incarnation: inc,
      executorId: this.executorId,
      functionName: (fn) => {
        if (typeof fn === "string") return validateName("ctx.transaction: function name", fn);
        const name = this.fnNames.get(fn);
        if (name !== undefined) return name;
        throw new WorkflowOptionsError(
          "ctx.transaction: this transaction function's name is unknown to the executor: run `txfn worker <project>`, " +
            "pass its module to startExecutor({ functions: [module] }), or call it by name",
        );
      },
      codeHashOf: (name) => {
        const def = this.defs.get(name);
        if (!def) throw new WorkflowOptionsError(`workflow ${JSON.stringify(name)} is not registered with this executor (it has: ${this.names.join(", ")})`);
        return def.codeHash;
      },
      runOwned: (id) => this.launch(id, null, []),
      waitTerminal: (id, signal) => waitTerminal(this.store, id, { signal, nudge: () => this.runs.get(id)?.done }),
    };
  }

  private abortRun(id: string, reason: AbortReason): void {
    const e = this.runs.get(id);
    if (!e) return;
    if (e.run) e.run.abort(reason);
    else e.pendingAbort ??= reason;
  }

  // --- leases ------------------------------------------------------------------------------------

  /** A connection of its own for heartbeats and LISTEN, so a busy pool cannot starve the lease. */
  private async connectControl(): Promise<void> {
    const c = new pg.Client({ connectionString: this.url, application_name: `${this.tuning.applicationName} control` });
    c.on("error", () => {
      if (this.control === c) this.control = null;
    });
    c.on("notification", (n) => {
      if (n.channel !== "txfn_workflow_ready") return;
      if (!n.payload || this.defs.has(n.payload)) this.wake();
      else if (!this.seenUnknown.has(n.payload)) void this.warnUnknown(n.payload, null, null);
    });
    try {
      await c.connect();
      await c.query("LISTEN txfn_workflow_ready");
      this.control = c;
    } catch (err) {
      await c.end().catch(() => {});
      this.log("warn", { err: describeError(err) }, "control connection failed; will retry");
    }
  }

  private async beat(): Promise<void> {
    if (this.beating || this.state !== "running" || this.reincarnating) return;
    this.beating = true;
    try {
      if (!this.control) await this.connectControl();
      const c = this.control;
      if (!c) throw new Error("no control connection");
      const r = await c.query(
        "UPDATE txfn.workflow_executors SET heartbeat_at = clock_timestamp(), lease_expires_at = clock_timestamp() + $2 * interval '1 millisecond' " +
          "WHERE incarnation = $1::uuid AND NOT expired RETURNING 1",
        [this.inc, this.tuning.leaseMs],
      );
      if (r.rowCount !== 1) {
        void this.reincarnate("the lease was taken over (this executor was presumed dead)");
        return;
      }
      this.lastBeat = Date.now();
      const ids = [...this.runs.keys()];
      if (ids.length) {
        const gone = await c.query<{ id: string; status: string }>(
          "SELECT id, status FROM txfn.workflows WHERE id = ANY($2::text[]) AND (status <> 'PENDING' OR owner IS DISTINCT FROM $1::uuid)",
          [this.inc, ids],
        );
        for (const g of gone.rows) this.abortRun(g.id, g.status === "CANCELLED" ? "cancelled" : "lease-lost");
      }
    } catch (err) {
      if (this.control) await this.control.end().catch(() => {});
      this.control = null;
      // Self-fencing: past the lease without a heartbeat, others may take the workflows over.
      if (Date.now() - this.lastBeat > this.tuning.leaseMs - this.tuning.heartbeatMs) {
        for (const id of this.runs.keys()) this.abortRun(id, "lease-lost");
      }
      this.log("warn", { err: describeError(err) }, "heartbeat failed");
    } finally {
      this.beating = false;
    }
  }

  /** The lease was lost: stop every run, then register a new incarnation and go on claiming. */
  private reincarnate(why: string): Promise<void> {
    this.reincarnating ??= (async () => {
      this.log("warn", { incarnation: this.inc }, `lease lost: ${why}; stopping runs and re-registering`);
      for (const id of this.runs.keys()) this.abortRun(id, "lease-lost");
      await Promise.allSettled([...this.runs.values()].map((e) => e.done));
      this.inc = randomUUID();
      while (this.state === "running") {
        try {
          await this.store.register(this.inc, this.executorId, this.tuning.leaseMs, hostname(), process.pid, this.served);
          this.lastBeat = Date.now();
          break;
        } catch (err) {
          this.log("warn", { err: describeError(err) }, "re-registering failed; retrying");
          await sleep(this.tuning.heartbeatMs);
        }
      }
    })().finally(() => {
      this.reincarnating = null;
      this.wake();
    });
    return this.reincarnating;
  }

  // --- workflows of names this executor does not run -------------------------------------------

  /** At start-up: one warning per name of the PENDING unowned workflows this executor does not run. */
  private async warnPendingUnknown(): Promise<void> {
    try {
      for (const p of await this.store.pendingOtherNames(this.names)) {
        if (!this.seenUnknown.has(p.name)) await this.warnUnknown(p.name, p.count, p.example);
      }
    } catch (err) {
      this.log("debug", { err: describeError(err) }, "could not look for pending workflows of other names");
    }
  }

  /**
   * A PENDING workflow named `name` that this executor does not run: a warning, once per name and
   * process, when no live executor has registered the name (else a debug line: another runs it).
   */
  private async warnUnknown(name: string, count: number | null, example: string | null): Promise<void> {
    if (this.seenUnknown.has(name)) return;
    this.seenUnknown.add(name);
    let live = false;
    try {
      live = (await this.store.registeredWorkflows()).some((w) => w.name === name && w.live);
    } catch {
      // Unknown: warn.
    }
    const obj = { workflow: name, ...(count !== null ? { pending: count } : {}), ...(example !== null ? { example } : {}), registered: this.names };
    if (live) return this.log("debug", obj, `workflow ${JSON.stringify(name)} is not registered here; another live executor has it`);
    this.log(
      "warn",
      obj,
      `a PENDING workflow is named ${JSON.stringify(name)}, which this executor does not run (it has: ${this.names.join(", ")}) ` +
        `and no live executor has registered: it waits until an executor with that workflow starts (or cancel it: txfn workflow cancel <id>)`,
    );
  }

  private log(level: "info" | "warn" | "error" | "debug", obj: object, msg: string): void {
    this.tuning.logger?.[level]({ executorId: this.executorId, ...obj }, msg);
  }
}
