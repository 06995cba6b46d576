-- Set-returning functions: return_next, returned arrays, scalar and composite rows, RETURNS TABLE, SETOF record.
CREATE SCHEMA srf;
SET search_path = srf, public;

CREATE FUNCTION nums(n int) RETURNS SETOF int LANGUAGE txv8 AS $$
  for (var i = 1; i <= n; i++) plv8.return_next(i);
$$;
SELECT * FROM nums(3);
SELECT nums(2);
CREATE FUNCTION nums_array(n int) RETURNS SETOF int LANGUAGE txv8 AS $$
  plv8.return_next(0);
  var a = []; for (var i = 1; i <= n; i++) a.push(i);
  return a;
$$;
SELECT * FROM nums_array(3);
CREATE FUNCTION one_value() RETURNS SETOF text LANGUAGE txv8 AS $$ return 'just one'; $$;
SELECT * FROM one_value();
CREATE FUNCTION no_rows() RETURNS SETOF text LANGUAGE txv8 AS $$ $$;
SELECT count(*) FROM no_rows();
CREATE FUNCTION arrays() RETURNS SETOF int[] LANGUAGE txv8 AS $$ plv8.return_next([1, 2]); return [[3], [4, 5]]; $$;
SELECT * FROM arrays();

CREATE TYPE item AS (id int, label text);
CREATE FUNCTION items() RETURNS SETOF item LANGUAGE txv8 AS $$
  plv8.return_next({ id: 1, label: 'one' });
  plv8.return_next({ id: 2, label: null, ignored: true });
  return [{ label: 'three', id: 3 }, { id: 4, label: undefined }];
$$;
SELECT * FROM items();
CREATE FUNCTION tab(n int) RETURNS TABLE (k int, sq int8, d date) LANGUAGE txv8 AS $$
  for (var i = 1; i <= n; i++) plv8.return_next({ k: i, sq: BigInt(i * i), d: new Date(Date.UTC(2024, 0, i)) });
$$;
SELECT * FROM tab(3);
CREATE FUNCTION outs(OUT a int, OUT b text) RETURNS SETOF record LANGUAGE txv8 AS $$ return [{ a: 1, b: 'x' }, { a: 2, b: 'y' }]; $$;
SELECT * FROM outs();
CREATE FUNCTION recs() RETURNS SETOF record LANGUAGE txv8 AS $$ return [{ x: 1, y: 'a' }, { x: 2, y: 'b' }]; $$;
SELECT * FROM recs() AS t(x int, y text);
SELECT * FROM recs();
SELECT recs();
-- plv8's row check: every column must be a property
CREATE FUNCTION bad_row() RETURNS SETOF item LANGUAGE txv8 AS $$ plv8.return_next({ id: 1 }); $$;
SELECT * FROM bad_row();
CREATE FUNCTION not_object() RETURNS SETOF item LANGUAGE txv8 AS $$ plv8.return_next(5); $$;
SELECT * FROM not_object();
-- return_next outside a set-returning function
CREATE FUNCTION not_srf() RETURNS int LANGUAGE txv8 AS $$
  try { plv8.return_next(1); } catch (e) { plv8.elog(NOTICE, e.message); }
  return 1;
$$;
SELECT not_srf();
-- nested set-returning functions through SQL keep their own rows
CREATE FUNCTION outer_srf() RETURNS SETOF text LANGUAGE txv8 AS $$
  plv8.return_next('before');
  plv8.execute('SELECT * FROM srf.nums(3)').forEach(function (r) { plv8.return_next('inner ' + r.nums); });
  plv8.return_next('after');
$$;
SELECT * FROM outer_srf();
-- many rows
SELECT count(*), sum(x) FROM nums(100000) x;
-- in a lateral join, once per outer row
SELECT g, n FROM generate_series(1, 3) g, LATERAL nums(g) n ORDER BY g, n;

SET client_min_messages = warning;
DROP SCHEMA srf CASCADE;
