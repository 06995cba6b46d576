/**
 * Reconstruction: a scratch database holding the application's schema, the txfn runtime, the
 * bundle versions a trace ran and the application rows as they were just before the trace.
 *
 * Method (README "Time travel"): pg_dump (custom format) of the source in the snapshot the
 * trace was read in — the schema of everything, the rows of the application tables, no txfn
 * rows — restored section by section: pre-data (extension, schemas, tables, functions), data
 * (today's rows), then the undo (every change of a transaction the base does not see, taken
 * back: keyed rows are set to the state before their first such change, rows of tables without
 * a primary key are added or removed as a multiset), then post-data (indexes, constraints,
 * triggers, the provenance event trigger), so the undo fires no trigger and no constraint sees a
 * half-undone state. Then the txfn rows replay needs: the bundles, the provenance registry (with
 * the scratch database's relids), provenance settings and the migration bookkeeping.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { pgBinDir } from "../db/pg-install.ts";
import { ReplayError, type Recording } from "./record.ts";
import type { TableInfo } from "./types.ts";

/** A database replay runs in. */
export interface Scratch {
  name: string;
  url: string;
  /** true when replay created it (and so drops it unless kept); false for --target */
  created: boolean;
  /** the restoring user is a superuser on the same cluster: owners, grants and event triggers are kept */
  sameCluster: boolean;
}

/** The txfn rows copied into the scratch database, as JSON arrays read in the trace's snapshot. */
export interface SystemRows {
  bundles: string;
  registry: string;
  config: string;
  migrations: string | null;
  appMigrations: string | null;
  maxVersion: number;
  maxInvocationId: string;
}

/** The database name of a connection URL. */
export function databaseOf(url: string): string {
  return decodeURIComponent(new URL(url).pathname.replace(/^\//, "")) || "postgres";
}

/** `url` pointing at database `name`. */
export function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(name)}`;
  return u.toString();
}

/** A clear, unique scratch name: txfn_replay_<source>_<UTC time>_<random>, at most 63 bytes. */
export function scratchName(sourceDb: string, now = new Date()): string {
  const src = sourceDb.toLowerCase().replace(/[^a-z0-9_]/g, "_").slice(0, 20);
  const t = now.toISOString().replace(/[-:T]/g, "").slice(0, 14);
  return `txfn_replay_${src}_${t}_${randomBytes(2).toString("hex")}`;
}

/**
 * Creates the scratch database on the source's cluster (CREATE DATABASE … TEMPLATE template0,
 * needs CREATEDB), or checks that `target` is an existing database without a txfn schema.
 * @throws ReplayError naming what is missing.
 */
export async function openScratch(sourceUrl: string, target?: string): Promise<Scratch> {
  const c = new pg.Client({ connectionString: sourceUrl, application_name: "txfn-replay" });
  await c.connect();
  try {
    const su = await c.query<{ s: boolean }>("SELECT rolsuper AS s FROM pg_roles WHERE rolname = current_user");
    if (target) {
      const t = new pg.Client({ connectionString: target, application_name: "txfn-replay" });
      await t.connect().catch((e: Error) => {
        throw new ReplayError(`cannot connect to --target: ${e.message}`);
      });
      try {
        const r = await t.query<{ n: string | null }>("SELECT to_regnamespace('txfn')::text AS n");
        if (r.rows[0]?.n) throw new ReplayError("--target already has a txfn schema", "give an empty database: replay restores the application's schema into it");
      } finally {
        await t.end();
      }
      return { name: databaseOf(target), url: target, created: false, sameCluster: false };
    }
    const name = scratchName(databaseOf(sourceUrl));
    try {
      await c.query(`CREATE DATABASE ${c.escapeIdentifier(name)} TEMPLATE template0`);
    } catch (e) {
      throw new ReplayError(`cannot create the scratch database: ${(e as Error).message}`, "grant CREATEDB to this role, or give --target <url> of an empty database");
    }
    return { name, url: withDatabase(sourceUrl, name), created: true, sameCluster: su.rows[0]?.s === true };
  } finally {
    await c.end();
  }
}

/** Drops a scratch database replay created (terminating its sessions); a no-op for --target. */
export async function dropScratch(sourceUrl: string, scratch: Scratch): Promise<void> {
  if (!scratch.created) return;
  const c = new pg.Client({ connectionString: sourceUrl, application_name: "txfn-replay" });
  await c.connect();
  try {
    await c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(scratch.name)} WITH (FORCE)`);
  } finally {
    await c.end();
  }
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(pgBinDir(), cmd), args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve(out) : reject(new ReplayError(`${cmd} failed (exit ${code}): ${err.trim()}`))));
  });
}

/**
 * pg_dump of the source in the exported snapshot `snapshotId` (its exporting transaction must
 * stay open until this returns): the schema of everything, the rows of every table outside txfn.
 */
export async function dumpSource(sourceUrl: string, snapshotId: string, file: string): Promise<void> {
  await run("pg_dump", [
    `--dbname=${sourceUrl}`, "--format=custom", "--compress=0", `--snapshot=${snapshotId}`,
    "--exclude-table-data=txfn.*", "--no-publications", "--no-subscriptions", `--file=${file}`,
  ]);
}

/** Restores one section of the dump into the scratch database (without owners and event triggers on a foreign target). */
export async function restoreSection(scratch: Scratch, file: string, section: "pre-data" | "data" | "post-data", listFile: string): Promise<void> {
  const args = [`--dbname=${scratch.url}`, `--section=${section}`, "--exit-on-error", "--single-transaction"];
  if (!scratch.sameCluster) {
    const toc = await run("pg_restore", ["--list", file]);
    writeFileSync(listFile, toc.split("\n").filter((l) => !/ EVENT TRIGGER /.test(l)).join("\n"));
    args.push("--no-owner", "--no-privileges", `--use-list=${listFile}`);
  }
  await run("pg_restore", [...args, file]);
}

/** Reads the txfn rows the scratch database needs, in the caller's snapshot. */
export async function readSystemRows(c: pg.ClientBase, versions: number[]): Promise<SystemRows> {
  const json = async (sql: string, params: unknown[] = []) => (await c.query<{ j: string }>(sql, params)).rows[0]!.j;
  const exists = async (t: string) => (await c.query<{ r: string | null }>("SELECT to_regclass($1)::text AS r", [t])).rows[0]!.r !== null;
  const max = await c.query<{ v: number | null; i: string | null }>(
    "SELECT (SELECT max(version) FROM txfn.bundles) AS v, (SELECT max(id)::text FROM txfn.invocations) AS i",
  );
  return {
    bundles: await json("SELECT coalesce(jsonb_agg(b), '[]')::text AS j FROM txfn.bundles b WHERE version = ANY($1::int[]) OR active", [versions]),
    registry: await json("SELECT coalesce(jsonb_agg(t), '[]')::text AS j FROM txfn.provenance_tables t"),
    config: await json("SELECT coalesce(jsonb_agg(t), '[]')::text AS j FROM txfn.provenance_config t"),
    migrations: (await exists("txfn.migrations")) ? await json("SELECT coalesce(jsonb_agg(t), '[]')::text AS j FROM txfn.migrations t") : null,
    appMigrations: (await exists("txfn.app_migrations")) ? await json("SELECT coalesce(jsonb_agg(t), '[]')::text AS j FROM txfn.app_migrations t") : null,
    maxVersion: max.rows[0]?.v ?? 0,
    maxInvocationId: max.rows[0]?.i ?? "0",
  };
}

/** Writes the txfn rows into the scratch database and moves its identity sequences past the source's. */
export async function copySystemRows(c: pg.ClientBase, rows: SystemRows): Promise<void> {
  await c.query("INSERT INTO txfn.bundles OVERRIDING SYSTEM VALUE SELECT * FROM jsonb_populate_recordset(NULL::txfn.bundles, $1::jsonb)", [rows.bundles]);
  // Registry ids are what the recorded changes (and the restored triggers' arguments) name; relids are this database's.
  await c.query(
    "INSERT INTO txfn.provenance_tables OVERRIDING SYSTEM VALUE SELECT r.* FROM jsonb_array_elements($1::jsonb) j, " +
      "jsonb_populate_record(NULL::txfn.provenance_tables, j || jsonb_build_object('relid', CASE WHEN j->>'relid' IS NOT NULL " +
      "THEN to_regclass(format('%I.%I', j->>'schema_name', j->>'table_name'))::oid END)) r",
    [rows.registry],
  );
  await c.query("DELETE FROM txfn.provenance_config");
  await c.query(
    "INSERT INTO txfn.provenance_config SELECT * FROM jsonb_populate_recordset(NULL::txfn.provenance_config, $1::jsonb)",
    [rows.config],
  );
  await c.query("UPDATE txfn.provenance_config SET pruned_max_xid = NULL, pruned_max_time = NULL");
  if (rows.migrations) await c.query("INSERT INTO txfn.migrations SELECT * FROM jsonb_populate_recordset(NULL::txfn.migrations, $1::jsonb)", [rows.migrations]);
  if (rows.appMigrations) {
    await c.query("INSERT INTO txfn.app_migrations SELECT * FROM jsonb_populate_recordset(NULL::txfn.app_migrations, $1::jsonb)", [rows.appMigrations]);
  }
  const bump = async (table: string, column: string, value: string | number) => {
    if (value === 0 || value === "0") return;
    await c.query(`SELECT setval(pg_get_serial_sequence($1, $2), $3::bigint)`, [table, column, String(value)]);
  };
  await bump("txfn.bundles", "version", rows.maxVersion);
  await bump("txfn.invocations", "id", rows.maxInvocationId);
  await c.query("SELECT setval(pg_get_serial_sequence('txfn.provenance_tables', 'id'), max(id)) FROM txfn.provenance_tables HAVING max(id) IS NOT NULL");
  for (const t of ["txfn.migrations", "txfn.app_migrations"]) {
    if (t === "txfn.migrations" && !rows.migrations) continue;
    if (t === "txfn.app_migrations" && !rows.appMigrations) continue;
    await c.query(`SELECT setval(pg_get_serial_sequence($1, 'id'), max(id)) FROM ${t} HAVING max(id) IS NOT NULL`, [t]);
  }
}

function rel(c: pg.ClientBase, t: TableInfo): string {
  return `${c.escapeIdentifier(t.schema)}.${c.escapeIdentifier(t.name)}`;
}

/** Columns an INSERT may name (generated columns and `except` excluded), quoted. */
async function insertableColumns(c: pg.ClientBase, table: string, except: string[] = []): Promise<string[]> {
  const r = await c.query<{ a: string }>(
    "SELECT quote_ident(attname) AS a FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = '' " +
      "AND NOT (attname::text = ANY($2::text[])) ORDER BY attnum",
    [table, except],
  );
  return r.rows.map((x) => x.a);
}

/**
 * Takes back, in the scratch database (before post-data: no triggers, no constraints but
 * CHECK/NOT NULL), every change the base does not see; rewinds owned sequences.
 * @returns the number of rows written.
 */
export async function applyUndo(c: pg.ClientBase, rec: Recording): Promise<number> {
  let written = 0;
  await c.query("BEGIN");
  try {
    await c.query("CREATE TEMP TABLE txfn_undo (table_id integer, k jsonb, base jsonb) ON COMMIT DROP");
    for (let i = 0; i < rec.keyedUndo.length; i += 5000) {
      const part = rec.keyedUndo.slice(i, i + 5000);
      await c.query("INSERT INTO txfn_undo SELECT * FROM unnest($1::int[], $2::jsonb[], $3::jsonb[])", [
        part.map((u) => u.tableId), part.map((u) => u.key), part.map((u) => u.base),
      ]);
    }
    for (const id of new Set(rec.keyedUndo.map((u) => u.tableId))) {
      const t = rec.tables.get(id);
      if (!t?.exists) continue;
      const name = rel(c, t);
      const cols = await insertableColumns(c, name, t.addedSince); // columns added since the trace: their defaults
      const on = t.keyColumns.map((k) => `t.${c.escapeIdentifier(k)} = x.${c.escapeIdentifier(k)}`).join(" AND ");
      const d = await c.query(
        `DELETE FROM ${name} t USING (SELECT r.* FROM txfn_undo u, jsonb_populate_record(NULL::${name}, u.k) r WHERE u.table_id = $1) x WHERE ${on}`,
        [id],
      );
      const ins = await c.query(
        `INSERT INTO ${name} (${cols.join(", ")}) OVERRIDING SYSTEM VALUE SELECT ${cols.map((x) => `r.${x}`).join(", ")} ` +
          `FROM txfn_undo u, jsonb_populate_record(NULL::${name}, u.base) r WHERE u.table_id = $1 AND u.base IS NOT NULL`,
        [id],
      );
      written += (d.rowCount ?? 0) + (ins.rowCount ?? 0);
    }
    for (const m of rec.multisetUndo) {
      const t = rec.tables.get(m.tableId);
      if (!t?.exists) continue;
      const name = rel(c, t);
      if (m.delta > 0) {
        const d = await c.query(
          `DELETE FROM ${name} WHERE ctid IN (SELECT ctid FROM ${name} t WHERE (to_jsonb(t) - $3::text[]) = $1::jsonb LIMIT $2)`,
          [m.row, m.delta, t.addedSince ?? []],
        );
        written += d.rowCount ?? 0;
      } else {
        const cols = await insertableColumns(c, name, t.addedSince);
        const ins = await c.query(
          `INSERT INTO ${name} (${cols.join(", ")}) OVERRIDING SYSTEM VALUE SELECT ${cols.map((x) => `r.${x}`).join(", ")} ` +
            `FROM jsonb_populate_record(NULL::${name}, $1::jsonb) r, generate_series(1, $2)`,
          [m.row, -m.delta],
        );
        written += ins.rowCount ?? 0;
      }
    }
    for (const s of rec.sequences) {
      await c.query("SELECT setval($1::regclass, $2::bigint, false)", [s.sequence, s.next]);
    }
    await c.query("COMMIT");
  } catch (err) {
    await c.query("ROLLBACK").catch(() => {});
    throw err;
  }
  return written;
}

/**
 * Makes every table of the scratch database UNLOGGED (before the data section: the tables are
 * still empty, so the switch rewrites nothing, and no foreign key exists yet — a logged table
 * may not reference an unlogged one). The scratch database is thrown away: its writes need no
 * WAL (visibility, locking and constraints are the same). Extension members are left alone.
 * Only for a database replay created and drops: a kept one (--keep, --until) would lose its
 * rows in a server crash.
 */
export async function unlogTables(c: pg.ClientBase): Promise<number> {
  const r = await c.query<{ t: string }>(
    "SELECT format('%I.%I', n.nspname, c.relname) AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace " +
      "WHERE c.relkind = 'r' AND c.relpersistence = 'p' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' " +
      "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')",
  );
  if (r.rows.length === 0) return 0;
  await c.query(`BEGIN; ${r.rows.map((x) => `ALTER TABLE ${x.t} SET UNLOGGED;`).join(" ")} COMMIT`);
  return r.rows.length;
}

/**
 * Drops the indexes of txfn.invocations and txfn.provenance that neither the runtime nor replay
 * uses (not unique, no constraint: e.g. provenance's hash index on key, for `txfn history`; the
 * BRIN index on started_at, for time ranges): every replayed invocation and change would pay
 * an insertion into each. Unique indexes stay (the runtime's ON CONFLICT and the comparison's
 * reads by id and xid use them). Only for a scratch database that is thrown away.
 * @returns the indexes dropped.
 */
export async function dropUnusedIndexes(c: pg.ClientBase): Promise<string[]> {
  const r = await c.query<{ i: string }>(
    "SELECT i.indexrelid::regclass::text AS i FROM pg_index i WHERE i.indrelid IN ('txfn.invocations'::regclass, 'txfn.provenance'::regclass) " +
      "AND NOT i.indisunique AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)",
  );
  if (r.rows.length) await c.query(r.rows.map((x) => `DROP INDEX ${x.i};`).join(" "));
  return r.rows.map((x) => x.i);
}
