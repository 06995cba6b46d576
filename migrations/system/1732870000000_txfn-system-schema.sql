-- txfn system schema, version 1: bundles, invocations, the invoker role.
-- Contract: runtime-sql/README.md. The runtime functions (txfn._invoke, txfn.invoke, …) are
-- not migrations: they are (re)installed from runtime-sql/ whenever their text changes.

-- Up Migration
CREATE SCHEMA IF NOT EXISTS txfn;

-- Every deploy is a row; exactly one row is active (the partial unique index).
CREATE TABLE txfn.bundles (
  version      integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  code         text NOT NULL,                -- esbuild output (CommonJS, ES2022)
  source_map   text,                         -- source map v3 JSON, sources relative to the project's package root
  manifest     jsonb NOT NULL,               -- bundler/manifest.ts: functions, options, JSON schemas
  app_schema   name NOT NULL,                -- schema of the generated SQL wrappers
  language     name NOT NULL,                -- txv8 or plv8
  hash         text NOT NULL,                -- sha256 of code
  size_bytes   integer NOT NULL,
  deployed_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  deployed_by  name NOT NULL DEFAULT current_user,
  active       boolean NOT NULL DEFAULT false,
  activated_at timestamptz
);
CREATE UNIQUE INDEX bundles_one_active ON txfn.bundles ((true)) WHERE active;

-- One row per function per bundle version, read from the manifest (for the proxy and psql).
CREATE VIEW txfn.functions AS
  SELECT b.version, b.active, f.key AS name, f.value->>'sqlName' AS sql_name,
         f.value->'options' AS options, f.value->'inputSchema' AS input_schema,
         f.value->'outputSchema' AS output_schema, f.value->>'file' AS file
  FROM txfn.bundles b, jsonb_each(b.manifest->'functions') f;

-- One row per invocation: the idempotency record, the outcome and what replay needs.
-- No foreign key to bundles: it would lock the bundle row on every invocation.
CREATE TABLE txfn.invocations (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  idempotency_key  text UNIQUE,              -- NULL: no idempotency (the call is still recorded)
  function         text NOT NULL,
  version          integer,                  -- bundle version that ran (NULL only inside a failing call)
  input            jsonb NOT NULL,
  status           text NOT NULL CHECK (status IN ('running', 'ok', 'error')),
  output           jsonb,                    -- status ok: the result; NULL = the body returned undefined
  error            jsonb,                    -- status error: the recorded application error
  xid              xid8 NOT NULL,            -- pg_current_xact_id() at the start
  snapshot         pg_snapshot NOT NULL,     -- pg_current_snapshot() at the start
  pinned_time      timestamptz NOT NULL,     -- Date.now() inside the body
  seed             bigint NOT NULL,          -- Math.random() seed (uint32)
  determinism      smallint NOT NULL,        -- version of the pinning algorithms (PRNG)
  isolation        text NOT NULL,            -- transaction_isolation the body ran at
  workflow_id      text,
  workflow_step    integer,
  role             name NOT NULL,            -- current_user
  application_name text,
  started_at       timestamptz NOT NULL,
  ended_at         timestamptz
) WITH (fillfactor = 90);                    -- room for the HOT update that records the outcome
CREATE INDEX invocations_started_at ON txfn.invocations (started_at);
CREATE INDEX invocations_workflow ON txfn.invocations (workflow_id, workflow_step) WHERE workflow_id IS NOT NULL;

-- The role a non-superuser caller (the proxy, an app) needs: GRANT txfn_invoker TO <login role>.
-- Application tables are the application's to grant (the reference app grants its own).
-- Roles are cluster-wide: another database may have created it (or be creating it right now).
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'txfn_invoker') THEN
    CREATE ROLE txfn_invoker NOLOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
  NULL;
END
$$;
GRANT USAGE ON SCHEMA txfn TO txfn_invoker;
GRANT SELECT ON txfn.bundles, txfn.functions TO txfn_invoker;
GRANT SELECT, INSERT, UPDATE ON txfn.invocations TO txfn_invoker;

-- Down Migration
DROP SCHEMA txfn CASCADE;
