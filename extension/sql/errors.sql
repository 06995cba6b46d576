-- Errors: JS exceptions become PostgreSQL errors (message, SQLSTATE, DETAIL, HINT, CONTEXT with the JS stack).
CREATE SCHEMA err;
SET search_path = err, public;
-- SQLSTATE and message of a statement's error, as PL/pgSQL sees them
CREATE FUNCTION state(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE q;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ' ' || SQLERRM;
END $$;

CREATE FUNCTION throws(code text) RETURNS int LANGUAGE txv8 AS $$
  function inner() {
    eval(code);
  }
  inner();
  return 0;
$$;
-- Error: prefix stripped, other names kept, strings verbatim, default SQLSTATE XX000
SELECT throws($$ throw new Error('plain error') $$);
SELECT throws($$ throw new TypeError('type error') $$);
SELECT throws($$ throw 'a string' $$);
SELECT throws($$ throw 42 $$);
SELECT throws($$ throw null $$);
SELECT throws($$ undefined_function() $$);
-- sqlerrcode (SQLSTATE or condition name), code (packed or 5 characters), detail, hint, context
SELECT throws($$ var e = new Error('custom'); e.sqlerrcode = '23505'; e.detail = 'the detail'; e.hint = 'the hint'; throw e $$);
SELECT throws($$ var e = new Error('by name'); e.sqlerrcode = 'division_by_zero'; throw e $$);
SELECT throws($$ throw { message: 'object', code: '22012' } $$);
SELECT throws($$ var e = new Error('ctx'); e.context = 'my own context'; throw e $$);
SELECT throws($$ var e = new Error('bad code'); e.sqlerrcode = 'nonsense'; throw e $$);
SELECT throws($$ var e = new Error('table'); e.sqlerrcode = '23503'; e.schema_name = 's'; e.table_name = 't'; e.constraint_name = 'c'; throw e $$);
-- an uncaught SQL error keeps its SQLSTATE, detail, hint and context
CREATE TABLE uniq (id int PRIMARY KEY);
INSERT INTO uniq VALUES (1);
SELECT throws($$ plv8.execute('INSERT INTO err.uniq VALUES (1)') $$);
SELECT throws($$ plv8.execute('SELECT * FROM nowhere') $$);
-- a caught SQL error rethrown as is
SELECT throws($$ try { plv8.execute('SELECT 1/0'); } catch (e) { throw e; } $$);
-- and wrapped: the code survives when copied
SELECT throws($$ try { plv8.execute('SELECT 1/0'); } catch (e) { var w = new Error('wrapped: ' + e.message); w.sqlerrcode = e.sqlerrcode; throw w; } $$);
-- nested JS -> SQL -> JS: each level adds its CONTEXT lines
CREATE FUNCTION level2() RETURNS int LANGUAGE txv8 AS $$
  throw new RangeError('deep down');
$$;
CREATE FUNCTION level1() RETURNS int LANGUAGE txv8 AS $$
  return plv8.execute('SELECT err.level2() AS x')[0].x;
$$;
SELECT level1();
SELECT throws($$ plv8.execute('SELECT err.level1()') $$);
-- a DO block's context line is named "undefined" (as plv8 names it)
DO $$
  var a = 1;
  throw new Error('from DO');
$$ LANGUAGE txv8;
-- errors in PL/pgSQL called from JS, and JS errors caught by PL/pgSQL
CREATE FUNCTION pl_raises() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'plpgsql says no' USING ERRCODE = 'P0001', HINT = 'try again'; END $$;
SELECT throws($$ plv8.execute('SELECT err.pl_raises()') $$);
DO LANGUAGE plpgsql $$
BEGIN
  PERFORM err.throws($x$ var e = new Error('catch me'); e.sqlerrcode = '22023'; throw e $x$);
EXCEPTION WHEN invalid_parameter_value THEN
  RAISE NOTICE 'caught in PL/pgSQL: % %', SQLSTATE, SQLERRM;
END $$;
SELECT state($q$ SELECT err.throws('throw new Error(''x'')') $q$), state($q$ SELECT err.throws('var e = new Error(''y''); e.sqlerrcode = ''23505''; throw e') $q$);
SELECT state($q$ SELECT err.throws('throw {message: ''m'', code: ''22012''}') $q$), state($q$ SELECT err.throws('var e = new Error(''z''); e.code = 16777346; throw e') $q$);
SELECT state($q$ SELECT err.throws('plv8.execute(''SELECT 1/0'')') $q$), state($q$ SELECT err.level1() $q$);
-- the transaction stays usable after a caught error
BEGIN;
SELECT throws($$ try { plv8.execute('SELECT 1/0'); } catch (e) {} $$);
SELECT 'still in transaction' AS ok;
COMMIT;
-- deep recursion: a RangeError in JS, stack depth through SQL; never a crash
CREATE FUNCTION recurse_js() RETURNS int LANGUAGE txv8 AS $$ function r(n) { return r(n + 1) + 1; } return r(0); $$;
SELECT recurse_js();
CREATE FUNCTION recurse_js_caught() RETURNS text LANGUAGE txv8 AS $$
  function r(n) { return r(n + 1) + 1; }
  try { r(0); } catch (e) { return e.name + ': ' + e.message; }
$$;
SELECT recurse_js_caught();
CREATE FUNCTION recurse_sql(n int) RETURNS int LANGUAGE txv8 AS $$ return plv8.execute('SELECT err.recurse_sql($1) AS x', n + 1)[0].x; $$;
SELECT state('SELECT err.recurse_sql(0)') IN ('54001 stack depth limit exceeded',
  'XX000 RangeError: Maximum call stack size exceeded') AS stack_limit_error;
SELECT 'alive after deep recursion' AS ok;

SET client_min_messages = warning;
DROP SCHEMA err CASCADE;
