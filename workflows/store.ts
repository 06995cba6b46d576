/**
 * Every SQL statement of the workflow engine (tables: migrations/system/*_txfn-workflows.sql;
 * protocol: workflows/README.md). Two pools: `book` (READ COMMITTED: claims rely on its
 * re-check of locked rows) for bookkeeping, `steps` for transaction steps, whose connections run
 * at the isolation each function declares (set per connection only when it changes, as the
 * Node client does, so a step stays one statement).
 */
import pg from "pg";
import {
  ClientOptionsError,
  DatabaseError,
  FunctionNotFoundError,
  KeyReusedError,
  RetriesExhaustedError,
  TXF,
  TxfnError,
  isConnectionError,
  isTransientError,
} from "../client/index.ts";
import type { IsolationLevel } from "../types.ts";
import { WorkflowConflictError, WorkflowNotFoundError, WorkflowStateError } from "./errors.ts";
import type { ParkReason, RecordedWorkflowError, StepInfo, StepKind, WorkflowInfo, WorkflowStatus } from "./types.ts";

/** A row of txfn.workflows as the engine reads it. */
export interface WorkflowRow {
  id: string;
  name: string;
  input: unknown;
  status: WorkflowStatus;
  output: unknown;
  error: RecordedWorkflowError | null;
  park_reason: ParkReason | null;
  parent_id: string | null;
  parent_step: number | null;
  bundle_version: number | null;
  code_hash: string | null;
  executor_id: string | null;
  owner: string | null;
  attempts: number;
  recovery_attempts: number;
  progress_steps: number;
  created_at: Date;
  updated_at: Date;
  ended_at: Date | null;
}

/** A row of txfn.workflow_steps. */
export interface StepRow {
  step: number;
  kind: StepKind;
  name: string;
  status: "ok" | "error";
  output: unknown;
  error: RecordedWorkflowError | null;
  invocation_id: string | null;
  attempts: number | null;
  compensates: number | null;
  started_at: Date | null;
  ended_at: Date;
}

/** The envelope txfn.invoke returns (runtime-sql/README.md). */
export interface Envelope {
  output?: unknown;
  error?: RecordedWorkflowError;
  invocationId: string;
  version: number;
  replayed: boolean;
}

/** A step outcome to record (also the shape of a deferred record). */
export interface StepRecord {
  workflowId: string;
  step: number;
  kind: StepKind;
  name: string;
  ok: boolean;
  /** JSON text of the output (null = undefined) or of the error. */
  json: string | null;
  attempts: number | null;
  compensates: number | null;
  startedAt: Date;
}

export interface StoreOptions {
  url: string;
  poolSize: number;
  maxRetries: number;
  applicationName: string;
}

// Outputs are read as text: node-pg parses jsonb, and would turn a JSON null and an SQL NULL
// (undefined) into the same null. decodeOutput() tells them apart.
const WORKFLOW_COLUMNS =
  "id, name, input, status, output::text AS output, error, park_reason, parent_id, parent_step, bundle_version, code_hash, executor_id, " +
  "owner::text AS owner, attempts, recovery_attempts, progress_steps, created_at, updated_at, ended_at";
/** WORKFLOW_COLUMNS qualified by a table alias (for statements that join). */
function prefixed(alias: string): string {
  return WORKFLOW_COLUMNS.replace(/(^|, )(\w+)/g, `$1${alias}.$2`);
}
const STEP_COLUMNS = "step, kind, name, status, output::text AS output, error, invocation_id::text AS invocation_id, attempts, compensates, started_at, ended_at";

/** Owned by `$owner` and still PENDING: the fence every write of a running workflow checks. */
const FENCE = "SELECT 1 FROM txfn.workflows WHERE id = $1 AND owner = $2::uuid AND status = 'PENDING'";

/**
 * Outcomes of external steps not yet written (see "Deferred step records" in workflows/README.md):
 * a JSON array of StepRecord-like objects, inserted by the next statement of the run in the same
 * transaction, behind the same fence. `output` travels as JSON text (null = undefined).
 * $1 workflow id; the array is the parameter named in each statement.
 */
function deferredInsert(param: string, fenceCte: string): string {
  return `INSERT INTO txfn.workflow_steps (workflow_id, step, kind, name, status, output, error, attempts, compensates, started_at)
  SELECT $1, (x->>'step')::int, x->>'kind', x->>'name', x->>'status', (x->>'output')::jsonb, NULLIF(x->'error', 'null'::jsonb),
         (x->>'attempts')::int, (x->>'compensates')::int, (x->>'startedAt')::timestamptz
  FROM jsonb_array_elements(${param}::jsonb) x WHERE EXISTS (SELECT 1 FROM ${fenceCte})
  ON CONFLICT (workflow_id, step) DO NOTHING`;
}

/**
 * A transaction step in ONE statement, hence one transaction: the fence, the deferred records,
 * txfn.invoke (key `<workflowId>:<step>`) and the step's row. The CASE keeps the invoke from
 * running when the fence fails (cancelled, or claimed by another executor); the result is then NULL.
 * $1 workflow id, $2 owner, $3 fn, $4 input, $5 key, $6 options, $7 step, $8 compensates, $9 started_at, $10 deferred.
 */
const TRANSACTION_STEP_SQL = `
WITH f AS (${FENCE}),
d AS (${deferredInsert("$10", "f")}),
r AS (SELECT CASE WHEN EXISTS (SELECT 1 FROM f) THEN txfn.invoke($3, $4::jsonb, $5, $6::jsonb) END AS env),
s AS (
  INSERT INTO txfn.workflow_steps (workflow_id, step, kind, name, status, output, error, invocation_id, compensates, started_at)
  SELECT $1, $7, 'transaction', $3, CASE WHEN r.env ? 'error' THEN 'error' ELSE 'ok' END, r.env->'output', r.env->'error',
         (r.env->>'invocationId')::bigint, $8, $9
  FROM r WHERE r.env IS NOT NULL
  ON CONFLICT (workflow_id, step) DO NOTHING)
SELECT r.env FROM r`;

/** A step's outcome (sleep/now/random, or external steps flushed), first writer wins, behind the fence, with the deferred records. */
const RECORD_STEP_SQL = `
WITH f AS (${FENCE}),
d AS (${deferredInsert("$12", "f")})
INSERT INTO txfn.workflow_steps (workflow_id, step, kind, name, status, output, error, attempts, compensates, started_at)
SELECT $1, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9, $10, $11
WHERE $3::int IS NOT NULL AND EXISTS (SELECT 1 FROM f)
ON CONFLICT (workflow_id, step) DO NOTHING
RETURNING ${STEP_COLUMNS}`;

/** Only the deferred records; says whether the fence held. $1 id, $2 owner, $3 deferred. */
const FLUSH_SQL = `
WITH f AS (${FENCE}),
d AS (${deferredInsert("$3", "f")})
SELECT EXISTS (SELECT 1 FROM f) AS held`;

/** Ends a workflow (with the deferred records) if this owner still holds it. $1 id, $2 owner, $7 deferred. */
const FINISH_SQL = `
WITH f AS (${FENCE}),
d AS (${deferredInsert("$7", "f")})
UPDATE txfn.workflows SET status = $3, output = $4::jsonb, error = $5::jsonb, park_reason = $6, ended_at = clock_timestamp(), updated_at = clock_timestamp()
WHERE id = $1 AND owner = $2::uuid AND status = 'PENDING' RETURNING 1`;

/**
 * Claims up to $5 workflows for incarnation $1: unowned ones, those of expired incarnations
 * (marking incarnations whose lease ran out as expired in the same statement), and its own that
 * it is not running ($4: a claim whose reply was lost). FOR UPDATE SKIP LOCKED makes concurrent
 * claimers take disjoint rows; under READ COMMITTED a row claimed and committed meanwhile is
 * re-checked on its new version (owner now a live incarnation) and skipped.
 */
const CLAIM_SQL = `
WITH me AS (
  SELECT 1 FROM txfn.workflow_executors WHERE incarnation = $1::uuid AND NOT expired AND lease_expires_at > clock_timestamp()
), dead AS (
  UPDATE txfn.workflow_executors SET expired = true, expired_at = clock_timestamp()
  WHERE NOT expired AND lease_expires_at < clock_timestamp() RETURNING incarnation
), c AS (
  SELECT w.id FROM txfn.workflows w
  WHERE w.status = 'PENDING' AND w.name = ANY($3::text[]) AND EXISTS (SELECT 1 FROM me)
    AND (w.owner IS NULL
      OR w.owner IN (SELECT incarnation FROM dead)
      OR w.owner IN (SELECT incarnation FROM txfn.workflow_executors WHERE expired)
      OR (w.owner = $1::uuid AND w.id <> ALL($4::text[])))
  ORDER BY w.created_at
  LIMIT $5
  FOR UPDATE OF w SKIP LOCKED
), n AS (
  SELECT c.id, (SELECT count(*) FROM txfn.workflow_steps s WHERE s.workflow_id = c.id)::int AS steps FROM c
)
UPDATE txfn.workflows w SET
  owner = $1::uuid, executor_id = $2, attempts = w.attempts + 1, updated_at = clock_timestamp(),
  recovery_attempts = CASE WHEN n.steps > w.progress_steps OR w.attempts = 0 THEN 1 ELSE w.recovery_attempts + 1 END,
  progress_steps = n.steps,
  code_hash = COALESCE(w.code_hash, (SELECT h.hash FROM unnest($3::text[], $6::text[]) AS h(name, hash) WHERE h.name = w.name))
FROM n WHERE w.id = n.id
RETURNING ${prefixed("w")}, n.steps`;

/** Full-jitter backoff between retries of a transient error, ms. */
function retryDelay(attempt: number): number {
  return Math.random() * Math.min(1000, 5 * 2 ** attempt);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Maps SQL errors of txfn.invoke to the client's error classes. */
function translate(err: unknown): Error {
  if (err instanceof TxfnError) return err;
  const e = err as Error & { code?: string; hint?: string };
  if (e.code === TXF.FUNCTION_NOT_FOUND || e.code === TXF.NO_BUNDLE) return new FunctionNotFoundError(e.message, e.code, e.hint);
  if (e.code === TXF.KEY_REUSED) return new KeyReusedError(e.message, e.code, e.hint);
  if (e.code === TXF.BAD_OPTIONS) return new ClientOptionsError(e.message, e.code, e.hint);
  if (e.code === "42P01" || e.code === "3F000") {
    return new DatabaseError(`${e.message} (txfn's workflow tables are missing: start an executor or run txfn deploy first)`, e.code);
  }
  if (typeof e.code === "string" && /^[0-9A-Z]{5}$/.test(e.code)) return new DatabaseError(e.message, e.code, e.hint);
  return e instanceof Error ? e : new Error(String(err));
}

/** An output column read as text → the value (SQL NULL → undefined). */
export function decodeOutput(text: unknown): unknown {
  return text === null || text === undefined ? undefined : JSON.parse(text as string);
}

/** The JSON array parameter of deferred records. */
export function deferredJson(records: readonly StepRecord[]): string {
  return JSON.stringify(
    records.map((r) => ({
      step: r.step, kind: r.kind, name: r.name, status: r.ok ? "ok" : "error", output: r.ok ? r.json : null,
      error: r.ok || r.json === null ? null : JSON.parse(r.json), attempts: r.attempts, compensates: r.compensates, startedAt: r.startedAt.toISOString(),
    })),
  );
}

/** JSON text for a jsonb parameter (undefined → null = SQL NULL). */
export function jsonText(value: unknown): string | null {
  if (value === undefined) return null;
  const text = JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? v.toString() : v));
  return text === undefined ? null : text;
}

export class WorkflowStore {
  readonly book: pg.Pool;
  readonly steps: pg.Pool;
  private readonly maxRetries: number;
  private readonly sessionIsolation = new WeakMap<pg.PoolClient, string>();
  /** Declared isolation per bundle version and function. */
  private readonly isolations = new Map<number, Promise<Map<string, IsolationLevel>>>();

  constructor(options: StoreOptions) {
    this.maxRetries = options.maxRetries;
    const common = { connectionString: options.url, application_name: options.applicationName };
    this.book = new pg.Pool({ ...common, max: options.poolSize, options: "-c default_transaction_isolation=read\\ committed" });
    this.steps = new pg.Pool({ ...common, max: options.poolSize });
    // An idle connection dying (server restart) must not crash the process.
    this.book.on("error", () => {});
    this.steps.on("error", () => {});
  }

  async close(): Promise<void> {
    await Promise.all([this.book.end(), this.steps.end()]);
  }

  /** Runs `fn` on a bookkeeping connection, retrying transient errors (the statements are idempotent). */
  async withRetry<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      let conn: pg.PoolClient | undefined;
      try {
        conn = await this.book.connect();
        const out = await fn(conn);
        conn.release();
        return out;
      } catch (err) {
        conn?.release(isConnectionError(err) ? (err as Error) : undefined);
        if (!isTransientError(err)) throw translate(err);
        if (attempt > this.maxRetries) throw new RetriesExhaustedError(`workflow store: still failing after ${attempt} attempts: ${(err as Error).message}`, attempt, err);
        await sleep(retryDelay(attempt));
      }
    }
  }

  private async q<R extends pg.QueryResultRow>(name: string | undefined, text: string, values: unknown[]): Promise<R[]> {
    return this.withRetry(async (c) => (await c.query<R>(name ? { name, text, values } : { text, values })).rows);
  }

  // --- executors -------------------------------------------------------------------------------

  /** Registers an incarnation and expires the older ones of the same executor id (so their workflows are claimable now). */
  async register(incarnation: string, executorId: string, leaseMs: number, hostname: string, pid: number, workflows: Record<string, string>): Promise<void> {
    await this.withRetry(async (c) => {
      await c.query("BEGIN");
      try {
        await c.query(
          "UPDATE txfn.workflow_executors SET expired = true, expired_at = clock_timestamp() WHERE executor_id = $1 AND NOT expired AND incarnation <> $2::uuid",
          [executorId, incarnation],
        );
        await c.query(
          "INSERT INTO txfn.workflow_executors (incarnation, executor_id, hostname, pid, lease_expires_at, workflows) " +
            "VALUES ($1::uuid, $2, $3, $4, clock_timestamp() + $5 * interval '1 millisecond', $6::jsonb) ON CONFLICT (incarnation) DO NOTHING",
          [incarnation, executorId, hostname, pid, leaseMs, JSON.stringify(workflows)],
        );
        await c.query("COMMIT");
      } catch (err) {
        await c.query("ROLLBACK").catch(() => {});
        throw err;
      }
    });
  }

  /** Ends an incarnation (clean stop): its workflows become claimable at once. */
  async expire(incarnation: string): Promise<void> {
    await this.q(undefined, "UPDATE txfn.workflow_executors SET expired = true, expired_at = clock_timestamp() WHERE incarnation = $1::uuid AND NOT expired", [
      incarnation,
    ]);
  }

  /**
   * The workflow names executors have registered: those of live incarnations (`live`), and of
   * incarnations expired within the last hour (a worker being restarted), sorted by name.
   */
  async registeredWorkflows(): Promise<{ name: string; live: boolean }[]> {
    return this.q(
      undefined,
      "SELECT k.name, bool_or(NOT e.expired AND e.lease_expires_at > clock_timestamp()) AS live " +
        "FROM txfn.workflow_executors e, jsonb_object_keys(e.workflows) AS k(name) " +
        "WHERE NOT e.expired OR e.expired_at > clock_timestamp() - interval '1 hour' GROUP BY k.name ORDER BY k.name",
      [],
    );
  }

  /** PENDING unowned workflows whose name is not in `names`: per name, how many and the oldest id. */
  async pendingOtherNames(names: string[]): Promise<{ name: string; count: number; example: string }[]> {
    return this.q(
      undefined,
      "SELECT name, count(*)::int AS count, (array_agg(id ORDER BY created_at))[1] AS example FROM txfn.workflows " +
        "WHERE status = 'PENDING' AND owner IS NULL AND name <> ALL($1::text[]) GROUP BY name ORDER BY name",
      [names],
    );
  }

  /** Deletes executor rows expired for over an hour that own no pending workflow. */
  async collectExecutors(): Promise<void> {
    await this.q(
      undefined,
      "DELETE FROM txfn.workflow_executors e WHERE expired AND expired_at < clock_timestamp() - interval '1 hour' " +
        "AND NOT EXISTS (SELECT 1 FROM txfn.workflows w WHERE w.status = 'PENDING' AND w.owner = e.incarnation)",
      [],
    );
  }

  // --- workflows -------------------------------------------------------------------------------

  /**
   * Inserts a PENDING workflow (owned by `owner`, or unowned = any executor may claim it, with a
   * NOTIFY). An existing id with the same name and input is returned as is; with another name or
   * input it is a WorkflowConflictError.
   * @returns inserted: whether this call created it.
   */
  async insertWorkflow(w: {
    id: string;
    name: string;
    input: unknown;
    owner: string | null;
    executorId: string | null;
    codeHash: string | null;
    bundleVersion?: number | null;
    parentId?: string | null;
    parentStep?: number | null;
  }): Promise<{ inserted: boolean; row: WorkflowRow }> {
    const inputJson = jsonText(w.input) ?? "null";
    const rows = await this.q<WorkflowRow>(
      "txfn_wf_insert",
      `WITH ins AS (
         INSERT INTO txfn.workflows (id, name, input, status, owner, executor_id, code_hash, bundle_version, parent_id, parent_step, attempts, recovery_attempts)
         VALUES ($1, $2, $3::jsonb, 'PENDING', $4::uuid, $5, $6, CASE WHEN $10 THEN $7 ELSE (SELECT version FROM txfn.bundles WHERE active) END,
                 $8, $9, CASE WHEN $4::uuid IS NULL THEN 0 ELSE 1 END, CASE WHEN $4::uuid IS NULL THEN 0 ELSE 1 END)
         ON CONFLICT (id) DO NOTHING
         RETURNING ${WORKFLOW_COLUMNS})
       SELECT ins.*, CASE WHEN ins.owner IS NULL THEN pg_notify('txfn_workflow_ready', ins.name) END AS notified FROM ins`,
      [
        w.id, w.name, inputJson, w.owner, w.executorId, w.codeHash, w.bundleVersion ?? null, w.parentId ?? null, w.parentStep ?? null,
        w.bundleVersion !== undefined,
      ],
    );
    if (rows[0]) return { inserted: true, row: rows[0] };
    const [prior] = await this.q<WorkflowRow & { same_input: boolean }>(
      "txfn_wf_prior",
      `SELECT ${WORKFLOW_COLUMNS}, input = $2::jsonb AS same_input FROM txfn.workflows WHERE id = $1`,
      [w.id, inputJson],
    );
    if (!prior) throw new WorkflowConflictError(`workflow ${w.id}: the id was taken and released concurrently; start it again`);
    if (prior.name !== w.name) {
      throw new WorkflowConflictError(`workflow id ${JSON.stringify(w.id)} is already used by a workflow ${JSON.stringify(prior.name)}, not ${JSON.stringify(w.name)}`);
    }
    if (!prior.same_input) {
      throw new WorkflowConflictError(
        `workflow id ${JSON.stringify(w.id)} (${w.name}) was started with another input: ${JSON.stringify(prior.input)}; use another id for another input`,
      );
    }
    delete (prior as Partial<typeof prior>).same_input;
    return { inserted: false, row: prior };
  }

  /** See CLAIM_SQL. `hashes[i]` is this executor's code hash of workflow `names[i]`. */
  async claim(incarnation: string, executorId: string, names: string[], hashes: string[], running: string[], limit: number): Promise<(WorkflowRow & { steps: number })[]> {
    if (names.length === 0) return [];
    return this.q("txfn_wf_claim", CLAIM_SQL, [incarnation, executorId, names, running, limit, hashes]);
  }

  /** Ends a workflow this owner runs (writing `deferred` first); false when it was no longer PENDING/owned (cancelled, taken over). */
  async finish(
    id: string,
    owner: string,
    status: Exclude<WorkflowStatus, "PENDING">,
    outputJson: string | null,
    errorJson: string | null,
    park: ParkReason | null,
    deferred: readonly StepRecord[] = [],
  ): Promise<boolean> {
    const rows = await this.q("txfn_wf_finish", FINISH_SQL, [id, owner, status, outputJson, errorJson, park, deferredJson(deferred)]);
    return rows.length === 1;
  }

  async history(id: string): Promise<StepRow[]> {
    return this.q("txfn_wf_history", `SELECT ${STEP_COLUMNS} FROM txfn.workflow_steps WHERE workflow_id = $1 ORDER BY step`, [id]);
  }

  async step(id: string, step: number): Promise<StepRow | null> {
    const rows = await this.q<StepRow>("txfn_wf_step", `SELECT ${STEP_COLUMNS} FROM txfn.workflow_steps WHERE workflow_id = $1 AND step = $2`, [id, step]);
    return rows[0] ?? null;
  }

  /**
   * Records a step's outcome unless one is recorded (first writer wins), with the deferred
   * records, only while `owner` holds the workflow. `r` null: only the deferred ones.
   * @returns the row recorded now for `r` (ours or an earlier one), or null when the fence failed.
   */
  async recordStep(owner: string, workflowId: string, r: StepRecord | null, deferred: readonly StepRecord[] = []): Promise<StepRow | null> {
    const rows = await this.q<StepRow>("txfn_wf_record", RECORD_STEP_SQL, [
      workflowId, owner, r?.step ?? null, r?.kind ?? null, r?.name ?? null, r ? (r.ok ? "ok" : "error") : null, r?.ok ? r.json : null,
      r && !r.ok ? r.json : null, r?.attempts ?? null, r?.compensates ?? null, r?.startedAt ?? null, deferredJson(deferred),
    ]);
    if (r === null) return null;
    return rows[0] ?? (await this.step(workflowId, r.step));
  }

  /** Writes deferred records on their own. @returns false when the fence failed. */
  async flush(owner: string, workflowId: string, deferred: readonly StepRecord[]): Promise<boolean> {
    const rows = await this.q<{ held: boolean }>("txfn_wf_flush", FLUSH_SQL, [workflowId, owner, deferredJson(deferred)]);
    return rows[0]?.held === true;
  }

  /**
   * Starts a child workflow and records the parent's `child` step in one transaction (both behind
   * the parent's fence). The child is pinned to the parent's bundle version and owned by the
   * parent's executor. @returns null when the fence failed.
   */
  async startChild(
    owner: string,
    parent: { id: string; step: number; compensates: number | null; startedAt: Date; bundleVersion: number | null },
    child: { id: string; name: string; input: unknown; executorId: string; codeHash: string },
  ): Promise<{ inserted: boolean } | null> {
    const inputJson = jsonText(child.input) ?? "null";
    const rows = await this.q<{ inserted: number; recorded: number }>(
      "txfn_wf_child",
      `WITH f AS (${FENCE}),
       c AS (
         INSERT INTO txfn.workflows (id, name, input, status, owner, executor_id, code_hash, bundle_version, parent_id, parent_step, attempts, recovery_attempts)
         SELECT $3, $4, $5::jsonb, 'PENDING', $2::uuid, $6, $7, $8, $1, $9, 1, 1 WHERE EXISTS (SELECT 1 FROM f)
         ON CONFLICT (id) DO NOTHING RETURNING id),
       s AS (
         INSERT INTO txfn.workflow_steps (workflow_id, step, kind, name, status, output, compensates, started_at)
         SELECT $1, $9, 'child', $4, 'ok', jsonb_build_object('workflowId', $3::text), $10, $11 WHERE EXISTS (SELECT 1 FROM f)
         ON CONFLICT (workflow_id, step) DO NOTHING RETURNING step)
       SELECT (SELECT count(*) FROM c)::int AS inserted, (SELECT count(*) FROM s)::int AS recorded, EXISTS (SELECT 1 FROM f) AS fenced_in`,
      [parent.id, owner, child.id, child.name, inputJson, child.executorId, child.codeHash, parent.bundleVersion, parent.step, parent.compensates, parent.startedAt],
    );
    const r = rows[0] as { inserted: number; recorded: number; fenced_in: boolean } | undefined;
    if (!r || !r.fenced_in) return null;
    if (r.inserted === 0) {
      const existing = await this.get(child.id);
      if (existing && (existing.name !== child.name || JSON.stringify(existing.input) !== JSON.stringify(JSON.parse(inputJson)))) {
        throw new WorkflowConflictError(`child workflow id ${JSON.stringify(child.id)} is already used by another workflow or input`);
      }
    }
    return { inserted: r.inserted === 1 };
  }

  /**
   * A transaction step (TRANSACTION_STEP_SQL) on a connection at the function's isolation,
   * retrying transient errors with the same key. @returns the envelope, or null when the fence failed.
   */
  async transactionStep(args: {
    owner: string;
    workflowId: string;
    step: number;
    fn: string;
    input: unknown;
    version: number | null;
    compensates: number | null;
    startedAt: Date;
    deferred?: readonly StepRecord[];
  }): Promise<Envelope | null> {
    const key = `${args.workflowId}:${args.step}`;
    const options = JSON.stringify({ workflowId: args.workflowId, workflowStep: args.step, ...(args.version !== null ? { version: args.version } : {}) });
    const values = [
      args.workflowId, args.owner, args.fn, jsonText(args.input) ?? "null", key, options, args.step, args.compensates, args.startedAt,
      deferredJson(args.deferred ?? []),
    ];
    let refreshed = false;
    for (let attempt = 1; ; attempt++) {
      let conn: pg.PoolClient | undefined;
      try {
        const isolation = await this.isolationOf(args.version, args.fn);
        conn = await this.steps.connect();
        if (this.sessionIsolation.get(conn) !== isolation) {
          await conn.query(`SET default_transaction_isolation = ${pg.escapeLiteral(isolation)}`);
          this.sessionIsolation.set(conn, isolation);
        }
        const res = await conn.query<{ env: Envelope | null }>({ name: "txfn_wf_transaction", text: TRANSACTION_STEP_SQL, values });
        conn.release();
        return res.rows[0]?.env ?? null;
      } catch (err) {
        conn?.release(isConnectionError(err) ? (err as Error) : undefined);
        const code = (err as { code?: string }).code;
        if (code === TXF.ISOLATION && !refreshed) {
          refreshed = true;
          this.isolations.delete(args.version ?? -1);
          continue;
        }
        if (!isTransientError(err)) throw translate(err);
        if (attempt > this.maxRetries) throw new RetriesExhaustedError(`${args.fn} (${key}): still failing after ${attempt} attempts: ${(err as Error).message}`, attempt, err);
        await sleep(retryDelay(attempt));
      }
    }
  }

  /** The isolation `fn` declares in bundle `version` (the active one when null); serializable when unknown. */
  private async isolationOf(version: number | null, fn: string): Promise<IsolationLevel> {
    const k = version ?? -1;
    let m = this.isolations.get(k);
    if (!m) {
      m = this.q<{ name: string; isolation: IsolationLevel }>(
        undefined,
        "SELECT name, options->>'isolation' AS isolation FROM txfn.functions WHERE " + (version === null ? "active" : "version = $1"),
        version === null ? [] : [version],
      ).then((rows) => new Map(rows.map((r) => [r.name, r.isolation])));
      m.catch(() => this.isolations.delete(k));
      this.isolations.set(k, m);
    }
    return (await m).get(fn) ?? "serializable";
  }

  // --- inspection and control (clients, CLI) ---------------------------------------------------

  async get(id: string): Promise<WorkflowRow | null> {
    const rows = await this.q<WorkflowRow>("txfn_wf_get", `SELECT ${WORKFLOW_COLUMNS} FROM txfn.workflows WHERE id = $1`, [id]);
    return rows[0] ?? null;
  }

  async list(filter: { status?: WorkflowStatus; name?: string; since?: Date; limit: number }): Promise<WorkflowRow[]> {
    return this.q<WorkflowRow>(
      undefined,
      `SELECT ${WORKFLOW_COLUMNS} FROM txfn.workflows WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR name = $2) ` +
        "AND ($3::timestamptz IS NULL OR created_at >= $3) ORDER BY created_at DESC, id LIMIT $4",
      [filter.status ?? null, filter.name ?? null, filter.since ?? null, filter.limit],
    );
  }

  /** Cancels a PENDING workflow and its PENDING descendants. @throws WorkflowNotFoundError, WorkflowStateError */
  async cancel(id: string, reason: string): Promise<WorkflowRow> {
    const row = await this.get(id);
    if (!row) throw new WorkflowNotFoundError(`no workflow ${JSON.stringify(id)}`);
    if (row.status !== "PENDING") throw new WorkflowStateError(`workflow ${id} is ${row.status}: only a PENDING workflow can be cancelled`);
    await this.q(
      undefined,
      `WITH RECURSIVE tree AS (SELECT $1::text AS id UNION SELECT w.id FROM txfn.workflows w JOIN tree t ON w.parent_id = t.id)
       UPDATE txfn.workflows SET status = 'CANCELLED', error = jsonb_build_object('name', 'Cancelled', 'message', $2::text),
         ended_at = clock_timestamp(), updated_at = clock_timestamp()
       WHERE id IN (SELECT id FROM tree) AND status = 'PENDING'`,
      [id, reason],
    );
    return (await this.get(id))!;
  }

  /**
   * Puts a CANCELLED workflow, or one the engine parked as ERROR, back to PENDING (unowned, so
   * any executor claims it), with its CANCELLED descendants. `newCode`: forget the recorded code
   * hash, so the next executor continues it with the code it has.
   * @throws WorkflowNotFoundError, WorkflowStateError (SUCCESS, COMPENSATED, or failed by the workflow itself)
   */
  async resume(id: string, newCode: boolean): Promise<WorkflowRow> {
    const row = await this.get(id);
    if (!row) throw new WorkflowNotFoundError(`no workflow ${JSON.stringify(id)}`);
    if (row.status === "PENDING") return row;
    if (row.status === "SUCCESS" || row.status === "COMPENSATED") throw new WorkflowStateError(`workflow ${id} is ${row.status}: nothing to resume`);
    if (row.status === "ERROR" && row.park_reason === null) {
      throw new WorkflowStateError(
        `workflow ${id} failed by itself (${row.error?.name ?? "Error"}: ${row.error?.message ?? ""}); its recorded history would replay the same failure`,
      );
    }
    await this.q(
      undefined,
      `WITH RECURSIVE tree AS (SELECT $1::text AS id UNION SELECT w.id FROM txfn.workflows w JOIN tree t ON w.parent_id = t.id
                                 WHERE w.status = 'CANCELLED'),
       u AS (UPDATE txfn.workflows SET status = 'PENDING', owner = NULL, error = NULL, park_reason = NULL, ended_at = NULL,
               recovery_attempts = 0, code_hash = CASE WHEN $2 THEN NULL ELSE code_hash END, updated_at = clock_timestamp()
             WHERE id IN (SELECT id FROM tree) AND (status = 'CANCELLED' OR (status = 'ERROR' AND park_reason IS NOT NULL)) RETURNING name)
       SELECT pg_notify('txfn_workflow_ready', name) FROM u`,
      [id, newCode],
    );
    return (await this.get(id))!;
  }
}

/** txfn.workflows row → the client's view. */
export function toInfo(r: WorkflowRow): WorkflowInfo {
  return {
    id: r.id,
    name: r.name,
    status: r.status,
    input: r.input,
    output: decodeOutput(r.output),
    error: r.error,
    parkReason: r.park_reason,
    parentId: r.parent_id,
    bundleVersion: r.bundle_version,
    codeHash: r.code_hash,
    executorId: r.executor_id,
    attempts: r.attempts,
    recoveryAttempts: r.recovery_attempts,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    endedAt: r.ended_at,
  };
}

/** txfn.workflow_steps row → the client's view. */
export function toStepInfo(r: StepRow): StepInfo {
  return {
    step: r.step,
    kind: r.kind,
    name: r.name,
    status: r.status,
    output: decodeOutput(r.output),
    error: r.error,
    invocationId: r.invocation_id,
    attempts: r.attempts,
    compensates: r.compensates,
    startedAt: r.started_at,
    endedAt: r.ended_at,
  };
}
