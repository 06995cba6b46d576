/**
 * Reading a trace from the source database, inside one REPEATABLE READ transaction (the same
 * snapshot pg_dump copies the rows in): the invocations, their transactions and snapshots, the
 * transactions outside the trace they saw, every recorded change, and what reconstruction needs
 * to put the rows back as they were before the trace (provenance/README.md "What replay can
 * rely on").
 */
import type pg from "pg";
import { rowHistory } from "../provenance/index.ts";
import { intersectSnapshots, parseSnapshot, visibilityCounter, xid8, type Snapshot } from "./snapshot.ts";
import type { RecordedInvocation, RowChange, TableInfo, TraceSelector, Unit } from "./types.ts";

/** A trace that cannot be replayed as asked (bad selection, pruned provenance, …). */
export class ReplayError extends Error {
  override name = "ReplayError";
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

/** The base state of one keyed row: `base` null = the row did not exist. */
export interface KeyedUndo {
  tableId: number;
  key: string;
  base: string | null;
}

/** A table without a primary key: copies of `row` to add back (delta < 0) or take away (delta > 0). */
export interface MultisetUndo {
  tableId: number;
  row: string;
  delta: number;
}

export interface Recording {
  /** Trace invocations in start order (nested ones excluded). */
  invocations: RecordedInvocation[];
  nested: RecordedInvocation[];
  /** Trace and external transactions, by xid. */
  units: Unit[];
  /** The state reconstruction rebuilds: what every trace transaction saw. */
  base: Snapshot;
  tables: Map<number, TableInfo>;
  keyedUndo: KeyedUndo[];
  multisetUndo: MultisetUndo[];
  /** Owned sequences to rewind: next value = the smallest value the undone inserts used. */
  sequences: { sequence: string; next: string }[];
  /** Bundle versions the trace ran. */
  versions: number[];
  maxInvocationId: string;
  /** ms from the first trace invocation's start to the last one's end */
  originalMs: number;
  warnings: string[];
}

const INVOCATION_COLUMNS =
  "i.id::text AS id, i.idempotency_key, i.function, i.version, i.input::text AS input, i.status, i.output::text AS output, " +
  "i.error::text AS error, i.xid::text AS xid, i.snapshot::text AS snapshot, " +
  "(round(extract(epoch FROM i.pinned_time) * 1000))::text AS pinned_ms, i.seed::text AS seed, i.isolation, i.workflow_id, " +
  "i.workflow_step, i.role, i.started_at, i.ended_at";

function toInvocation(r: Record<string, unknown>): RecordedInvocation {
  return {
    id: r.id as string,
    key: r.idempotency_key as string | null,
    function: r.function as string,
    version: r.version as number,
    input: r.input as string,
    status: r.status as "ok" | "error",
    output: r.output as string | null,
    error: r.error as string | null,
    xid: xid8(r.xid as string),
    snapshot: parseSnapshot(r.snapshot as string),
    pinnedMs: Number(r.pinned_ms),
    seed: Number(r.seed),
    isolation: r.isolation as string,
    workflowId: r.workflow_id as string | null,
    workflowStep: r.workflow_step as number | null,
    role: r.role as string,
    startedAt: r.started_at as Date,
    endedAt: r.ended_at as Date | null,
  };
}

/** Ids of the invocations that wrote one row (provenance history), for TraceSelector.row. */
async function rowWriters(url: string, row: { table: string; key: string }): Promise<string[]> {
  const h = await rowHistory(url, row.table, row.key);
  const ids = h.versions.map((v) => v.change.invocationId).filter((x): x is string => x !== null);
  if (ids.length === 0) throw new ReplayError(`no invocation wrote ${h.table} ${JSON.stringify(h.key)}`, "txfn history shows who did");
  return ids;
}

/** The trace's invocations (whole transactions), in xid then id order. */
async function selectInvocations(c: pg.ClientBase, url: string, sel: TraceSelector): Promise<RecordedInvocation[]> {
  const conds: string[] = ["i.status <> 'running'"];
  const params: unknown[] = [];
  const add = (sql: string, value: unknown) => {
    params.push(value);
    conds.push(sql.replace("$?", `$${params.length}`));
  };
  let ids = sel.invocationIds;
  if (sel.row) {
    const writers = await rowWriters(url, sel.row);
    ids = ids ? ids.filter((x) => writers.includes(x)) : writers;
  }
  if (sel.from) add("i.started_at >= $?", sel.from);
  if (sel.to) add("i.started_at <= $?", sel.to);
  if (ids) add("i.id = ANY($?::bigint[])", ids);
  if (sel.workflowIds) add("i.workflow_id = ANY($?::text[])", sel.workflowIds);
  if (sel.functions) add("i.function = ANY($?::text[])", sel.functions);
  if (conds.length === 1) throw new ReplayError("select a trace: a time range, invocation ids, workflow ids, a function or a row");
  const r = await c.query(
    `SELECT ${INVOCATION_COLUMNS} FROM txfn.invocations i WHERE i.xid IN (SELECT xid FROM txfn.invocations i WHERE ${conds.join(" AND ")}) ` +
      "AND i.status <> 'running' ORDER BY i.xid, i.id",
    params,
  );
  if (ids) {
    const found = new Set(r.rows.map((x) => x.id as string));
    const missing = ids.filter((x) => !found.has(x));
    if (missing.length && !sel.row) throw new ReplayError(`no such invocation(s): ${missing.slice(0, 10).join(", ")}`, "txfn invocations lists them");
  }
  return r.rows.map(toInvocation);
}

/**
 * Reads everything a replay of the selected trace needs, in the caller's open REPEATABLE READ
 * transaction on `c` (the snapshot pg_dump exports). `url` is used only to resolve a row selector.
 * @throws ReplayError for an empty selection, provenance pruned past the trace's start, or a
 *   cluster without track_commit_timestamp when a transaction outside the trace must be placed.
 */
export async function readRecording(c: pg.ClientBase, url: string, sel: TraceSelector): Promise<Recording> {
  const warnings: string[] = [];
  const all = await selectInvocations(c, url, sel);
  if (all.length === 0) throw new ReplayError("the selection holds no invocation", "txfn invocations --since 1h lists recent ones");

  // Units: one per transaction; an invocation that started and ended inside another of the same
  // transaction was called by that one's SQL (txfn.invoke nested): its caller replays it.
  const byXid = new Map<number, RecordedInvocation[]>();
  for (const inv of all) {
    const list = byXid.get(inv.xid);
    if (list) list.push(inv);
    else byXid.set(inv.xid, [inv]);
  }
  const invocations: RecordedInvocation[] = [];
  const nested: RecordedInvocation[] = [];
  const traceUnits: Unit[] = [];
  for (const [xid, list] of byXid) {
    const top = list.filter(
      (b) => !list.some((a) => a !== b && a.startedAt <= b.startedAt && b.endedAt !== null && a.endedAt !== null && b.endedAt <= a.endedAt && Number(a.id) < Number(b.id)),
    );
    nested.push(...list.filter((b) => !top.includes(b)));
    invocations.push(...top);
    const first = top[0]!;
    traceUnits.push({
      index: 0, kind: "trace", xid, snapshot: first.snapshot, invocations: top,
      isolation: first.isolation, role: first.role, commitUs: null, changes: [],
    });
  }
  if (nested.length) warnings.push(`${nested.length} nested invocation(s) (txfn.invoke inside another invocation) are replayed by their callers and not compared`);
  const readCommitted = invocations.filter((i) => i.isolation === "read committed").length;
  if (readCommitted) warnings.push(`${readCommitted} invocation(s) ran at READ COMMITTED: each statement took a new snapshot, so their replay is not guaranteed`);

  const base = intersectSnapshots(traceUnits.map((u) => u.snapshot!));
  const baseText = `${base.xmin}:${base.xmax}:${[...base.xip].sort((a, b) => a - b).join(",")}`;

  const cfg = await c.query<{ pruned: string | null; track: boolean }>(
    "SELECT pruned_max_xid::text AS pruned, current_setting('track_commit_timestamp')::boolean AS track FROM txfn.provenance_config",
  );
  const pruned = cfg.rows[0]?.pruned;
  if (pruned != null && xid8(pruned) >= base.xmin) {
    throw new ReplayError(
      `provenance needed by this trace was pruned (up to xid ${pruned}; the trace needs everything from xid ${base.xmin})`,
      "select a later trace, or keep provenance longer (txfn provenance config --retention)",
    );
  }
  const track = cfg.rows[0]?.track ?? false;
  const commitUs = track ? "(extract(epoch FROM pg_xact_commit_timestamp(xid(x)))::numeric * 1000000)::bigint::text" : "NULL";

  // Transactions not visible to the base: the trace's, those some trace transaction saw
  // (external: re-applied), and later ones (undone only).
  const undone = await c.query<{ xid: string; commit_us: string | null }>(
    `SELECT x::text AS xid, ${commitUs} AS commit_us FROM (SELECT DISTINCT p.xid AS x FROM txfn.provenance p ` +
      "WHERE p.xid >= $1::xid8 AND NOT pg_visible_in_snapshot(p.xid, $2::pg_snapshot)) d",
    [String(base.xmin), baseText],
  );
  const traceXids = new Set(traceUnits.map((u) => u.xid));
  const seenBy = visibilityCounter(traceUnits.map((u) => u.snapshot!));
  const commitOf = new Map<number, number | null>();
  const externals: Unit[] = [];
  for (const row of undone.rows) {
    const xid = xid8(row.xid);
    commitOf.set(xid, row.commit_us === null ? null : Number(row.commit_us));
    if (traceXids.has(xid) || seenBy(xid) === 0) continue;
    externals.push({ index: 0, kind: "external", xid, snapshot: null, invocations: [], isolation: "read committed", role: null, commitUs: null, changes: [] });
  }
  // Trace transactions that wrote nothing have no provenance: ask for their commit times.
  const missing = traceUnits.filter((u) => !commitOf.has(u.xid)).map((u) => String(u.xid));
  if (missing.length) {
    const r = await c.query<{ xid: string; commit_us: string | null }>(
      `SELECT x::text AS xid, ${commitUs} AS commit_us FROM unnest($1::xid8[]) x`,
      [missing],
    );
    for (const row of r.rows) commitOf.set(xid8(row.xid), row.commit_us === null ? null : Number(row.commit_us));
  }
  const units = [...traceUnits, ...externals].sort((a, b) => a.xid - b.xid);
  units.forEach((u, i) => {
    u.index = i;
    u.commitUs = commitOf.get(u.xid) ?? null;
  });
  if (externals.length && !track) {
    warnings.push("track_commit_timestamp is off: transactions outside the trace are placed by xid only");
  }

  // Every recorded change of the schedule's transactions, attributed to verified invocations.
  const changes = await c.query(
    "SELECT p.xid::text AS xid, p.seq, CASE WHEN i.id IS NOT NULL THEN i.id::text END AS invocation_id, p.table_id, p.op, " +
      "p.key::text AS key, p.old_key::text AS old_key, p.old_row::text AS old_row, p.new_row::text AS new_row " +
      "FROM txfn.provenance p LEFT JOIN txfn.invocations i ON i.id = p.invocation_id AND i.xid = p.xid " +
      "WHERE p.xid = ANY($1::xid8[]) ORDER BY p.xid, p.seq",
    [units.map((u) => String(u.xid))],
  );
  const unitOf = new Map(units.map((u) => [u.xid, u]));
  for (const r of changes.rows) {
    const ch: RowChange = {
      xid: xid8(r.xid), seq: r.seq, invocationId: r.invocation_id, tableId: r.table_id, op: r.op,
      key: r.key, oldKey: r.old_key, oldRow: r.old_row, newRow: r.new_row,
    };
    unitOf.get(ch.xid)!.changes.push(ch);
  }
  for (const u of traceUnits) {
    const outside = u.changes.filter((ch) => ch.invocationId === null).length;
    if (outside) warnings.push(`transaction ${u.xid} also wrote ${outside} row(s) outside txfn.invoke: re-applied from provenance before its commit`);
  }

  const tables = await readTables(c);
  const firstStart = Math.min(...invocations.map((i) => i.startedAt.getTime()));
  const late = await c.query<{ t: string }>(
    "SELECT schema_name || '.' || table_name AS t FROM txfn.provenance_tables WHERE relid IS NOT NULL AND (NOT captured OR captured_since > $1)",
    [new Date(firstStart)],
  );
  for (const r of late.rows) warnings.push(`${r.t} was not captured for the whole trace: its rows are taken as they are now`);
  warnings.push(...(await schemaChanges(c, new Date(firstStart), units, tables)));

  const keyed = await c.query<{ table_id: number; k: string; base: string | null }>(
    "WITH u AS (SELECT p.table_id, p.op, p.key, p.old_key, p.old_row, p.xid, p.seq, " +
      (track ? "pg_xact_commit_timestamp(xid(p.xid))" : "NULL::timestamptz") +
      " AS ct FROM txfn.provenance p JOIN txfn.provenance_tables t ON t.id = p.table_id AND cardinality(t.key_columns) > 0 " +
      "WHERE p.xid >= $1::xid8 AND NOT pg_visible_in_snapshot(p.xid, $2::pg_snapshot)), " +
      "k AS (SELECT table_id, key AS k, op = 'I' OR (op = 'U' AND old_key IS NOT NULL) AS absent, old_row, ct, xid, seq FROM u " +
      "UNION ALL SELECT table_id, old_key, false, old_row, ct, xid, seq FROM u WHERE old_key IS NOT NULL) " +
      "SELECT DISTINCT ON (table_id, k) table_id, k::text AS k, CASE WHEN absent THEN NULL ELSE old_row END::text AS base " +
      "FROM k ORDER BY table_id, k, ct NULLS FIRST, xid, seq",
    [String(base.xmin), baseText],
  );
  const multiset = await c.query<{ table_id: number; r: string; delta: string }>(
    "WITH u AS (SELECT p.table_id, p.op, p.key, p.old_key FROM txfn.provenance p " +
      "JOIN txfn.provenance_tables t ON t.id = p.table_id AND cardinality(t.key_columns) = 0 " +
      "WHERE p.xid >= $1::xid8 AND NOT pg_visible_in_snapshot(p.xid, $2::pg_snapshot)), " +
      "d AS (SELECT table_id, key AS r, CASE WHEN op = 'I' OR (op = 'U' AND old_key IS NOT NULL) THEN 1 WHEN op IN ('D', 'T') THEN -1 ELSE 0 END AS n FROM u " +
      "UNION ALL SELECT table_id, old_key, -1 FROM u WHERE op = 'U' AND old_key IS NOT NULL) " +
      "SELECT table_id, r::text AS r, sum(n)::text AS delta FROM d GROUP BY table_id, r HAVING sum(n) <> 0",
    [String(base.xmin), baseText],
  );
  const gone = new Set(keyed.rows.map((r) => r.table_id).concat(multiset.rows.map((r) => r.table_id)).filter((id) => !tables.get(id)?.exists));
  for (const id of gone) warnings.push(`table ${tables.get(id)?.schema ?? "?"}.${tables.get(id)?.name ?? id} was dropped since: its changes cannot be undone`);
  const sequences = await c.query<{ sequence: string; next: string }>(
    "SELECT s.oid::regclass::text AS sequence, m.v AS next FROM txfn.provenance_tables t " +
      "JOIN pg_depend d ON d.refobjid = t.relid AND d.refclassid = 'pg_class'::regclass AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') " +
      "JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' " +
      "JOIN pg_attribute a ON a.attrelid = t.relid AND a.attnum = d.refobjsubid, " +
      "LATERAL (SELECT min((p.new_row ->> a.attname)::numeric)::text AS v FROM txfn.provenance p WHERE p.table_id = t.id AND p.op = 'I' " +
      "AND p.xid >= $1::xid8 AND NOT pg_visible_in_snapshot(p.xid, $2::pg_snapshot)) m WHERE t.relid IS NOT NULL AND m.v IS NOT NULL",
    [String(base.xmin), baseText],
  );
  const maxId = await c.query<{ m: string | null }>("SELECT max(id)::text AS m FROM txfn.invocations");
  const lastEnd = Math.max(...invocations.map((i) => (i.endedAt ?? i.startedAt).getTime()));
  return {
    invocations: [...invocations].sort((a, b) => a.startedAt.getTime() - b.startedAt.getTime() || Number(a.id) - Number(b.id)),
    nested,
    units,
    base,
    tables,
    keyedUndo: keyed.rows.map((r) => ({ tableId: r.table_id, key: r.k, base: r.base })),
    multisetUndo: multiset.rows.map((r) => ({ tableId: r.table_id, row: r.r, delta: Number(r.delta) })),
    sequences: sequences.rows,
    versions: [...new Set(invocations.map((i) => i.version))].sort((a, b) => a - b),
    maxInvocationId: maxId.rows[0]?.m ?? "0",
    originalMs: lastEnd - firstStart,
    warnings,
  };
}

/**
 * What tells that the application schema changed since the trace began (the scratch database
 * is restored with today's schema, not the trace's): application migrations run after the
 * trace's first invocation (txfn.app_migrations.run_on), and, per table the schedule wrote,
 * the columns of its first recorded row against the table's columns today (DDL from psql has
 * no migration). Returns a warning per finding; sets `addedSince` on the tables concerned.
 */
async function schemaChanges(c: pg.ClientBase, firstStart: Date, units: Unit[], tables: Map<number, TableInfo>): Promise<string[]> {
  const warnings: string[] = [];
  const has = await c.query<{ e: boolean }>("SELECT to_regclass('txfn.app_migrations') IS NOT NULL AS e");
  if (has.rows[0]!.e) {
    const m = await c.query<{ name: string; run_on: Date }>(
      "SELECT name, run_on FROM txfn.app_migrations WHERE run_on > $1::timestamptz ORDER BY run_on, id",
      [firstStart],
    );
    if (m.rows.length) {
      const names = m.rows.map((r) => r.name);
      warnings.push(
        `the application schema changed after the trace began (${firstStart.toISOString()}): migration(s) ` +
          `${names.slice(0, 5).join(", ")}${names.length > 5 ? ` and ${names.length - 5} more` : ""} ran since; ` +
          "the scratch database has today's schema, so the replay may differ where they changed a table the trace used",
      );
    }
  }
  const sample = new Map<number, string>(); // the first recorded row of each table, in xid order
  for (const u of units) for (const ch of u.changes) if (!sample.has(ch.tableId) && (ch.newRow ?? ch.oldRow) !== null) sample.set(ch.tableId, (ch.newRow ?? ch.oldRow)!);
  if (sample.size === 0) return warnings;
  const today = await c.query<{ id: number; cols: string[] }>(
    "SELECT t.id, array_agg(a.attname::text ORDER BY a.attnum) AS cols FROM txfn.provenance_tables t " +
      "JOIN pg_attribute a ON a.attrelid = t.relid AND a.attnum > 0 AND NOT a.attisdropped WHERE t.id = ANY($1::int[]) GROUP BY t.id",
    [[...sample.keys()]],
  );
  for (const r of today.rows) {
    const recorded = new Set(Object.keys(JSON.parse(sample.get(r.id)!) as object));
    const now = new Set(r.cols);
    const plus = r.cols.filter((x) => !recorded.has(x));
    const minus = [...recorded].filter((x) => !now.has(x));
    if (plus.length === 0 && minus.length === 0) continue;
    const t = tables.get(r.id);
    if (plus.length && t) t.addedSince = plus;
    warnings.push(
      `${t ? `${t.schema}.${t.name}` : r.id} has another schema today than during the trace:` +
        (plus.length ? ` column(s) ${plus.join(", ")} added since (left out of the comparison)` : "") +
        (plus.length && minus.length ? ";" : "") +
        (minus.length ? ` column(s) ${minus.join(", ")} dropped since (their recorded values cannot be replayed)` : ""),
    );
  }
  return warnings;
}

/** The provenance registry (table ids are the ones recorded changes name). */
export async function readTables(c: pg.ClientBase): Promise<Map<number, TableInfo>> {
  const r = await c.query<{ id: number; schema_name: string; table_name: string; key_columns: string[]; exists: boolean }>(
    "SELECT id, schema_name, table_name, key_columns, relid IS NOT NULL AS exists FROM txfn.provenance_tables",
  );
  return new Map(r.rows.map((t) => [t.id, { id: t.id, schema: t.schema_name, name: t.table_name, keyColumns: t.key_columns, exists: t.exists }]));
}
