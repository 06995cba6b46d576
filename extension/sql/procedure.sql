-- Procedures: CALL, plv8.commit()/rollback() in a non-atomic CALL, OUT and INOUT parameters.
CREATE SCHEMA proc;
SET search_path = proc, public;
CREATE TABLE log (n int, note text);

CREATE PROCEDURE fill(n int) LANGUAGE txv8 AS $$
  for (var i = 1; i <= n; i++) {
    plv8.execute('INSERT INTO proc.log VALUES ($1, $2)', [i, i % 2 ? 'committed' : 'rolled back']);
    if (i % 2) plv8.commit(); else plv8.rollback();
  }
$$;
CALL fill(4);
SELECT * FROM log ORDER BY n;
-- in a transaction block the CALL is atomic: no transaction control
BEGIN;
CALL fill(1);
ROLLBACK;
-- DO blocks are atomic too, and so is a function
DO $$ plv8.commit(); $$ LANGUAGE txv8;
CREATE FUNCTION f_commit() RETURNS int LANGUAGE txv8 AS $$
  try { plv8.commit(); } catch (e) { plv8.elog(NOTICE, e.sqlerrcode, e.message); }
  return 1;
$$;
SELECT f_commit();
-- a commit inside plv8.subtransaction is refused and ends the call
CREATE PROCEDURE commit_in_subxact() LANGUAGE txv8 AS $$
  try { plv8.subtransaction(function () { plv8.commit(); }); } catch (e) { plv8.elog(NOTICE, 'caught?', e.message); }
$$;
CALL commit_in_subxact();
-- cursors do not survive a commit; plans do
CREATE PROCEDURE across_commit() LANGUAGE txv8 AS $$
  var p = plv8.prepare('SELECT count(*) AS c FROM proc.log');
  var c = p.cursor();
  plv8.commit();
  try { c.fetch(); } catch (e) { plv8.elog(NOTICE, 'cursor:', e.message); }
  plv8.elog(NOTICE, 'plan:', p.execute()[0].c);
$$;
CALL across_commit();
-- the transaction started by commit() sees committed data and keeps working
CREATE PROCEDURE new_tx() LANGUAGE txv8 AS $$
  plv8.execute("INSERT INTO proc.log VALUES (100, 'before')");
  plv8.commit();
  plv8.execute("INSERT INTO proc.log VALUES (101, 'after')");
  plv8.rollback();
  plv8.execute("INSERT INTO proc.log VALUES (102, 'last')");
$$;
CALL new_tx();
SELECT * FROM log WHERE n >= 100 ORDER BY n;

-- OUT and INOUT parameters
CREATE FUNCTION one_inout(a int, INOUT b text) LANGUAGE txv8 AS $$ return a + b; $$;
CREATE FUNCTION one_out(OUT o text, i int) LANGUAGE txv8 AS $$ return 'ABC' + i; $$;
CREATE FUNCTION two_out(a int, OUT x int, OUT y text) LANGUAGE txv8 AS $$ return { x: a * 2, y: 'y' + a, extra: 1 }; $$;
CREATE FUNCTION two_out_null(a int, OUT x int, OUT y text) LANGUAGE txv8 AS $$ return; $$;
SELECT one_inout(5, 'ABC'), one_out(5), two_out(2);
SELECT * FROM two_out(21);
SELECT two_out_null(1) IS NULL AS null_record;
CREATE PROCEDURE p_inout(INOUT a int, INOUT b text) LANGUAGE txv8 AS $$ return { a: a * 10, b: b.toUpperCase() }; $$;
CREATE PROCEDURE p_one(INOUT a int) LANGUAGE txv8 AS $$ return a + 1; $$;
CREATE PROCEDURE p_one_obj(INOUT a int) LANGUAGE txv8 AS $$ return { a: a + 2 }; $$;
CREATE PROCEDURE p_untouched(INOUT a int, OUT b text) LANGUAGE txv8 AS $$ a = 99; $$;
CREATE PROCEDURE p_out(IN x int, OUT doubled int) LANGUAGE txv8 AS $$ return { doubled: x * 2 }; $$;
CALL p_inout(4, 'abc');
CALL p_one(41);
CALL p_one_obj(40);
CALL p_untouched(7, NULL);
CALL p_out(8, NULL);
-- INOUT procedures called from PL/pgSQL
DO LANGUAGE plpgsql $$
DECLARE a int := 1; b text := 'x';
BEGIN
  CALL proc.p_inout(a, b);
  RAISE NOTICE 'a=% b=%', a, b;
END $$;

SET client_min_messages = warning;
DROP SCHEMA proc CASCADE;
