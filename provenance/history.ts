/**
 * A row's whole life: every captured change of one table row, version by version, each with
 * what made it (invocation, function, bundle version, workflow, role, application) and a
 * column-by-column diff.
 */
import pg from "pg";
import { CHANGE_COLUMNS, CHANGE_FROM, ProvenanceError, diffRows, resolveTable, toChange, type Change, type ColumnDiff } from "./changes.ts";

export interface RowVersion {
  /** 1 for the oldest captured change of the row. */
  version: number;
  change: Change;
  /** Columns the change set (insert: all; delete: all, with `after` undefined). */
  diff: ColumnDiff[];
  /** The row after this change; null once deleted. */
  row: Record<string, unknown> | null;
}

export interface RowHistory {
  /** schema.table */
  table: string;
  /** The key as looked up (normalised through the table's column types when the table exists). */
  key: Record<string, unknown>;
  keyColumns: string[];
  versions: RowVersion[];
  /** Other keys this row had (an update changed its primary key), oldest first. */
  formerKeys: Record<string, unknown>[];
}

/**
 * Parses the key argument of `txfn history`: a JSON object of the key columns, or, for a
 * one-column key, the bare value (`sku-001`, `42`, `"42"`).
 * @throws ProvenanceError when it does not name exactly the key columns.
 */
export function parseKey(text: string, keyColumns: string[], table: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = text; // a bare string
  }
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    if (keyColumns.length > 0) {
      const got = Object.keys(obj).sort();
      const want = [...keyColumns].sort();
      if (got.join(",") !== want.join(",")) {
        throw new ProvenanceError(
          `the key of ${table} is (${keyColumns.join(", ")}); got ${JSON.stringify(obj)}`,
          `e.g. '${JSON.stringify(Object.fromEntries(keyColumns.map((k) => [k, "…"])))}'`,
        );
      }
    }
    return obj;
  }
  if (keyColumns.length === 1) return { [keyColumns[0]!]: value };
  throw new ProvenanceError(
    keyColumns.length === 0
      ? `${table} has no primary key: give the whole row as a JSON object`
      : `the key of ${table} has ${keyColumns.length} columns (${keyColumns.join(", ")}): give a JSON object`,
  );
}

/**
 * The history of one row of `tableName` (`schema.table` or an unambiguous `table`), oldest
 * change first, following primary-key changes backwards (`formerKeys`). The history of a key
 * the row later left (an UPDATE changed its primary key) ends before that update: the update is
 * recorded under the new key, whose history includes it and everything before.
 * @param keyText see `parseKey`.
 * @throws ProvenanceError for an unknown table or a malformed key.
 */
export async function rowHistory(url: string, tableName: string, keyText: string): Promise<RowHistory> {
  const c = new pg.Client({ connectionString: url, application_name: "txfn-history" });
  await c.connect();
  try {
    const t = await resolveTable(c, tableName);
    let key = parseKey(keyText, t.keyColumns, t.table);
    if (t.exists) key = await canonicalKey(c, t.table, key);

    // The changes under this key, then (backwards) under each key it was renamed from.
    const seen = new Set<string>();
    const changes: Change[] = [];
    const formerKeys: Record<string, unknown>[] = [];
    let pending: Record<string, unknown>[] = [key];
    while (pending.length) {
      const next: Record<string, unknown>[] = [];
      for (const k of pending) {
        const r = await c.query(
          `SELECT ${CHANGE_COLUMNS} FROM ${CHANGE_FROM} WHERE p.table_id = ANY($1::int[]) AND p.key = $2::jsonb`,
          [t.ids, JSON.stringify(k)],
        );
        for (const row of r.rows) {
          const ch = toChange(row);
          const id = `${ch.xid}.${ch.seq}`;
          if (seen.has(id)) continue;
          seen.add(id);
          changes.push(ch);
          // renamed into this key from another: follow the other one too
          if (ch.oldKey) {
            formerKeys.push(ch.oldKey);
            next.push(ch.oldKey);
          }
        }
      }
      pending = next;
    }
    changes.sort(changeOrder);
    let version = 0;
    const versions = changes.map((change) => ({
      version: ++version,
      change,
      diff: diffRows(change.oldRow, change.newRow),
      row: change.newRow,
    }));
    return { table: t.table, key, keyColumns: t.keyColumns, versions, formerKeys: formerKeys.reverse() };
  } finally {
    await c.end();
  }
}

/**
 * Order of one row's changes: by commit time when known (a row's changes are serialised by its
 * row lock, so commit order is their order), then xid and seq (within a transaction).
 */
export function changeOrder(a: Change, b: Change): number {
  if (a.xid === b.xid) return a.seq - b.seq;
  if (a.committedAt && b.committedAt && a.committedAt.getTime() !== b.committedAt.getTime()) {
    return a.committedAt.getTime() - b.committedAt.getTime();
  }
  return a.xid.length - b.xid.length || (a.xid < b.xid ? -1 : 1);
}

/**
 * The key as capture writes it: values converted through the table's column types
 * (`{"id": "5"}` → `{"id": 5}` for an integer column), so it compares equal to the stored key.
 */
async function canonicalKey(c: pg.ClientBase, table: string, key: Record<string, unknown>): Promise<Record<string, unknown>> {
  const [schema, name] = [table.slice(0, table.indexOf(".")), table.slice(table.indexOf(".") + 1)];
  const qualified = `${c.escapeIdentifier(schema)}.${c.escapeIdentifier(name)}`;
  try {
    const r = await c.query<{ k: Record<string, unknown> }>(
      `SELECT (SELECT jsonb_object_agg(j.key, j.value) FROM jsonb_each(to_jsonb(r)) j WHERE $1::jsonb ? j.key) AS k ` +
        `FROM jsonb_populate_record(NULL::${qualified}, $1::jsonb) r`,
      [JSON.stringify(key)],
    );
    return r.rows[0]?.k ?? key;
  } catch (err) {
    const e = err as { code?: string; message: string };
    if (e.code?.startsWith("22")) throw new ProvenanceError(`bad key for ${table}: ${e.message}`);
    throw err;
  }
}
