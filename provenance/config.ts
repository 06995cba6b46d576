/**
 * Provenance settings (txfn.provenance_config) and status: which tables are captured, with
 * which key, and the DDL event trigger. Changing a setting re-syncs capture in the same
 * transaction.
 */
import pg from "pg";
import { ProvenanceError } from "./changes.ts";
import { EVENT_TRIGGER, installCapture, type SyncedTable } from "./install.ts";

export interface ProvenanceConfig {
  /** Capture on at all. */
  enabled: boolean;
  /** Globs on schema.table ('*' any run, '?' one character; a bare name is a schema). */
  include: string[];
  exclude: string[];
  /** TRUNCATE of a captured table: record every removed row, or refuse (SQLSTATE TXF20). */
  truncate: "record" | "refuse";
  /** Prune never removes changes younger than this (PostgreSQL interval text), or null. */
  retention: string | null;
  /** Read provenance: the SQL, parameters and row count of each query an invocation runs. */
  captureReads: boolean;
}

export interface CapturedTable {
  id: number;
  table: string;
  keyColumns: string[];
  captured: boolean;
  capturedSince: Date | null;
  droppedAt: Date | null;
}

/** Which row trigger function captures changes (provenance/README.md "Capture in C"). */
export interface CaptureTriggerStatus {
  /** Version of the txfn_capture extension installed in the database, or null. */
  extension: string | null;
  /** Tables whose row trigger is the C txfn._provenance_capture_c(). */
  c: number;
  /** Tables whose row trigger is the PL/pgSQL txfn._provenance_capture(). */
  plpgsql: number;
}

export interface ProvenanceStatus {
  config: ProvenanceConfig;
  /** The DDL event trigger exists and fires (also in replica mode). */
  eventTrigger: boolean;
  captureTrigger: CaptureTriggerStatus;
  tables: CapturedTable[];
  /** Captured changes and the table's size with its indexes, bytes. */
  changes: number;
  bytes: number;
}

const CONFIG_KEYS: (keyof ProvenanceConfig)[] = ["enabled", "include", "exclude", "truncate", "retention", "captureReads"];

/** Reads the settings, registry and size. @throws ProvenanceError when provenance is not installed. */
export async function provenanceStatus(url: string): Promise<ProvenanceStatus> {
  return withClient(url, async (c) => {
    const config = await readConfig(c);
    const ev = await c.query<{ on: boolean }>("SELECT evtenabled IN ('O', 'A') AS on FROM pg_event_trigger WHERE evtname = $1", [EVENT_TRIGGER]);
    const t = await c.query(
      "SELECT id, schema_name || '.' || table_name AS t, key_columns, captured, captured_since, dropped_at FROM txfn.provenance_tables ORDER BY 2, id",
    );
    // the tables' own row triggers (partitions' clones follow their root)
    const trg = await c.query<{ extension: string | null; c: number; plpgsql: number }>(
      "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'txfn_capture') AS extension, " +
        "count(*) FILTER (WHERE g.tgfoid = to_regprocedure('txfn._provenance_capture_c()'))::int AS c, " +
        "count(*) FILTER (WHERE g.tgfoid = to_regprocedure('txfn._provenance_capture()'))::int AS plpgsql " +
        "FROM pg_trigger g WHERE g.tgname = 'txfn_provenance' AND g.tgparentid = 0",
    );
    const size = await c.query<{ n: string; bytes: string }>(
      "SELECT (SELECT reltuples::bigint FROM pg_class WHERE oid = 'txfn.provenance'::regclass) AS n, pg_total_relation_size('txfn.provenance') AS bytes",
    );
    return {
      config,
      eventTrigger: ev.rows[0]?.on === true,
      captureTrigger: trg.rows[0]!,
      tables: t.rows.map((r) => ({
        id: r.id,
        table: r.t,
        keyColumns: r.key_columns,
        captured: r.captured,
        capturedSince: r.captured_since,
        droppedAt: r.dropped_at,
      })),
      changes: Math.max(0, Number(size.rows[0]!.n)),
      bytes: Number(size.rows[0]!.bytes),
    };
  });
}

/**
 * Changes settings (only the keys given) and re-syncs capture, in one transaction.
 * @returns the new settings and the sync's tables.
 * @throws ProvenanceError for unknown keys or bad values (naming them).
 */
export async function configure(url: string, change: Partial<ProvenanceConfig>): Promise<{ config: ProvenanceConfig; tables: SyncedTable[]; warnings: string[] }> {
  const unknown = Object.keys(change).filter((k) => !CONFIG_KEYS.includes(k as keyof ProvenanceConfig));
  if (unknown.length) throw new ProvenanceError(`unknown provenance setting(s) ${unknown.join(", ")} (known: ${CONFIG_KEYS.join(", ")})`);
  if (change.truncate !== undefined && change.truncate !== "record" && change.truncate !== "refuse") {
    throw new ProvenanceError(`truncate must be record or refuse, got ${JSON.stringify(change.truncate)}`);
  }
  for (const k of ["include", "exclude"] as const) {
    const v = change[k];
    if (v !== undefined && (!Array.isArray(v) || v.some((g) => typeof g !== "string" || g.trim() === ""))) {
      throw new ProvenanceError(`${k} must be a list of non-empty globs (schema.table, * and ?), got ${JSON.stringify(v)}`);
    }
  }
  return withClient(url, async (c) => {
    await requireInstalled(c);
    await c.query("BEGIN");
    try {
      const sets: string[] = [];
      const params: unknown[] = [];
      const set = (col: string, value: unknown, cast = "") => {
        params.push(value);
        sets.push(`${col} = $${params.length}${cast}`);
      };
      if (change.enabled !== undefined) set("enabled", change.enabled);
      if (change.include !== undefined) set("include", change.include, "::text[]");
      if (change.exclude !== undefined) set("exclude", change.exclude, "::text[]");
      if (change.truncate !== undefined) set("truncate", change.truncate);
      if (change.retention !== undefined) set("retention", change.retention, "::interval");
      if (change.captureReads !== undefined) set("capture_reads", change.captureReads);
      if (sets.length) {
        try {
          await c.query(`UPDATE txfn.provenance_config SET ${sets.join(", ")}`, params);
        } catch (err) {
          const e = err as { code?: string; message: string };
          if (e.code === "22007" || e.code === "22P02" || e.code === "23514") throw new ProvenanceError(`bad provenance setting: ${e.message}`);
          throw err;
        }
      }
      const r = await installCapture(c);
      const config = await readConfig(c);
      await c.query("COMMIT");
      return { config, tables: r.tables, warnings: r.warnings };
    } catch (err) {
      await c.query("ROLLBACK").catch(() => {});
      throw err;
    }
  });
}

/** Re-syncs capture with the tables now (what deploy and the DDL event trigger do). */
export async function syncCapture(url: string): Promise<{ tables: SyncedTable[]; warnings: string[] }> {
  return withClient(url, async (c) => {
    await requireInstalled(c);
    await c.query("BEGIN");
    try {
      const r = await installCapture(c);
      await c.query("COMMIT");
      return { tables: r.tables, warnings: r.warnings };
    } catch (err) {
      await c.query("ROLLBACK").catch(() => {});
      throw err;
    }
  });
}

/** @throws ProvenanceError when the provenance tables are missing (nothing deployed yet). */
async function requireInstalled(c: pg.ClientBase): Promise<void> {
  const r = await c.query<{ ok: boolean }>("SELECT to_regclass('txfn.provenance_config') IS NOT NULL AS ok");
  if (!r.rows[0]?.ok) throw new ProvenanceError("provenance is not installed in this database", "txfn deploy <dir> installs it");
}

async function readConfig(c: pg.ClientBase): Promise<ProvenanceConfig> {
  try {
    const r = await c.query(
      "SELECT enabled, include, exclude, truncate, retention::text AS retention, capture_reads FROM txfn.provenance_config",
    );
    const row = r.rows[0];
    return {
      enabled: row.enabled,
      include: row.include,
      exclude: row.exclude,
      truncate: row.truncate,
      retention: row.retention,
      captureReads: row.capture_reads,
    };
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "42P01" || code === "3F000") throw new ProvenanceError("provenance is not installed in this database", "txfn deploy <dir> installs it");
    throw err;
  }
}

async function withClient<T>(url: string, body: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url, application_name: "txfn-provenance" });
  await c.connect();
  try {
    return await body(c);
  } finally {
    await c.end();
  }
}
