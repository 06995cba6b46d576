/**
 * SQL generated at deploy: one wrapper per function in the app schema.
 *
 *   app.reserve_inventory(input jsonb, idempotency_key text DEFAULT NULL, options jsonb DEFAULT '{}') RETURNS jsonb
 *
 * Each is a one-SELECT SQL function over txfn._invoke (as txfn.invoke is), which the planner
 * inlines. Identifiers and literals are quoted by node-postgres' escape functions, never
 * pasted raw.
 */
import pg from "pg";
import type { Manifest } from "./manifest.ts";

const qi = (s: string) => pg.escapeIdentifier(s);
const ql = (s: string) => pg.escapeLiteral(s);

const SIGNATURE = "(jsonb, text, jsonb)";

/** Statements that create the schema and every wrapper of `manifest` for bundle `version`. */
export function wrapperStatements(manifest: Manifest, version: number): string[] {
  const schema = qi(manifest.appSchema);
  const out = [`CREATE SCHEMA IF NOT EXISTS ${schema}`, `GRANT USAGE ON SCHEMA ${schema} TO txfn_invoker`];
  for (const [name, fn] of Object.entries(manifest.functions)) {
    const target = `${schema}.${qi(fn.sqlName)}`;
    const body = `SELECT txfn._invoke(${ql(name)}, input::text, idempotency_key, options::text)::jsonb`;
    out.push(
      `CREATE OR REPLACE FUNCTION ${target}(input jsonb, idempotency_key text DEFAULT NULL, options jsonb DEFAULT '{}') ` +
        `RETURNS jsonb LANGUAGE sql VOLATILE AS ${ql(body)}`,
      `COMMENT ON FUNCTION ${target}${SIGNATURE} IS ${ql(`txfn: ${name} (bundle version ${version}, ${fn.file}); returns {"output": …} or {"error": …}`)}`,
      `GRANT EXECUTE ON FUNCTION ${target}${SIGNATURE} TO txfn_invoker`,
    );
  }
  return out;
}

/** Statements that drop the wrappers of `previous` that `next` no longer has. */
export function dropStatements(previous: Manifest | null, next: Manifest): string[] {
  if (!previous) return [];
  const keep = new Set(
    next.appSchema === previous.appSchema ? Object.values(next.functions).map((f) => f.sqlName) : [],
  );
  return Object.values(previous.functions)
    .filter((f) => !keep.has(f.sqlName))
    .map((f) => `DROP FUNCTION IF EXISTS ${qi(previous.appSchema)}.${qi(f.sqlName)}${SIGNATURE}`);
}
