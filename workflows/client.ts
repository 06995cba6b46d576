/**
 * The workflow client: start (enqueue), inspect, cancel and resume workflows without running
 * them. Used by the CLI (`txfn workflow …`), tests, and any app that hands work to executors.
 * A workflow started here is unowned: an executor that knows its name claims it (woken by a
 * NOTIFY on txfn_workflow_ready, or by its poll).
 */
import { randomUUID } from "node:crypto";
import { isWorkflow } from "./define.ts";
import { WorkflowFailedError, WorkflowNotFoundError, WorkflowNotRegisteredError, WorkflowOptionsError, WorkflowTimeoutError } from "./errors.ts";
import { rejectUnknownKeys, validateName, validateStartOptions } from "./options.ts";
import { WorkflowStore, decodeOutput, toInfo, toStepInfo, type WorkflowRow } from "./store.ts";
import type { StartOptions, StepInfo, WorkflowDefinition, WorkflowHandle, WorkflowInfo, WorkflowStatus } from "./types.ts";

const STATUSES: WorkflowStatus[] = ["PENDING", "SUCCESS", "ERROR", "CANCELLED", "COMPENSATED"];

export interface WorkflowClientOptions {
  databaseUrl: string;
  /** Connections. Default 4. */
  poolSize?: number;
  /** Default "txfn-workflow-client". */
  applicationName?: string;
}

/** Options of `WorkflowClient.start`. */
export interface ClientStartOptions extends StartOptions {
  /**
   * Queue the workflow although no executor has registered its name (a worker that is not up yet).
   * Default false: such a start throws WorkflowNotRegisteredError, so a mistyped name fails at
   * once instead of staying PENDING for ever.
   */
  allowUnregistered?: boolean;
}

export interface ListOptions {
  status?: WorkflowStatus;
  name?: string;
  since?: Date;
  /** Default 100. */
  limit?: number;
}

/**
 * Polls a workflow until it is terminal (20 ms doubling to 500 ms between reads), waking early
 * when `nudge` resolves (an executor's local run ended). @throws WorkflowNotFoundError,
 * WorkflowTimeoutError, or the signal's reason.
 */
export async function waitTerminal(
  store: WorkflowStore,
  id: string,
  options: { signal?: AbortSignal; timeoutMs?: number; nudge?: () => Promise<unknown> | undefined } = {},
): Promise<WorkflowRow> {
  const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
  for (let delay = 20; ; delay = Math.min(500, delay * 2)) {
    options.signal?.throwIfAborted();
    const row = await store.get(id);
    if (!row) throw new WorkflowNotFoundError(`no workflow ${JSON.stringify(id)}`);
    if (row.status !== "PENDING") return row;
    const left = deadline - Date.now();
    if (left <= 0) throw new WorkflowTimeoutError(`workflow ${id} is still PENDING after ${options.timeoutMs} ms`);
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, Math.min(delay, left));
      function done() {
        clearTimeout(t);
        options.signal?.removeEventListener("abort", done);
        resolve();
      }
      options.signal?.addEventListener("abort", done, { once: true });
      options.nudge?.()?.then(done, done);
    });
  }
}

/** A handle over a store; `nudge` lets an executor wake the wait when its local run ends. */
export function makeHandle<O>(store: WorkflowStore, id: string, nudge?: () => Promise<unknown> | undefined): WorkflowHandle<O> {
  return Object.freeze({
    workflowId: id,
    async info() {
      const row = await store.get(id);
      if (!row) throw new WorkflowNotFoundError(`no workflow ${JSON.stringify(id)}`);
      return toInfo(row);
    },
    async result(options: { timeoutMs?: number } = {}) {
      rejectUnknownKeys("handle.result", options, ["timeoutMs"]);
      const row = await waitTerminal(store, id, { ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}), ...(nudge ? { nudge } : {}) });
      if (row.status === "SUCCESS") return decodeOutput(row.output) as O;
      throw new WorkflowFailedError(id, row.status, row.error, row.park_reason);
    },
    async cancel() {
      return toInfo(await store.cancel(id, "cancelled through a workflow handle"));
    },
  });
}

export class WorkflowClient {
  readonly store: WorkflowStore;

  constructor(options: WorkflowClientOptions) {
    rejectUnknownKeys("WorkflowClient", options, ["databaseUrl", "poolSize", "applicationName"]);
    if (typeof options.databaseUrl !== "string" || options.databaseUrl === "") throw new WorkflowOptionsError("WorkflowClient: databaseUrl is required");
    this.store = new WorkflowStore({
      url: options.databaseUrl,
      poolSize: options.poolSize ?? 4,
      maxRetries: 8,
      applicationName: options.applicationName ?? "txfn-workflow-client",
    });
  }

  /**
   * Starts (enqueues) a workflow by definition or name; an executor that has it runs it. It is
   * pinned to the bundle version active now. An existing id with the same name and input returns
   * its handle (whatever its status).
   *
   * The name must be registered by an executor (one that is live, or that stopped within the last
   * hour: a worker being restarted), unless `allowUnregistered` (queue it for a worker not up yet).
   * @throws WorkflowNotRegisteredError for a name no executor has registered (it lists the known
   *   ones); WorkflowConflictError for an existing id with another name or input.
   */
  async start<I, O>(workflow: WorkflowDefinition<I, O> | string, input: I, options: ClientStartOptions = {}): Promise<WorkflowHandle<O>> {
    const name = isWorkflow(workflow) ? workflow.name : validateName("workflow name", workflow);
    rejectUnknownKeys("WorkflowClient.start", options, ["id", "allowUnregistered"]);
    const { allowUnregistered, ...startOptions } = options;
    if (allowUnregistered !== undefined && typeof allowUnregistered !== "boolean") {
      throw new WorkflowOptionsError(`WorkflowClient.start: allowUnregistered must be a boolean, got ${JSON.stringify(allowUnregistered)}`);
    }
    const { id } = validateStartOptions("WorkflowClient.start", startOptions);
    if (allowUnregistered !== true) await this.checkRegistered(name, id);
    const wid = id ?? randomUUID();
    await this.store.insertWorkflow({ id: wid, name, input, owner: null, executorId: null, codeHash: null });
    return makeHandle<O>(this.store, wid);
  }

  /**
   * The names executors have registered (live, or stopped within the last hour), and for each
   * whether a live executor has it now.
   */
  async registeredWorkflows(): Promise<{ name: string; live: boolean }[]> {
    return this.store.registeredWorkflows();
  }

  /** Throws WorkflowNotRegisteredError unless an executor registered `name` or workflow `id` exists already (a repeated start returns it). */
  private async checkRegistered(name: string, id: string | null): Promise<void> {
    const known = await this.store.registeredWorkflows();
    if (known.some((w) => w.name === name)) return;
    if (id !== null && (await this.store.get(id))) return; // insertWorkflow returns it, or a conflict
    throw new WorkflowNotRegisteredError(name, known.map((w) => w.name));
  }

  /** A handle on an existing workflow id (not checked until used). */
  handle<O = unknown>(id: string): WorkflowHandle<O> {
    return makeHandle<O>(this.store, id);
  }

  /** @throws WorkflowNotFoundError */
  async get(id: string): Promise<WorkflowInfo> {
    const row = await this.store.get(id);
    if (!row) throw new WorkflowNotFoundError(`no workflow ${JSON.stringify(id)}`);
    return toInfo(row);
  }

  /** Newest first. */
  async list(options: ListOptions = {}): Promise<WorkflowInfo[]> {
    rejectUnknownKeys("WorkflowClient.list", options, ["status", "name", "since", "limit"]);
    if (options.status !== undefined && !STATUSES.includes(options.status)) {
      throw new WorkflowOptionsError(`status must be one of ${STATUSES.join(", ")}, got ${JSON.stringify(options.status)}`);
    }
    const limit = options.limit ?? 100;
    if (!Number.isInteger(limit) || limit <= 0) throw new WorkflowOptionsError(`limit must be a positive integer, got ${limit}`);
    const rows = await this.store.list({ ...options, limit });
    return rows.map(toInfo);
  }

  /** The recorded steps, in order. @throws WorkflowNotFoundError */
  async steps(id: string): Promise<StepInfo[]> {
    if (!(await this.store.get(id))) throw new WorkflowNotFoundError(`no workflow ${JSON.stringify(id)}`);
    return (await this.store.history(id)).map(toStepInfo);
  }

  /** Cancels a PENDING workflow (and its pending children) at its next step boundary; no compensation runs. */
  async cancel(id: string): Promise<WorkflowInfo> {
    return toInfo(await this.store.cancel(id, "cancelled by request"));
  }

  /**
   * Continues a CANCELLED workflow, or one the engine parked as ERROR, from its last recorded
   * step. `newCode`: continue with the code the next executor has, even if its hash differs from
   * the recorded one (the determinism check still applies).
   */
  async resume(id: string, options: { newCode?: boolean } = {}): Promise<WorkflowInfo> {
    rejectUnknownKeys("WorkflowClient.resume", options, ["newCode"]);
    return toInfo(await this.store.resume(id, options.newCode === true));
  }

  async close(): Promise<void> {
    await this.store.close();
  }
}
