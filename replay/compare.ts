/**
 * Comparing a replay with its record: each invocation's outcome and writes (R3's retroaction
 * categories: same / output changed / writes changed / now fails / now succeeds), the final
 * state of every row either side wrote, and user invariants.
 */
import pg from "pg";
import type { UnitRun } from "./schedule.ts";
import type { InvocationRun } from "./session.ts";
import type { CheckResult, InvocationResult, Outcome, RecordedInvocation, RowChange, RunOutcome, TableDiff, TableInfo } from "./types.ts";

/** JSON with object keys sorted, so equal values give equal text. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.keys(v as object).sort().map((k) => [k, (v as Record<string, unknown>)[k]]))
      : v,
  );
}

const parse = (text: string | null): unknown => (text === null ? undefined : JSON.parse(text));

/** A recorded error without its stack (stacks name bundle positions, which new code moves). */
function errorValue(e: unknown): unknown {
  if (e === null || typeof e !== "object") return e;
  const { stack: _stack, ...rest } = e as Record<string, unknown>;
  return rest;
}

function recordedOutcome(inv: RecordedInvocation): RunOutcome {
  return inv.status === "ok" ? { status: "ok", output: parse(inv.output) } : { status: "error", error: parse(inv.error) };
}

function replayedOutcome(run: InvocationRun | undefined): RunOutcome | null {
  const e = run?.envelope;
  if (!e) return null;
  return e.error !== undefined ? { status: "error", error: e.error } : { status: "ok", output: e.output };
}

/** The change as shown in a report. */
function changeView(ch: RowChange | undefined, tables: Map<number, TableInfo>): unknown {
  if (!ch) return null;
  const t = tables.get(ch.tableId);
  return {
    table: t ? `${t.schema}.${t.name}` : ch.tableId, op: ch.op, key: parse(ch.key),
    ...(ch.oldKey ? { oldKey: parse(ch.oldKey) } : {}),
    ...(ch.oldRow ? { oldRow: parse(ch.oldRow) } : {}),
    ...(ch.newRow ? { newRow: parse(ch.newRow) } : {}),
  };
}

const sameChange = (a: RowChange, b: RowChange) =>
  a.tableId === b.tableId && a.op === b.op && a.key === b.key && a.oldKey === b.oldKey && a.oldRow === b.oldRow && a.newRow === b.newRow;

/** Compares one invocation's replay (or retroaction) with its record. */
export function compareInvocation(inv: RecordedInvocation, unit: UnitRun | undefined, tables: Map<number, TableInfo>): InvocationResult {
  const recorded = recordedOutcome(inv);
  const run = unit?.invocations.get(inv.id);
  const replayedCommitted = unit?.committed === true;
  const replayed = replayedCommitted ? replayedOutcome(run) : null;
  const recWrites = (unit?.unit.changes ?? []).filter((c) => c.invocationId === inv.id);
  const repWrites = replayedCommitted ? (unit!.changes ?? []).filter((c) => c.invocationId === inv.id) : [];
  const base = { id: inv.id, function: inv.function, recorded, ...(inv.isolation === "read committed" ? { notGuaranteed: true } : {}) };
  if (!replayed) {
    const reason = run?.sqlError
      ? `SQL error ${run.sqlError.code ?? ""}: ${run.sqlError.message}`.trim()
      : (unit?.failure ?? "the run stopped before it");
    return {
      ...base, outcome: "did not run", replayed: null, outputChanged: true, writesChanged: recWrites.length > 0,
      writes: { recorded: recWrites.length, replayed: 0 }, reason,
    };
  }
  const value = (o: RunOutcome) => canonical(o.status === "ok" ? { ok: o.output ?? null } : { error: errorValue(o.error) });
  const outputChanged = value(recorded) !== value(replayed);
  let firstWriteDiff: InvocationResult["firstWriteDiff"];
  const n = Math.max(recWrites.length, repWrites.length);
  for (let k = 0; k < n; k++) {
    const a = recWrites[k];
    const b = repWrites[k];
    if (a && b && sameChange(a, b)) continue;
    firstWriteDiff = { index: k, recorded: changeView(a, tables), replayed: changeView(b, tables) };
    break;
  }
  const writesChanged = firstWriteDiff !== undefined;
  let outcome: Outcome = "same";
  if (recorded.status === "ok" && replayed.status === "error") outcome = "now fails";
  else if (recorded.status === "error" && replayed.status === "ok") outcome = "now succeeds";
  else if (outputChanged) outcome = "output changed";
  else if (writesChanged) outcome = "writes changed";
  return {
    ...base, outcome, replayed, outputChanged, writesChanged,
    ...(firstWriteDiff ? { firstWriteDiff } : {}),
    writes: { recorded: recWrites.length, replayed: repWrites.length },
  };
}

interface RowEnds {
  /** the row before the first change (null = absent) */
  before: string | null;
  /** the row after the last change */
  after: string | null;
}

/** Per table and key, the state before and after a chain of changes (in commit order, then seq). */
function rowEnds(changes: RowChange[], tables: Map<number, TableInfo>): Map<string, RowEnds> {
  const ends = new Map<string, RowEnds>();
  const touch = (tableId: number, key: string, before: string | null, after: string | null) => {
    const k = `${tableId}\u0000${key}`;
    const e = ends.get(k);
    if (e) e.after = after;
    else ends.set(k, { before, after });
  };
  const counts = new Map<string, number>(); // tables without a key: net copies of each row
  for (const ch of changes) {
    if ((tables.get(ch.tableId)?.keyColumns.length ?? 1) === 0) {
      const add = (row: string, n: number) => counts.set(`${ch.tableId}\u0000${row}`, (counts.get(`${ch.tableId}\u0000${row}`) ?? 0) + n);
      if (ch.op === "I" || ch.op === "U") add(ch.newRow!, 1);
      if (ch.op !== "I") add(ch.oldRow!, -1);
      continue;
    }
    if (ch.op === "I") touch(ch.tableId, ch.key, null, ch.newRow);
    else if (ch.op === "U" && ch.oldKey) {
      touch(ch.tableId, ch.oldKey, ch.oldRow, null);
      touch(ch.tableId, ch.key, null, ch.newRow);
    } else if (ch.op === "U") touch(ch.tableId, ch.key, ch.oldRow, ch.newRow);
    else touch(ch.tableId, ch.key, ch.oldRow, null);
  }
  for (const [k, n] of counts) if (n !== 0) ends.set(k, { before: "0", after: String(n) });
  return ends;
}

/**
 * The final state of the trace: for every row either side wrote, the recorded state as of the
 * trace's end (after the last recorded change of the schedule's transactions — the trace's and
 * those re-applied — in recorded commit order) against the replayed state; the rows whose state
 * differs, per table, and how many rows were compared. Both sides start from the same
 * reconstructed state, so a row only one side wrote keeps its state from before on the other
 * side. Changes of transactions outside the schedule (later ones, or ones no trace transaction
 * saw) are in neither chain: a row changed since the trace does not differ. Tables without a
 * primary key compare net copies added or removed.
 */
export function finalStateDiff(recorded: RowChange[], replayed: RowChange[], tables: Map<number, TableInfo>): { diffs: TableDiff[]; rows: number } {
  const a = rowEnds(recorded, tables);
  const b = rowEnds(replayed, tables);
  const out = new Map<number, TableDiff>();
  const keys = new Set([...a.keys(), ...b.keys()]);
  for (const k of keys) {
    const ra = a.get(k);
    const rb = b.get(k);
    const fa = ra ? ra.after : rb!.before;
    const fb = rb ? rb.after : ra!.before;
    if (fa === fb) continue;
    const [id, key] = k.split("\u0000") as [string, string];
    const t = tables.get(Number(id));
    const d = out.get(Number(id)) ?? { table: t ? `${t.schema}.${t.name}` : id, count: 0, rows: [] };
    out.set(Number(id), d);
    d.count++;
    const multiset = t?.keyColumns.length === 0;
    if (d.rows.length < 20) {
      d.rows.push(
        multiset
          ? { key: JSON.parse(key), recorded: `${Number(fa ?? 0) >= 0 ? "+" : ""}${fa ?? 0} copies`, replayed: `${Number(fb ?? 0) >= 0 ? "+" : ""}${fb ?? 0} copies` }
          : { key: JSON.parse(key), recorded: fa === null ? null : JSON.parse(fa), replayed: fb === null ? null : JSON.parse(fb) },
      );
    }
  }
  return { diffs: [...out.values()].sort((x, y) => x.table.localeCompare(y.table)), rows: keys.size };
}

/**
 * Leaves the columns added since the trace (TableInfo.addedSince) out of the given changes of
 * those tables, in place; their rows and keys become canonical JSON text on both sides, so
 * recorded and replayed changes compare equal when they differ only there. The same change may
 * be in several lists (it is idempotent).
 */
export function leaveOutColumns(tables: Map<number, TableInfo>, lists: RowChange[][]): void {
  const added = new Map<number, string[]>();
  for (const t of tables.values()) if (t.addedSince?.length) added.set(t.id, t.addedSince);
  if (added.size === 0) return;
  const strip = (text: string | null, cols: string[]): string | null => {
    if (text === null) return null;
    const v = JSON.parse(text) as unknown;
    if (v !== null && typeof v === "object") for (const col of cols) delete (v as Record<string, unknown>)[col];
    return canonical(v);
  };
  for (const list of lists) {
    for (const ch of list) {
      const cols = added.get(ch.tableId);
      if (!cols) continue;
      ch.key = strip(ch.key, cols)!;
      ch.oldKey = strip(ch.oldKey, cols);
      ch.oldRow = strip(ch.oldRow, cols);
      ch.newRow = strip(ch.newRow, cols);
    }
  }
}

/** Runs each invariant (SQL that must return no rows) read-only on the scratch database. */
export async function runChecks(url: string, checks: string[]): Promise<CheckResult[]> {
  if (checks.length === 0) return [];
  const c = new pg.Client({ connectionString: url, application_name: "txfn-replay-check" });
  await c.connect();
  const out: CheckResult[] = [];
  try {
    for (const sql of checks) {
      await c.query("BEGIN READ ONLY");
      try {
        const r = await c.query(sql);
        const rows = Array.isArray(r) ? (r[r.length - 1] as pg.QueryResult).rows : r.rows;
        out.push({ sql, ok: rows.length === 0, rows: rows.slice(0, 10), rowCount: rows.length });
      } catch (err) {
        out.push({ sql, ok: false, rows: [], rowCount: 0, error: (err as Error).message });
      } finally {
        await c.query("ROLLBACK");
      }
    }
  } finally {
    await c.end();
  }
  return out;
}
