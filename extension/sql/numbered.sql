-- The twelve numbered regression tests of issue 3, each with its correct value.
CREATE SCHEMA num;
SET search_path = num, public;

-- 1. JSON.stringify of an int8 column value throws a TypeError, yet returning that
--    row as jsonb keeps the number's value (2^53 + 1 is not a double).
CREATE FUNCTION int8_stringify() RETURNS text LANGUAGE txv8 AS $$
  var row = plv8.execute('SELECT 9007199254740993::int8 AS n')[0];
  try { JSON.stringify(row); return 'no error'; }
  catch (e) { return e.name + ': ' + e.message; }
$$;
CREATE FUNCTION int8_row() RETURNS jsonb LANGUAGE txv8 AS $$
  return plv8.execute('SELECT 9007199254740993::int8 AS n')[0];
$$;
SELECT int8_stringify();
SELECT int8_row(), (int8_row()->>'n')::numeric = 9007199254740993 AS exact;

-- 2. jsonb scalars come back unwrapped; a returned string is a jsonb string.
CREATE FUNCTION jb_same(x jsonb) RETURNS jsonb LANGUAGE txv8 AS $$ return x; $$;
CREATE FUNCTION jb_str() RETURNS jsonb LANGUAGE txv8 AS $$ return 'str'; $$;
SELECT jb_same('"asd"') AS s, jb_same('1') AS n, jb_same('false') AS b, jb_str() AS r;
SELECT jsonb_typeof(jb_same('"asd"')), jsonb_typeof(jb_same('1')), jsonb_typeof(jb_same('false')), jsonb_typeof(jb_str());

-- 3. a jsonb array of three objects round-trips with all three.
SELECT jb_same('[{"a": 1}, {"b": [2, 3]}, {"c": {"d": null}}]');
SELECT jsonb_array_length(jb_same('[{"a": 1}, {"b": [2, 3]}, {"c": {"d": null}}]'));

-- 4. an undefined property is left out of the jsonb, and no NOTICE is raised.
CREATE FUNCTION jb_undef() RETURNS jsonb LANGUAGE txv8 AS $$ return { a: 1, b: undefined, c: 'x' }; $$;
SELECT jb_undef();

-- 5. a date arrives as a Date at UTC midnight, a timestamptz keeps its instant,
--    whatever the session's TimeZone.
SET TimeZone = 'America/New_York';
CREATE FUNCTION d_iso(d date) RETURNS text LANGUAGE txv8 AS $$ return d.toISOString(); $$;
CREATE FUNCTION tz_iso(t timestamptz) RETURNS text LANGUAGE txv8 AS $$ return t.toISOString(); $$;
CREATE FUNCTION tz_same(t timestamptz) RETURNS timestamptz LANGUAGE txv8 AS $$ return t; $$;
SELECT d_iso('2024-03-10'), tz_iso('2024-03-10 12:34:56.789+05');
SELECT tz_same('2024-03-10 12:34:56.789+05') = '2024-03-10 12:34:56.789+05'::timestamptz AS same_instant;
RESET TimeZone;

-- 6. a Uint8Array view with byteOffset 2 returned as bytea gives only the viewed bytes.
CREATE FUNCTION view_bytes() RETURNS bytea LANGUAGE txv8 AS $$
  var buf = new Uint8Array([1, 2, 3, 4, 5, 6]).buffer;
  return new Uint8Array(buf, 2, 3);
$$;
SELECT view_bytes();

-- 7. a cursor's fetch called with a wrong receiver raises an error; the backend lives.
CREATE FUNCTION bad_receiver() RETURNS text LANGUAGE txv8 AS $$
  var c = plv8.prepare('SELECT 1 AS x').cursor();
  var out = [];
  try { c.fetch.apply(null); } catch (e) { out.push(String(e)); }
  try { c.fetch.call({}); } catch (e) { out.push(String(e)); }
  try { c.fetch.call(plv8.prepare('SELECT 1')); } catch (e) { out.push(String(e)); }
  out.push(JSON.stringify(c.fetch()));
  return out.join(' | ');
$$;
SELECT bad_receiver();
DO $$ var c = plv8.prepare('SELECT 1').cursor(); c.fetch.apply(null); $$ LANGUAGE txv8;
SELECT 'backend alive' AS status;

-- 8. a SQL error raised inside a cursor fetch keeps its own SQLSTATE.
CREATE FUNCTION fetch_error() RETURNS text LANGUAGE txv8 AS $$
  var c = plv8.prepare('SELECT 1 / (x - 3) AS v FROM generate_series(1, 5) x').cursor();
  try { c.fetch(10); return 'no error'; }
  catch (e) { return e.sqlerrcode + ' ' + e.message; }
$$;
SELECT fetch_error();
\set VERBOSITY sqlstate
DO $$ plv8.prepare('SELECT 1 / (x - 3) AS v FROM generate_series(1, 5) x').cursor().fetch(10); $$ LANGUAGE txv8;
\set VERBOSITY default

-- 9. statement_timeout ends while(true){}; the next call in the session succeeds.
SET statement_timeout = '200ms';
DO $$ while (true) {} $$ LANGUAGE txv8;
RESET statement_timeout;
SELECT jb_str() AS next_call;

-- 10. cancelling a nested JS -> SQL -> JS call returns promptly (no timings printed).
CREATE FUNCTION spin() RETURNS int LANGUAGE txv8 AS $$ while (true) {} $$;
CREATE FUNCTION outer_spin() RETURNS int LANGUAGE txv8 AS $$
  while (true) { try { plv8.execute('SELECT num.spin()'); } catch (e) { /* a cancel is never caught */ } }
$$;
SET statement_timeout = '200ms';
DO LANGUAGE plpgsql $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
  PERFORM outer_spin();
EXCEPTION WHEN query_canceled THEN
  RAISE NOTICE 'cancelled within 2 seconds: %', clock_timestamp() - t0 < interval '2 seconds';
END $$;
RESET statement_timeout;
SELECT jb_str() AS next_call;

-- 11. a function compiled as one role and re-entered as another through SECURITY
--     DEFINER works and sees its own role's globals.
CREATE ROLE num_alice;
CREATE ROLE num_bob;
GRANT USAGE ON SCHEMA num TO num_alice, num_bob;
CREATE FUNCTION whoami() RETURNS text LANGUAGE txv8 AS $$
  return (typeof who === 'undefined' ? 'nobody' : who) + ' as ' + plv8.execute('SELECT current_user AS u')[0].u;
$$;
CREATE FUNCTION whoami_as_bob() RETURNS text LANGUAGE txv8 SECURITY DEFINER AS $$
  return plv8.execute('SELECT num.whoami() AS w')[0].w;
$$;
ALTER FUNCTION whoami_as_bob() OWNER TO num_bob;
SET ROLE num_bob;
DO $$ globalThis.who = 'bob'; $$ LANGUAGE txv8;
SET ROLE num_alice;
DO $$ globalThis.who = 'alice'; $$ LANGUAGE txv8;
SELECT whoami();
SELECT whoami_as_bob();
SELECT whoami() AS direct, whoami_as_bob() AS definer, whoami() AS again;
RESET ROLE;
SELECT whoami() LIKE 'nobody as %' AS superuser_sees_no_role_globals;

-- 12. OUT and INOUT parameters and an INOUT procedure return the right values.
CREATE FUNCTION one_inout(a int, INOUT b text) LANGUAGE txv8 AS $$ return a + b; $$;
CREATE FUNCTION one_out(OUT o text, i int) LANGUAGE txv8 AS $$ return 'ABC' + i; $$;
CREATE FUNCTION two_out(a int, OUT x int, OUT y text) LANGUAGE txv8 AS $$ return { x: a * 2, y: 'y' + a }; $$;
CREATE PROCEDURE inout_proc(INOUT a int, INOUT b text, OUT c numeric) LANGUAGE txv8 AS $$
  return { a: a + 1, b: b + '!', c: 1.5 };
$$;
SELECT one_inout(5, 'ABC'), one_out(5);
SELECT * FROM two_out(21);
CALL inout_proc(1, 'hi', NULL);

SET client_min_messages = warning;
DROP SCHEMA num CASCADE;
DROP ROLE num_alice;
DROP ROLE num_bob;
