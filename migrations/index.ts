/**
 * Applying txfn's system schema and an application's migrations inside the caller's
 * transaction, and installing the in-database runtime (runtime-sql/).
 *
 * - System tables are node-pg-migrate migrations in migrations/system (table txfn.migrations).
 * - Application migrations are node-pg-migrate migrations of the function project
 *   (`<project>/migrations`, table txfn.app_migrations).
 * - The runtime functions are "repeatable" (Flyway's R__ idea): re-created whenever their
 *   text changes, detected by the runtime id kept in the comment of txfn._invoke.
 *
 * Deploy runs all of it in ONE transaction with the new bundle, so a failing migration leaves
 * the previous version active. node-pg-migrate's own BEGIN/COMMIT/ROLLBACK become a savepoint
 * (see `savepointClient`); migrations that opt out of transactions are refused.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { basename, extname } from "node:path";
import { fileURLToPath } from "node:url";
import { runner } from "node-pg-migrate";
import type pg from "pg";

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
export const SYSTEM_MIGRATIONS_DIR = here("./system");
const RUNTIME_JS = here("../runtime-sql/runtime.js");
const RUNTIME_SQL = here("../runtime-sql/invoke.sql");

/** A language that runs the runtime and the bundles. */
export type JsLanguage = "txv8" | "plv8";

export type Log = (message: string) => void;

/** Raised for a migration that failed; `migration` names the file when known. */
export class MigrationError extends Error {
  override name = "MigrationError";
}

/**
 * A view of `client` for node-pg-migrate that nests its transaction in ours: BEGIN/COMMIT/
 * ROLLBACK become SAVEPOINT/RELEASE/ROLLBACK TO. A migration that calls `pgm.noTransaction()`
 * (its SQL then carries its own COMMIT/BEGIN) is refused: deploy must stay atomic.
 */
function savepointClient(client: pg.ClientBase, name: string): pg.ClientBase {
  const rewrite: Record<string, string> = {
    BEGIN: `SAVEPOINT ${name}`,
    COMMIT: `RELEASE SAVEPOINT ${name}`,
    ROLLBACK: `ROLLBACK TO SAVEPOINT ${name}`,
  };
  const query = (textOrConfig: string | pg.QueryConfig, values?: unknown[]) => {
    const text = typeof textOrConfig === "string" ? textOrConfig : textOrConfig.text;
    const mapped = rewrite[text.trim().toUpperCase()];
    if (mapped) return client.query(mapped);
    if (/^\s*(BEGIN|COMMIT|ROLLBACK)\s*;/im.test(text)) {
      return Promise.reject(
        new MigrationError("a migration asked to run outside a transaction (pgm.noTransaction()); txfn deploys are one transaction"),
      );
    }
    return client.query(textOrConfig as string, values);
  };
  return new Proxy(client, { get: (target, prop) => (prop === "query" ? query : Reflect.get(target, prop)) });
}

/**
 * node-pg-migrate's logger, quiet: its progress lines ("> Migrating files", "> Rolling back
 * attempted migration ...", "#> WARNING: Need to break single transaction! <") and its errors
 * all come with an outcome or a thrown error that txfn reports in its own words; any other
 * warning goes to `log`.
 */
function quietLogger(log: Log, running: { name?: string }) {
  const none = () => {};
  // "### MIGRATION <name> (UP) ###" is how node-pg-migrate announces each migration: kept to name a failing one.
  const info = (message: string) => {
    const m = /^### MIGRATION (.+) \(UP\) ###$/.exec(message);
    if (m) running.name = m[1];
  };
  return { debug: none, info, error: none, warn: (message: string) => (/^#?> /.test(message) ? undefined : log(`warning: ${message}`)) };
}

/** Migration names of `dir` as node-pg-migrate names them: file names without extension, dot-files left out. */
function migrationNames(dir: string): string[] {
  try {
    return readdirSync(dir).filter((f) => !f.startsWith(".")).map((f) => basename(f, extname(f)));
  } catch {
    return [];
  }
}

/**
 * What node-pg-migrate's "Not run migration A is preceding already run migration B" means here:
 * the history table lists B at a place where the folder has A, which has not run.
 */
function outOfOrder(dir: string, table: string, pending: string, ran: string): string {
  const history = `txfn.${table}`;
  const list = `SELECT name, run_on FROM ${history} ORDER BY id`;
  if (table === "migrations") {
    return (
      `txfn's system migration ${pending} has not run in this database, yet ${ran}, which comes after it, has (${history}): ` +
      `the txfn schema here was set up by another txfn version; deploy with that version or a newer one (${list})`
    );
  }
  if (!migrationNames(dir).includes(ran)) {
    return (
      `this database's migration history (${history}) belongs to another project: migration ${ran} ran here and ${dir} has no such ` +
      `migration, while its own ${pending} has not run. Deploy each project into a database of its own (create one and ` +
      `point DATABASE_URL at it), or make them one project with one migrations folder (${list})`
    );
  }
  return (
    `migration ${pending} has not run in this database, but it sorts before ${ran}, which already ran (${history}): the order ` +
    `changed (a migration added, or renamed, with an earlier number than one already run). Give ${pending} a number after the ` +
    `last migration run — migrations run in file-name order and each once (${list})`
  );
}

/**
 * Applies the pending migrations of `dir` inside the caller's open transaction.
 * @returns the names of the migrations applied (empty when none was pending).
 * @throws MigrationError naming the migration and the database's message.
 */
export async function migrateInTransaction(
  client: pg.ClientBase,
  options: { dir: string; table: string; log?: Log },
): Promise<string[]> {
  const log = options.log ?? (() => {});
  const running: { name?: string } = {};
  try {
    const applied = await runner({
      dbClient: savepointClient(client, "txfn_migrations") as pg.Client,
      dir: options.dir,
      migrationsSchema: "txfn",
      createMigrationsSchema: true,
      migrationsTable: options.table,
      direction: "up",
      singleTransaction: true,
      noLock: true, // deploy holds a transaction-level advisory lock instead
      checkOrder: true,
      logger: quietLogger(log, running),
    });
    return applied.map((m) => m.name);
  } catch (err) {
    if (err instanceof MigrationError) throw err;
    const e = err as Error & { detail?: string };
    const order = /^Not run migration (.+) is preceding already run migration (.+)$/.exec(e.message ?? "");
    if (order) throw new MigrationError(outOfOrder(options.dir, options.table, order[1]!, order[2]!));
    const which = running.name ? `migration ${running.name} failed (${options.dir})` : `migration failed (${options.dir})`;
    throw new MigrationError(`${which}: ${e.message}${e.detail ? ` (${e.detail})` : ""}`);
  }
}

/**
 * The JS language to install functions in: txv8 when it exists (or can be created), else plv8.
 * @throws Error when neither is installed nor available to CREATE EXTENSION.
 */
export async function ensureLanguage(client: pg.ClientBase): Promise<JsLanguage> {
  const have = await client.query<{ lanname: string }>("SELECT lanname FROM pg_language WHERE lanname IN ('txv8', 'plv8')");
  const names = have.rows.map((r) => r.lanname);
  if (names.includes("txv8")) return "txv8";
  if (names.includes("plv8")) return "plv8";
  const avail = await client.query<{ name: string }>("SELECT name FROM pg_available_extensions WHERE name IN ('txv8', 'plv8')");
  const ext = avail.rows.map((r) => r.name).sort().reverse()[0]; // txv8 before plv8
  if (!ext) throw new Error("neither txv8 nor plv8 is installed in this PostgreSQL (run scripts/setup, or install plv8)");
  await client.query(`CREATE EXTENSION IF NOT EXISTS ${ext}`);
  return ext as JsLanguage;
}

/** Identity of the runtime sources: changes whenever runtime.js or invoke.sql changes. */
export function runtimeId(): string {
  const h = createHash("sha256");
  h.update(readFileSync(RUNTIME_JS));
  h.update(readFileSync(RUNTIME_SQL));
  return h.digest("hex").slice(0, 16);
}

/**
 * Body of a txv8/plv8 function that runs `call` on the runtime, evaluating runtime.js once per
 * JS context (cached on globalThis under the runtime id, so a new runtime replaces an old one).
 */
export function runtimeFunctionBody(id: string, call: string): string {
  const factory = readFileSync(RUNTIME_JS, "utf8");
  return [
    "var rt = globalThis.__txfnRuntime;",
    `if (rt === undefined || rt.id !== ${JSON.stringify(id)}) {`,
    `  rt = globalThis.__txfnRuntime = (\n${factory}\n)(plv8, ${JSON.stringify(id)});`,
    "}",
    `return rt.${call};`,
  ].join("\n");
}

/**
 * (Re)installs the runtime functions when their text changed. Must run inside a transaction
 * after the system migrations.
 * @returns true when it installed, false when the installed runtime was current.
 */
export async function installRuntime(client: pg.ClientBase, language: JsLanguage): Promise<boolean> {
  const id = runtimeId();
  const marker = `txfn runtime ${id} (${language})`;
  const cur = await client.query<{ comment: string | null }>(
    "SELECT obj_description(to_regprocedure('txfn._invoke(text,text,text,text)'), 'pg_proc') AS comment",
  );
  if (cur.rows[0]?.comment === marker) return false;
  const lang = client.escapeIdentifier(language);
  await client.query(
    `CREATE OR REPLACE FUNCTION txfn._invoke(fn text, input text, idempotency_key text, options text) RETURNS text ` +
      `LANGUAGE ${lang} VOLATILE AS ${client.escapeLiteral(runtimeFunctionBody(id, "invoke(fn, input, idempotency_key, options)"))}`,
  );
  await client.query(
    `CREATE OR REPLACE FUNCTION txfn._bundle_functions(version integer) RETURNS text ` +
      `LANGUAGE ${lang} VOLATILE AS ${client.escapeLiteral(runtimeFunctionBody(id, "bundleFunctions(version)"))}`,
  );
  // readOnly bodies run inside this call (see runReadOnly in runtime.js).
  await client.query(
    `CREATE OR REPLACE FUNCTION txfn._read_only_call() RETURNS text LANGUAGE ${lang} VOLATILE ` +
      `SET transaction_read_only = on AS ${client.escapeLiteral(runtimeFunctionBody(id, "runPendingReadOnly()"))}`,
  );
  await client.query(readFileSync(RUNTIME_SQL, "utf8"));
  await client.query(`COMMENT ON FUNCTION txfn._invoke(text, text, text, text) IS ${client.escapeLiteral(marker)}`);
  return true;
}

/** Queues deploys, rollbacks and migrations behind each other (a transaction-level advisory lock). */
export async function lockDeploys(client: pg.ClientBase): Promise<void> {
  await client.query("SELECT pg_advisory_xact_lock(hashtext('txfn: schema and deploy'))");
}

/**
 * Brings the txfn schema up to date inside the caller's transaction: language, system
 * migrations, runtime functions. Takes a transaction-level advisory lock so concurrent
 * deploys/migrations queue instead of interleaving.
 */
export async function ensureSystemSchema(client: pg.ClientBase, log?: Log): Promise<{ language: JsLanguage; applied: string[] }> {
  await lockDeploys(client);
  const language = await ensureLanguage(client);
  const applied = await migrateInTransaction(client, { dir: SYSTEM_MIGRATIONS_DIR, table: "migrations", ...(log ? { log } : {}) });
  await installRuntime(client, language);
  return { language, applied };
}

/** Applies a function project's own migrations (`<project>/migrations`) when the folder exists. */
export async function migrateApp(client: pg.ClientBase, dir: string | undefined, log?: Log): Promise<string[]> {
  if (!dir || !existsSync(dir)) return [];
  return migrateInTransaction(client, { dir, table: "app_migrations", ...(log ? { log } : {}) });
}
