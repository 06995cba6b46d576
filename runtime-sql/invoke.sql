-- The SQL surface of the runtime (README.md beside this file). Installed after the JS
-- functions txfn._invoke and txfn._bundle_functions (made from runtime.js); re-run whenever
-- the runtime's text changes, so every statement here is CREATE OR REPLACE.

-- The envelope returned by every call: {"output": …} | {"error": {…}} plus metadata.
-- An ok invocation whose body returned undefined has no "output" key.
CREATE OR REPLACE FUNCTION txfn.envelope(i txfn.invocations, replayed boolean) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT CASE
           WHEN i.status = 'error' THEN jsonb_build_object('error', i.error)
           WHEN i.output IS NULL THEN '{}'::jsonb
           ELSE jsonb_build_object('output', i.output)
         END
         || jsonb_build_object('invocationId', i.id::text, 'version', i.version, 'replayed', replayed)
$$;

-- txfn.invoke(fn, input, idempotency_key, options): the public entry point. A plain SQL
-- function so the planner inlines it: calling it costs the same as calling txfn._invoke.
-- Input and options travel as JSON text so numbers keep every digit on the way in.
CREATE OR REPLACE FUNCTION txfn.invoke(fn text, input jsonb, idempotency_key text DEFAULT NULL, options jsonb DEFAULT '{}')
RETURNS jsonb LANGUAGE sql VOLATILE AS $$
  SELECT txfn._invoke(fn, input::text, idempotency_key, options::text)::jsonb
$$;

GRANT EXECUTE ON FUNCTION txfn.invoke(text, jsonb, text, jsonb), txfn._invoke(text, text, text, text), txfn._read_only_call(),
  txfn.envelope(txfn.invocations, boolean) TO txfn_invoker;
