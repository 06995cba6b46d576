/**
 * Installing provenance capture in a database: the functions of runtime-sql/provenance.sql
 * (re-created when their text changes), the DDL event trigger that keeps capture in step with
 * tables created or altered outside txfn, and a sync of the triggers with the tables.
 *
 * Deploy calls `installCapture` twice in its one transaction: before the project's migrations
 * (so tables they create are captured from their first row) and after them (sync + warnings).
 * Where this PostgreSQL has the txfn_capture extension (capture/, the row trigger in C) and the
 * deployer is a superuser, it is created and the sync installs its trigger instead of the
 * PL/pgSQL one.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type pg from "pg";

const PROVENANCE_SQL = fileURLToPath(new URL("../runtime-sql/provenance.sql", import.meta.url));

/** Name of the ddl_command_end event trigger. */
export const EVENT_TRIGGER = "txfn_provenance_ddl";

/** DDL that can add, alter, rename or drop a table, or touch capture's triggers. */
export const EVENT_TRIGGER_TAGS = [
  "CREATE TABLE",
  "CREATE TABLE AS",
  "SELECT INTO",
  "ALTER TABLE",
  "DROP TABLE",
  "CREATE SCHEMA",
  "ALTER SCHEMA",
  "DROP SCHEMA",
  "DROP TRIGGER",
  "ALTER TRIGGER",
  "DROP OWNED",
  // txfn_capture (the C row trigger) created or dropped: the sync switches the triggers to it or back
  "CREATE EXTENSION",
  "DROP EXTENSION",
];

/** The extension with the C row trigger (capture/); the PL/pgSQL trigger is used without it. */
export const CAPTURE_EXTENSION = "txfn_capture";

/** One table as the last sync left it. */
export interface SyncedTable {
  tableId: number;
  /** schema.table */
  table: string;
  /** Primary key columns in order; empty = no primary key (the whole row is the key). */
  keyColumns: string[];
  /** installed | updated | enabled | unchanged | removed (no longer captured) | dropped */
  action: string;
  /** Set for a captured table without primary key. */
  warning: string | null;
}

export interface InstallResult {
  /** true when the capture functions were (re)created. */
  installedFunctions: boolean;
  /** Version of the txfn_capture extension installed in the database (its C row trigger is used), or null. */
  captureExtension: string | null;
  /** true when the DDL event trigger exists and is enabled. */
  eventTrigger: boolean;
  /** Sync result (empty when `sync: false`). */
  tables: SyncedTable[];
  /** Warnings for the person deploying (no primary key, no event trigger). */
  warnings: string[];
}

/** Identity of the capture functions: changes whenever runtime-sql/provenance.sql changes. */
export function captureId(): string {
  return createHash("sha256").update(readFileSync(PROVENANCE_SQL)).digest("hex").slice(0, 16);
}

/**
 * Installs or refreshes capture inside the caller's open transaction (after the system
 * migrations). Idempotent; cheap when nothing changed (no DDL is run then).
 * @param options.sync run txfn.provenance_sync() and report its tables (default true).
 * @throws the database error when a step fails (the caller's transaction is then aborted).
 */
export async function installCapture(client: pg.ClientBase, options: { sync?: boolean } = {}): Promise<InstallResult> {
  const warnings: string[] = [];
  const id = captureId();
  const marker = `txfn provenance ${id}`;
  const cur = await client.query<{ comment: string | null }>(
    "SELECT obj_description(to_regprocedure('txfn.provenance_sync()'), 'pg_proc') AS comment",
  );
  const installedFunctions = cur.rows[0]?.comment !== marker;
  if (installedFunctions) {
    await client.query(readFileSync(PROVENANCE_SQL, "utf8"));
    await client.query(`COMMENT ON FUNCTION txfn.provenance_sync() IS ${client.escapeLiteral(marker)}`);
  }

  const eventTrigger = await ensureEventTrigger(client, warnings);
  const captureExtension = await ensureCaptureExtension(client, warnings);
  const tables: SyncedTable[] = [];
  if (options.sync !== false) {
    const r = await client.query<{ table_id: number; table_name: string; key_columns: string[]; action: string; warning: string | null }>(
      "SELECT * FROM txfn.provenance_sync()",
    );
    for (const row of r.rows) {
      tables.push({ tableId: row.table_id, table: row.table_name, keyColumns: row.key_columns, action: row.action, warning: row.warning });
      if (row.warning) warnings.push(`${row.warning} (add one, or exclude it: txfn provenance config --exclude ${row.table_name})`);
    }
  }
  return { installedFunctions, captureExtension, eventTrigger, tables, warnings };
}

/**
 * Creates the txfn_capture extension (superuser only) when this PostgreSQL has it and the
 * database does not; without it capture keeps the PL/pgSQL row trigger (same rows, ~3x the
 * cost per change). @returns the installed version, or null.
 */
async function ensureCaptureExtension(client: pg.ClientBase, warnings: string[]): Promise<string | null> {
  const r = await client.query<{ installed: string | null; available: string | null; superuser: boolean }>(
    "SELECT (SELECT extversion FROM pg_extension WHERE extname = $1) AS installed, " +
      "(SELECT default_version FROM pg_available_extensions WHERE name = $1) AS available, " +
      "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser",
    [CAPTURE_EXTENSION],
  );
  const row = r.rows[0]!;
  if (row.installed !== null || row.available === null) return row.installed;
  if (!row.superuser) {
    warnings.push(
      `provenance: the C capture trigger (extension ${CAPTURE_EXTENSION}) is available but creating it needs a superuser: ` +
        `capture uses the PL/pgSQL trigger (same rows, about 3x the cost per change); a superuser can run CREATE EXTENSION ${CAPTURE_EXTENSION}`,
    );
    return null;
  }
  await client.query(`CREATE EXTENSION IF NOT EXISTS ${CAPTURE_EXTENSION}`);
  return row.available;
}

/** Creates (superuser only) or re-enables the DDL event trigger; adds a warning when it cannot. */
async function ensureEventTrigger(client: pg.ClientBase, warnings: string[]): Promise<boolean> {
  const r = await client.query<{ evtenabled: string | null; tags: string[] | null; superuser: boolean }>(
    "SELECT e.evtenabled, e.evttags AS tags, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser " +
      "FROM (SELECT 1) one LEFT JOIN pg_event_trigger e ON e.evtname = $1",
    [EVENT_TRIGGER],
  );
  const row = r.rows[0]!;
  const sameTags = row.tags !== null && row.tags.length === EVENT_TRIGGER_TAGS.length && EVENT_TRIGGER_TAGS.every((t) => row.tags!.includes(t));
  if (row.evtenabled === "A" && sameTags) return true;
  if (!row.superuser) {
    warnings.push(
      row.evtenabled === null
        ? "provenance: no DDL event trigger (creating one needs a superuser): tables created or altered outside `txfn deploy` " +
            "are captured only at the next deploy or `txfn provenance sync`"
        : `provenance: the DDL event trigger ${EVENT_TRIGGER} is disabled or outdated and only a superuser can fix it`,
    );
    return row.evtenabled === "A" || row.evtenabled === "O";
  }
  if (row.evtenabled !== null) await client.query(`DROP EVENT TRIGGER ${EVENT_TRIGGER}`);
  const tags = EVENT_TRIGGER_TAGS.map((t) => client.escapeLiteral(t)).join(", ");
  await client.query(`CREATE EVENT TRIGGER ${EVENT_TRIGGER} ON ddl_command_end WHEN TAG IN (${tags}) EXECUTE FUNCTION txfn._provenance_on_ddl()`);
  // like the row triggers: also when session_replication_role = replica
  await client.query(`ALTER EVENT TRIGGER ${EVENT_TRIGGER} ENABLE ALWAYS`);
  return true;
}
