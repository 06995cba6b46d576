-- The call path: arguments, results, DO blocks, the validator, `this`, the global environment.
CREATE SCHEMA basic;
SET search_path = basic, public;

CREATE FUNCTION add(a int, b int) RETURNS int LANGUAGE txv8 AS $$ return a + b; $$;
SELECT add(1, 2), add(NULL, 2) IS NULL AS strict_off_null_is_null;
CREATE FUNCTION add_strict(a int, b int) RETURNS int LANGUAGE txv8 STRICT AS $$ return a + b; $$;
SELECT add_strict(1, NULL) IS NULL AS strict;

-- unnamed parameters are $1, $2...; a mix of named and unnamed ones works (plv8 broke)
CREATE FUNCTION unnamed(int, int) RETURNS int LANGUAGE txv8 AS $$ return $1 * 10 + $2; $$;
CREATE FUNCTION mixed(int, b int) RETURNS int LANGUAGE txv8 AS $$ return $1 * 10 + b + arguments.length; $$;
SELECT unnamed(4, 2), mixed(4, 2);
-- names are as stored (lower-cased unless quoted)
CREATE FUNCTION cased(sort_By int, "Keep" int) RETURNS int LANGUAGE txv8 AS $$ return sort_by + Keep; $$;
SELECT cased(1, 2);

-- results: undefined and null are NULL; void ignores the value
CREATE FUNCTION nothing() RETURNS int LANGUAGE txv8 AS $$ $$;
CREATE FUNCTION nul() RETURNS text LANGUAGE txv8 AS $$ return null; $$;
CREATE FUNCTION v() RETURNS void LANGUAGE txv8 AS $$ return 42; $$;
SELECT nothing() IS NULL AS a, nul() IS NULL AS b, v() IS NOT NULL AS c;

-- sloppy mode: undeclared assignments become globals, shared by later calls
CREATE FUNCTION set_global() RETURNS text LANGUAGE txv8 AS $$ counter = (typeof counter === 'number' ? counter : 0) + 1; return typeof this; $$;
CREATE FUNCTION get_global() RETURNS int LANGUAGE txv8 AS $$ return counter; $$;
SELECT set_global(), set_global(), get_global();

-- `this` is one object per call site, kept across the rows of a query
CREATE FUNCTION count_rows() RETURNS int LANGUAGE txv8 AS $$ this.n = (this.n || 0) + 1; return this.n; $$;
SELECT count_rows() FROM generate_series(1, 3);
SELECT count_rows();

-- DO blocks
DO $$ plv8.elog(NOTICE, 'from a DO block', 1 + 1); $$ LANGUAGE txv8;
DO $$ return 5; $$ LANGUAGE txv8;

-- the global environment
CREATE FUNCTION env() RETURNS text LANGUAGE txv8 AS $$
  return [typeof plv8, plv8.version, typeof plv8.v8_version, DEBUG5, DEBUG1, DEBUG, LOG, INFO,
          NOTICE, WARNING, ERROR, typeof WARN, typeof require, typeof console,
          Object.keys(JSON.parse(JSON.stringify(plv8))).join('+')].join(' ');
$$;
SELECT env();
CREATE FUNCTION tags() RETURNS text LANGUAGE txv8 AS $$
  var p = plv8.prepare('SELECT 1');
  var r = [Object.prototype.toString.call(p), Object.prototype.toString.call(p.cursor())];
  p.free();
  return r.join(' ');
$$;
SELECT tags();
SELECT txv8_version();

-- the validator: syntax errors at CREATE, pseudo-types refused
CREATE FUNCTION bad_syntax() RETURNS int LANGUAGE txv8 AS $$
  var x = ;
$$;
CREATE FUNCTION bad_ret() RETURNS anyrange LANGUAGE txv8 AS $$ return 1; $$;
CREATE FUNCTION bad_ret2() RETURNS cstring LANGUAGE txv8 AS $$ return 1; $$;
CREATE FUNCTION bad_arg(x cstring) RETURNS int LANGUAGE txv8 AS $$ return 1; $$;
CREATE FUNCTION bad_trigger(x int) RETURNS trigger LANGUAGE txv8 AS $$ return 1; $$;
-- check_function_bodies = off skips compiling (as pg_restore needs)
SET check_function_bodies = off;
CREATE FUNCTION later_error() RETURNS int LANGUAGE txv8 AS $$ var x = ; $$;
RESET check_function_bodies;
SELECT later_error();

-- CREATE OR REPLACE takes effect at the next call
CREATE FUNCTION ver() RETURNS int LANGUAGE txv8 AS $$ return 1; $$;
SELECT ver();
CREATE OR REPLACE FUNCTION ver() RETURNS int LANGUAGE txv8 AS $$ return 2; $$;
SELECT ver();
-- also for a call site that stays (a PL/pgSQL loop's expression, whose txv8 call site skips
-- the pg_proc lookup until an invalidation): replaced, and restored by a rolled-back subtransaction
CREATE FUNCTION ver2() RETURNS int LANGUAGE txv8 AS $$ return 1; $$;
CREATE FUNCTION loop_ver2() RETURNS text LANGUAGE plpgsql AS $$
DECLARE out text := '';
BEGIN
  FOR i IN 1..4 LOOP
    out := out || ver2();
    IF i = 1 THEN
      EXECUTE 'CREATE OR REPLACE FUNCTION basic.ver2() RETURNS int LANGUAGE txv8 AS $f$ return 2; $f$';
    ELSIF i = 2 THEN
      BEGIN
        EXECUTE 'CREATE OR REPLACE FUNCTION basic.ver2() RETURNS int LANGUAGE txv8 AS $f$ return 3; $f$';
        out := out || ver2();
        RAISE EXCEPTION 'undo';
      EXCEPTION WHEN raise_exception THEN NULL;
      END;
    END IF;
  END LOOP;
  RETURN out;
END $$;
SELECT loop_ver2();

-- STABLE and IMMUTABLE functions run their SQL read-only (as PL/pgSQL does)
CREATE TABLE t (x int);
CREATE FUNCTION stable_write() RETURNS int LANGUAGE txv8 STABLE AS $$ return plv8.execute('INSERT INTO basic.t VALUES (1)'); $$;
SELECT stable_write();
CREATE FUNCTION stable_read() RETURNS bigint LANGUAGE txv8 STABLE AS $$ return plv8.execute('SELECT count(*) AS c FROM basic.t')[0].c; $$;
SELECT stable_read();

-- promises: microtasks run after the call; an unhandled rejection is a WARNING
DO $$ Promise.resolve(1).then(function (v) { plv8.elog(NOTICE, 'microtask ran', v); }); $$ LANGUAGE txv8;
DO $$ Promise.reject(new Error('nobody listens')); $$ LANGUAGE txv8;
DO $$ var p = Promise.reject(new Error('handled later')); p.catch(function () {}); $$ LANGUAGE txv8;

-- eval and Function work
CREATE FUNCTION ev() RETURNS int LANGUAGE txv8 AS $$ return eval('1 + 2') + new Function('a', 'return a * 2')(3); $$;
SELECT ev();

SET client_min_messages = warning;
DROP SCHEMA basic CASCADE;
