/**
 * Deploys, versions, rollback and the invocation log: the database side of the CLI.
 *
 * A deploy is ONE transaction: system schema and runtime brought up to date, the project's
 * migrations, the new bundle row, a load of the bundle in the database's own V8 (every manifest
 * function must be there), the SQL wrappers, and the switch of the active version. Anything that
 * fails rolls all of it back, so the previous version stays active (DESIGN "Versioned deploys").
 */
import pg from "pg";
import { dropStatements, sourcePosition, wrapperStatements, type Bundle, type Manifest } from "../bundler/index.ts";
import { ensureSystemSchema, lockDeploys, migrateApp, type Log } from "../migrations/index.ts";
import { isMissingSchema } from "./errors.ts";
import { installCapture } from "../provenance/install.ts";

export class DeployError extends Error {
  override name = "DeployError";
}

export interface DeployResult {
  version: number;
  previous: number | null;
  language: string;
  migrations: string[];
  functions: string[];
  /** true when the active version already had this exact code and manifest (no new version). */
  unchanged: boolean;
}

async function inTransaction<T>(url: string, body: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, application_name: "txfn-deploy" });
  await client.connect();
  try {
    await client.query("BEGIN");
    try {
      const out = await body(client);
      await client.query("COMMIT");
      return out;
    } catch (err) {
      await client.query("ROLLBACK").catch(() => {});
      throw err;
    }
  } finally {
    await client.end();
  }
}

interface Active {
  version: number;
  manifest: Manifest;
  /** The active bundle has this code (by hash) and manifest (jsonb equality). */
  same: boolean;
}

/** Runs `body` on a fresh connection; a database without the txfn schema reads as empty. */
async function readOrEmpty<T>(url: string, body: (c: pg.Client) => Promise<T[]>): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await body(client);
  } catch (err) {
    if (isMissingSchema(err)) return [];
    throw err;
  } finally {
    await client.end();
  }
}

async function activeVersion(c: pg.ClientBase, candidate?: Bundle): Promise<Active | null> {
  const r = await c.query<Active>(
    "SELECT version, manifest, (hash = $1 AND manifest = $2::jsonb) IS TRUE AS same FROM txfn.bundles WHERE active",
    [candidate?.hash ?? null, candidate ? JSON.stringify(candidate.manifest) : null],
  );
  return r.rows[0] ?? null;
}

/** Makes `version` the active one and its wrappers the app schema's; drops wrappers it lacks. */
async function activate(c: pg.ClientBase, version: number, manifest: Manifest, previous: Manifest | null): Promise<void> {
  for (const sql of dropStatements(previous, manifest)) await c.query(sql);
  for (const sql of wrapperStatements(manifest, version)) await c.query(sql);
  // Two statements: the partial unique index allows one active row at every moment.
  await c.query("UPDATE txfn.bundles SET active = false WHERE active");
  await c.query("UPDATE txfn.bundles SET active = true, activated_at = clock_timestamp() WHERE version = $1", [version]);
}

/**
 * Deploys a built bundle to the database at `url`.
 * @throws DeployError (the previous version stays active) naming the failing step.
 */
export async function deploy(url: string, bundle: Bundle, log: Log = () => {}): Promise<DeployResult> {
  return inTransaction(url, async (c) => {
    const { language } = await step("bringing the txfn schema up to date", () => ensureSystemSchema(c, log));
    // Provenance capture (provenance/README.md): its DDL event trigger is in place before the
    // project's migrations, so their tables are captured from the first row; then one sync.
    await step("installing provenance capture", () => installCapture(c, { sync: false }));
    const migrations = await step("applying the project's migrations", () => migrateApp(c, bundle.layout.migrationsDir, log));
    const capture = await step("bringing provenance capture in step with the tables", () => installCapture(c));
    for (const w of capture.warnings) log(`warning: ${w}`);
    const prior = await activeVersion(c, bundle);
    const functions = Object.keys(bundle.manifest.functions);
    if (prior?.same) {
      return { version: prior.version, previous: prior.version, language, migrations, functions, unchanged: true };
    }
    const ins = await c.query<{ version: number }>(
      "INSERT INTO txfn.bundles (code, source_map, manifest, app_schema, language, hash, size_bytes) " +
        "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING version",
      [bundle.code, bundle.sourceMap, JSON.stringify(bundle.manifest), bundle.manifest.appSchema, language, bundle.hash, bundle.sizeBytes],
    );
    const version = ins.rows[0]!.version;
    await step("loading the bundle in the database", async () => {
      const r = await c.query<{ f: string }>("SELECT txfn._bundle_functions($1) AS f", [version]).catch(async (e: unknown) => {
        throw await withSourcePosition(e, bundle);
      });
      const loaded = Object.keys(JSON.parse(r.rows[0]!.f) as Record<string, unknown>);
      const missing = Object.keys(bundle.manifest.functions).filter((f) => !loaded.includes(f));
      if (missing.length) throw new Error(`the database's V8 does not see function(s) ${missing.join(", ")}`);
    });
    await step("creating the SQL wrappers", () => activate(c, version, bundle.manifest, prior?.manifest ?? null));
    return { version, previous: prior?.version ?? null, language, migrations, functions, unchanged: false };
  });
}

/** The runtime's name for a bundle's code in error contexts: txfn-bundle-v<version>.js() LINE n: <the line's text>. */
const BUNDLE_LINE = /txfn-bundle-v\d+\.js\(\) LINE (\d+):( *)/;

/**
 * A bundle that loaded at build time (bundler/manifest.ts) but throws in the database's V8: the
 * error's message gets the TypeScript file:line its context names (the runtime maps the stacks
 * of bodies' errors, not of the bundle's load).
 */
async function withSourcePosition(err: unknown, bundle: Bundle): Promise<unknown> {
  const e = err as Error & { where?: string };
  const m = typeof e?.where === "string" ? BUNDLE_LINE.exec(e.where) : null;
  if (!m) return err;
  // Line 1 of the stored code is line 2 of the evaluated script (the runtime's BUNDLE_HEADER).
  const at = await sourcePosition(bundle.sourceMap, Number(m[1]) - 1, m[2]!.length);
  if (at) e.message = `${e.message} (thrown at ${at} while the bundle's modules loaded)`;
  return err;
}

async function step<T>(what: string, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (err) {
    const e = err as Error & { detail?: string; hint?: string };
    const extra = [e.detail, e.hint].filter(Boolean).join("; ");
    throw new DeployError(`deploy failed while ${what}: ${e.message}${extra ? ` (${extra})` : ""}; the previous version stays active`);
  }
}

export interface VersionInfo {
  version: number;
  active: boolean;
  deployedAt: Date;
  activatedAt: Date | null;
  deployedBy: string;
  sizeBytes: number;
  hash: string;
  functions: string[];
}

/** Every deployed version, newest first. */
export async function listVersions(url: string): Promise<VersionInfo[]> {
  return readOrEmpty(url, async (client) => {
    const r = await client.query(
      "SELECT version, active, deployed_at, activated_at, deployed_by, size_bytes, hash, " +
        "ARRAY(SELECT jsonb_object_keys(manifest->'functions') ORDER BY 1) AS functions FROM txfn.bundles ORDER BY version DESC",
    );
    return r.rows.map((row) => ({
      version: row.version,
      active: row.active,
      deployedAt: row.deployed_at,
      activatedAt: row.activated_at,
      deployedBy: row.deployed_by,
      sizeBytes: row.size_bytes,
      hash: row.hash,
      functions: row.functions,
    }));
  });
}

/**
 * Activates `version` (default: the newest version older than the active one) and regenerates
 * the wrappers. Application migrations are not undone.
 * @returns the version now active and the one before.
 */
export async function rollback(url: string, version?: number): Promise<{ version: number; previous: number | null }> {
  return inTransaction(url, async (c) => {
    await lockDeploys(c);
    const prior = await activeVersion(c).catch((e: unknown) => {
      throw isMissingSchema(e) ? new DeployError("nothing has been deployed to this database") : e;
    });
    let target = version;
    if (target === undefined) {
      if (!prior) throw new DeployError("no active version to roll back from; name the version: txfn rollback <version>");
      const r = await c.query<{ version: number }>("SELECT max(version) AS version FROM txfn.bundles WHERE version < $1", [prior.version]);
      if (r.rows[0]?.version == null) throw new DeployError(`version ${prior.version} is the oldest; there is nothing to roll back to`);
      target = r.rows[0].version;
    }
    const t = await c.query<{ manifest: Manifest }>("SELECT manifest FROM txfn.bundles WHERE version = $1", [target]);
    if (!t.rows[0]) throw new DeployError(`no version ${target} (see txfn versions)`);
    if (prior?.version === target) return { version: target, previous: prior.version };
    await activate(c, target, t.rows[0].manifest, prior?.manifest ?? null);
    return { version: target, previous: prior?.version ?? null };
  });
}

export interface InvocationRow {
  id: string;
  idempotencyKey: string | null;
  function: string;
  version: number | null;
  status: string;
  input: unknown;
  output: unknown;
  error: unknown;
  isolation: string;
  workflowId: string | null;
  workflowStep: number | null;
  role: string;
  startedAt: Date;
  endedAt: Date | null;
}

/** Recorded invocations, newest first, optionally of one function and/or since a time. */
export async function listInvocations(
  url: string,
  filter: { fn?: string; since?: Date; limit?: number } = {},
): Promise<InvocationRow[]> {
  return readOrEmpty(url, async (client) => {
    const r = await client.query(
      "SELECT id::text, idempotency_key, function, version, status, input, output, error, isolation, workflow_id, " +
        "workflow_step, role, started_at, ended_at FROM txfn.invocations " +
        "WHERE ($1::text IS NULL OR function = $1) AND ($2::timestamptz IS NULL OR started_at >= $2) " +
        "ORDER BY started_at DESC, id DESC LIMIT $3",
      [filter.fn ?? null, filter.since ?? null, filter.limit ?? 100],
    );
    return r.rows.map((row) => ({
      id: row.id,
      idempotencyKey: row.idempotency_key,
      function: row.function,
      version: row.version,
      status: row.status,
      input: row.input,
      output: row.output,
      error: row.error,
      isolation: row.isolation,
      workflowId: row.workflow_id,
      workflowStep: row.workflow_step,
      role: row.role,
      startedAt: row.started_at,
      endedAt: row.ended_at,
    }));
  });
}
