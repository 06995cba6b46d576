/**
 * Reading captured changes: the shape every provenance reader shares (audit, follow, history)
 * and the one SELECT that produces it, joined with the table registry and the invocation that
 * made the change.
 */
import type pg from "pg";

/** I insert, U update, D delete, T removed by TRUNCATE. */
export type ChangeOp = "I" | "U" | "D" | "T";

export const OP_NAMES: Record<ChangeOp, string> = { I: "INSERT", U: "UPDATE", D: "DELETE", T: "TRUNCATE" };

/** One captured row change (a row of txfn.provenance with what it joins to). */
export interface Change {
  /** Top-level transaction id (xid8, decimal text). */
  xid: string;
  /** Position in the transaction's change sequence (1, 2, …). */
  seq: number;
  tableId: number;
  /** schema.table as the registry names it now (renames followed). */
  table: string;
  op: ChangeOp;
  /** Primary key of the row after the change (before it for D and T); the whole row for a table without one. */
  key: Record<string, unknown>;
  /** U only: the key before, when the update changed it. */
  oldKey: Record<string, unknown> | null;
  oldRow: Record<string, unknown> | null;
  newRow: Record<string, unknown> | null;
  /** The txfn invocation that made it, when the transaction really ran that invocation; else null. */
  invocationId: string | null;
  /** Set when the change claims an invocation (txfn.invocation_id) that did not run in its transaction. */
  claimedInvocationId: string | null;
  function: string | null;
  /** Bundle version of the invocation. */
  version: number | null;
  workflowId: string | null;
  workflowStep: number | null;
  /** current_user of the writer. */
  role: string;
  applicationName: string | null;
  /** Start of the writing transaction. */
  txTime: Date;
  /** Commit time (track_commit_timestamp), null when unknown. */
  committedAt: Date | null;
}

/** Columns of CHANGE_FROM, in Change order. */
export const CHANGE_COLUMNS =
  "p.xid::text AS xid, p.seq, p.table_id, t.schema_name || '.' || t.table_name AS table_name, p.op, p.key, p.old_key, " +
  "p.old_row, p.new_row, p.invocation_id::text AS claimed, i.id IS NOT NULL AS verified, i.function, i.version, " +
  "i.workflow_id, i.workflow_step, p.role, p.application_name, p.tx_time, " +
  "CASE WHEN current_setting('track_commit_timestamp')::boolean THEN pg_xact_commit_timestamp(xid(p.xid)) END AS committed_at";

/**
 * FROM clause for CHANGE_COLUMNS. An invocation counts only when its recorded xid is the
 * change's transaction: txfn.invocation_id is a setting any session can set.
 */
export const CHANGE_FROM =
  "txfn.provenance p JOIN txfn.provenance_tables t ON t.id = p.table_id " +
  "LEFT JOIN txfn.invocations i ON i.id = p.invocation_id AND i.xid = p.xid";

/** A query row of CHANGE_COLUMNS → Change. */
export function toChange(r: Record<string, unknown>): Change {
  const verified = r.verified === true;
  return {
    xid: r.xid as string,
    seq: r.seq as number,
    tableId: r.table_id as number,
    table: r.table_name as string,
    op: r.op as ChangeOp,
    key: r.key as Record<string, unknown>,
    oldKey: (r.old_key as Record<string, unknown> | null) ?? null,
    oldRow: (r.old_row as Record<string, unknown> | null) ?? null,
    newRow: (r.new_row as Record<string, unknown> | null) ?? null,
    invocationId: verified ? (r.claimed as string) : null,
    claimedInvocationId: verified ? null : ((r.claimed as string | null) ?? null),
    function: (r.function as string | null) ?? null,
    version: (r.version as number | null) ?? null,
    workflowId: (r.workflow_id as string | null) ?? null,
    workflowStep: (r.workflow_step as number | null) ?? null,
    role: r.role as string,
    applicationName: (r.application_name as string | null) ?? null,
    txTime: r.tx_time as Date,
    committedAt: (r.committed_at as Date | null) ?? null,
  };
}

/** A column-by-column difference between two row images. */
export interface ColumnDiff {
  column: string;
  /** undefined: the column did not exist in that image. */
  before: unknown;
  after: unknown;
}

/** Columns whose values differ between `before` and `after` (either may be null: insert/delete). */
export function diffRows(before: Record<string, unknown> | null, after: Record<string, unknown> | null): ColumnDiff[] {
  const cols = new Set([...Object.keys(before ?? {}), ...Object.keys(after ?? {})]);
  const out: ColumnDiff[] = [];
  for (const column of cols) {
    const b = before ? before[column] : undefined;
    const a = after ? after[column] : undefined;
    if (before && after && JSON.stringify(b) === JSON.stringify(a)) continue;
    out.push({ column, before: b, after: a });
  }
  return out;
}

/** Filters shared by audit and follow. */
export interface ChangeFilter {
  /** Table name (schema.table, or table when unambiguous). */
  table?: string;
  /** Only changes by this role. */
  role?: string;
  /** Only changes made outside txfn invocations (psql, other applications): the security monitor. */
  outsideFunctions?: boolean;
}

/** Raised for bad input to a provenance reader (unknown table, malformed key or cursor). */
export class ProvenanceError extends Error {
  override name = "ProvenanceError";
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

/**
 * The registry ids of a table name: `schema.table`, or a bare `table` when exactly one schema
 * has it. Includes ids of dropped incarnations of the same name.
 * @throws ProvenanceError naming the candidates when the name is unknown or ambiguous.
 */
export async function resolveTable(c: pg.ClientBase, name: string): Promise<{ ids: number[]; table: string; keyColumns: string[]; exists: boolean }> {
  const dot = name.indexOf(".");
  const [schema, table] = dot >= 0 ? [name.slice(0, dot), name.slice(dot + 1)] : [null, name];
  const r = await c.query<{ id: number; schema_name: string; table_name: string; key_columns: string[]; relid: number | null }>(
    "SELECT id, schema_name, table_name, key_columns, relid FROM txfn.provenance_tables " +
      "WHERE table_name = $1 AND ($2::text IS NULL OR schema_name = $2) ORDER BY relid IS NULL, id DESC",
    [table, schema],
  );
  if (r.rows.length === 0) {
    const known = await c.query<{ n: string }>("SELECT schema_name || '.' || table_name AS n FROM txfn.provenance_tables ORDER BY 1");
    throw new ProvenanceError(
      `no captured table ${JSON.stringify(name)}`,
      known.rows.length ? `captured tables: ${known.rows.map((k) => k.n).join(", ")}` : "nothing is captured yet (txfn deploy, or txfn provenance sync)",
    );
  }
  const schemas = [...new Set(r.rows.map((x) => x.schema_name))];
  if (schemas.length > 1) {
    throw new ProvenanceError(`table name ${JSON.stringify(name)} is ambiguous`, `qualify it: ${schemas.map((s) => `${s}.${table}`).join(", ")}`);
  }
  const latest = r.rows[0]!;
  return {
    ids: r.rows.map((x) => x.id),
    table: `${latest.schema_name}.${latest.table_name}`,
    keyColumns: latest.key_columns,
    exists: latest.relid !== null,
  };
}

/**
 * WHERE conditions (and their parameters, numbered from `first`) for a ChangeFilter over
 * CHANGE_FROM. `ids` are the resolved table ids when `filter.table` was given.
 */
export function filterSql(filter: ChangeFilter, ids: number[] | null, first: number): { sql: string; params: unknown[] } {
  const conds: string[] = [];
  const params: unknown[] = [];
  if (ids) {
    params.push(ids);
    conds.push(`p.table_id = ANY($${first + params.length - 1}::int[])`);
  }
  if (filter.role !== undefined) {
    params.push(filter.role);
    conds.push(`p.role = $${first + params.length - 1}`);
  }
  if (filter.outsideFunctions) conds.push("i.id IS NULL");
  return { sql: conds.length ? conds.join(" AND ") : "true", params };
}
