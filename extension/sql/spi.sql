-- plv8.execute (three forms), prepare and plans, subtransaction, find_function, quoting, elog.
CREATE SCHEMA spi;
SET search_path = spi, public;
CREATE TABLE items (id int PRIMARY KEY, name text, price numeric, n int8);
INSERT INTO items VALUES (1, 'apple', 1.25, 10), (2, 'pear', 2.5, 20), (3, 'plum', NULL, NULL);

CREATE FUNCTION ex(code text) RETURNS text LANGUAGE txv8 AS $$
  var r = eval(code);
  return JSON.stringify(r, function (k, v) { return typeof v === 'bigint' ? v + 'n' : v; });
$$;
-- the three forms
SELECT ex($$ plv8.execute('SELECT id, name FROM spi.items ORDER BY id') $$);
SELECT ex($$ plv8.execute('SELECT name FROM spi.items WHERE id = $1', [2]) $$);
SELECT ex($$ plv8.execute('SELECT name FROM spi.items WHERE id = $1 OR id = $2 ORDER BY id', 1, 3) $$);
SELECT ex($$ plv8.execute('SELECT $1 AS v', [[1, 2]]) $$);
SELECT ex($$ plv8.execute('SELECT 1 AS one', []) $$), ex($$ plv8.execute() $$);
-- parameter types are deduced by the parser; unresolved ones are text
SELECT ex($$ plv8.execute('SELECT $1 AS v, pg_typeof($1)::text AS t', 1) $$);
SELECT ex($$ plv8.execute('SELECT $1 + 1 AS v', 41) $$), ex($$ plv8.execute('SELECT $1::int8 * 2 AS v', 21) $$);
SELECT ex($$ plv8.execute('SELECT $1::date AS d, $2::timestamptz AS t', [new Date(Date.UTC(2024, 0, 2)), new Date(Date.UTC(2024, 0, 2, 3))]) $$);
SELECT ex($$ plv8.execute('SELECT $1 IS NULL AS a, $2 IS NULL AS b', [null, undefined]) $$);
SELECT ex($$ plv8.execute('SELECT $1 AS a, $2 AS b', 1) $$);
-- results: rows for SELECT/RETURNING/SHOW, a count otherwise; int8 columns are BigInt
SELECT ex($$ plv8.execute('SELECT count(*), sum(n), avg(price) FROM spi.items') $$);
SELECT ex($$ plv8.execute('UPDATE spi.items SET n = n + 1 WHERE n IS NOT NULL') $$);
SELECT ex($$ plv8.execute('INSERT INTO spi.items VALUES (4, $1, 9, 1) RETURNING id, name', 'kiwi') $$);
SELECT ex($$ plv8.execute('DELETE FROM spi.items WHERE id = 4') $$);
SELECT ex($$ plv8.execute('CREATE TEMP TABLE scratch (x int); INSERT INTO scratch VALUES (1), (2); SELECT sum(x) AS s FROM scratch') $$);
SELECT ex($$ plv8.execute('SHOW search_path') $$);
SELECT ex($$ plv8.execute('SELECT 1 AS a, 2 AS a, 3') $$);
-- one row is built by another path than many: the same keys, order, values and prototype
CREATE FUNCTION rowshape(n int) RETURNS text LANGUAGE txv8 AS $$
  var rows = plv8.execute('SELECT 1 AS "__proto__", g AS "0", 3 AS b, 4 AS b, NULL AS z FROM generate_series(1, $1) g', [n]);
  return JSON.stringify(rows.map(function (r) {
    return [Object.keys(r), JSON.stringify(r), Object.getPrototypeOf(r) === Object.prototype, r.__proto__, r[0]];
  }));
$$;
SELECT rowshape(0), rowshape(1), rowshape(2);
-- column names that need escaping in the row builder's JS source, one row and many
CREATE FUNCTION oddkeys(n int) RETURNS text LANGUAGE txv8 AS $$
  var rows = plv8.execute('SELECT g AS "a""b\\c", 2 AS "x' + '\n' + 'y", 3 AS "\u00e9", 4 AS "})" FROM generate_series(1, $1) g', [n]);
  return JSON.stringify(rows.map(function (r) { return [Object.keys(r), Object.values(r)]; }));
$$;
SELECT oddkeys(1), oddkeys(2);
-- the plan cache finds a statement by its JS string or an equal one; strings that convert
-- to the same SQL share a plan; more statements than the cache holds evict the oldest
CREATE FUNCTION plancache() RETURNS text LANGUAGE txv8 AS $$
  var out = [], q = 'SELECT $1::int + 1 AS v';
  out.push(plv8.execute(q, [1])[0].v, plv8.execute('SELECT $1::int + ' + '1 AS v', [2])[0].v);
  out.push(plv8.execute('SELECT $1::text AS s -- \uD800', ['a'])[0].s, plv8.execute('SELECT $1::text AS s -- \uD801', ['b'])[0].s);
  for (var i = 0; i < 300; i++) plv8.execute('SELECT $1::int + ' + i + ' AS v', [i]);
  out.push(plv8.execute(q, [3])[0].v, plv8.execute('SELECT $1::text AS s -- \uD800', ['c'])[0].s);
  return JSON.stringify(out);
$$;
SELECT plancache(), plancache();
-- more arguments than are held inline (8), in both forms; a one-row result wider than 16 columns
CREATE FUNCTION manyargs() RETURNS text LANGUAGE txv8 AS $$
  var q = 'SELECT ' + Array.from({length: 12}, function (_, i) { return '$' + (i + 1) + '::int AS c' + i; }).join(', ');
  var a = Array.from({length: 12}, function (_, i) { return i * 10; });
  var p = plv8.prepare(q);
  var rows = [plv8.execute(q, a)[0], plv8.execute.apply(plv8, [q].concat(a))[0], p.execute(a)[0], p.execute.apply(p, a)[0]];
  var wide = plv8.execute('SELECT ' + Array.from({length: 20}, function (_, i) { return i + ' AS w' + i; }).join(', ') + ' WHERE $1', [true]);
  return JSON.stringify(rows.map(function (r) { return Object.values(r).join(','); }).concat([Object.keys(wide[0]).length, wide[0].w19]));
$$;
SELECT manyargs();
-- statements not allowed / transaction control
SELECT ex($$ plv8.execute('COMMIT') $$);
-- an SQL error is a catchable Error carrying sqlerrcode and friends; the transaction goes on
SELECT ex($$ (function () { try { plv8.execute('INSERT INTO spi.items VALUES (1, $1)', 'dup'); }
  catch (e) { return [e instanceof Error, String(e), e.sqlerrcode, e.condition_name, e.code === 23505 + 0 ? 'packed?' : typeof e.code,
                      e.schema_name, e.table_name, e.constraint_name, e.detail, e.hint]; } })() $$);
SELECT ex($$ (function () { try { plv8.execute('SELEC 1'); } catch (e) { return [e.message, e.sqlerrcode, e.internalquery, e.internalpos]; } })() $$);
SELECT ex($$ (function () { try { plv8.execute('SELECT $1::int', 'x'); } catch (e) { return [e.message, e.sqlerrcode]; } })() $$);
SELECT ex($$ (function () { try { plv8.execute('SELECT $1', {toString: function () { throw new Error('from toString'); }}); } catch (e) { return [String(e)]; } })() $$);
-- the statement that failed was rolled back, the others stay
CREATE FUNCTION partial() RETURNS bigint LANGUAGE txv8 AS $$
  plv8.execute('INSERT INTO spi.items VALUES (10, $1)', 'ten');
  try { plv8.execute('INSERT INTO spi.items VALUES (11, $1), (10, $1)', 'dup'); } catch (e) {}
  return plv8.execute('SELECT count(*) AS c FROM spi.items WHERE id >= 10')[0].c;
$$;
SELECT partial();
SELECT id, name FROM items WHERE id >= 10;

-- prepare, PreparedPlan
CREATE FUNCTION plans() RETURNS text LANGUAGE txv8 AS $$
  var out = [];
  var p = plv8.prepare('SELECT name FROM spi.items WHERE id = $1', ['int']);
  out.push(p.execute([1])[0].name, p.execute(2)[0].name);
  try { p.execute(); } catch (e) { out.push(e.message); }
  try { p.execute(1, 2); } catch (e) { out.push(e.message); }
  var q = plv8.prepare('SELECT $1::text || $2 AS s', 'text', 'text');
  out.push(q.execute('a', 'b')[0].s);
  var d = plv8.prepare('SELECT $1 * 2 AS d');
  out.push(String(d.execute(21)[0].d));
  out.push(String(p.free()), String(p.free()));
  try { p.execute([1]); } catch (e) { out.push(e.message); }
  try { plv8.prepare('SELECT nope FROM nowhere'); } catch (e) { out.push(e.sqlerrcode); }
  try { plv8.prepare('SELECT 1', ['no_such_type']); } catch (e) { out.push(e.message); }
  try { p.execute.call({}, [1]); } catch (e) { out.push(e.message); }
  return out.join(' | ');
$$;
SELECT plans();
-- a plan kept in a global survives across calls
CREATE FUNCTION kept() RETURNS text LANGUAGE txv8 AS $$
  if (!plv8.kept) plv8.kept = plv8.prepare('SELECT name FROM spi.items WHERE id = $1', ['int']);
  return plv8.kept.execute(1)[0].name;
$$;
SELECT kept(), kept();

-- plv8.subtransaction: commit on return, roll back on throw (the exception comes back unchanged)
CREATE FUNCTION subx() RETURNS text LANGUAGE txv8 AS $$
  var out = [];
  out.push(plv8.subtransaction(function () { plv8.execute("INSERT INTO spi.items VALUES (20, 'kept')"); return 'returned'; }));
  try {
    plv8.subtransaction(function () {
      plv8.execute("INSERT INTO spi.items VALUES (21, 'rolled back')");
      plv8.execute('SELECT 1/0');
    });
  } catch (e) { out.push(e.sqlerrcode + ' ' + e.message); }
  try {
    plv8.subtransaction(function () {
      plv8.execute("INSERT INTO spi.items VALUES (22, 'rolled back too')");
      throw { custom: 'value' };
    });
  } catch (e) { out.push(JSON.stringify(e)); }
  plv8.subtransaction(function () {
    plv8.subtransaction(function () { plv8.execute("INSERT INTO spi.items VALUES (23, 'nested')"); });
  });
  out.push(String(plv8.subtransaction()), String(plv8.subtransaction(5)));
  out.push(plv8.execute('SELECT string_agg(id::text, \',\' ORDER BY id) AS ids FROM spi.items WHERE id >= 20')[0].ids);
  return out.join(' | ');
$$;
SELECT subx();

-- plv8.find_function: the raw JS function, no conversion
CREATE FUNCTION callee(a int, b int) RETURNS int LANGUAGE txv8 AS $$ return a * b; $$;
CREATE FUNCTION passthrough(x internal) RETURNS internal LANGUAGE txv8 AS $$ return x.map(function (v) { return v * 2; }); $$;
CREATE FUNCTION sqlf() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;
CREATE FUNCTION finder() RETURNS text LANGUAGE txv8 AS $$
  var out = [];
  var f = plv8.find_function('spi.callee');
  out.push(f(6, 7), typeof plv8.find_function('spi.callee(int, int)'));
  out.push(JSON.stringify(plv8.find_function('spi.passthrough(internal)')([1, 2])));
  try { plv8.find_function('spi.nope(int)'); } catch (e) { out.push(e.message); }
  try { plv8.find_function('spi.sqlf'); } catch (e) { out.push(e.message); }
  out.push(typeof plv8.find_function());
  return out.join(' | ');
$$;
SELECT finder();
CREATE ROLE spi_nobody;
REVOKE EXECUTE ON FUNCTION callee(int, int) FROM PUBLIC;
GRANT USAGE ON SCHEMA spi TO spi_nobody;
CREATE FUNCTION find_callee() RETURNS text LANGUAGE txv8 AS $$ return typeof plv8.find_function('spi.callee'); $$;
SET ROLE spi_nobody;
SELECT find_callee();
RESET ROLE;
DROP OWNED BY spi_nobody;
DROP ROLE spi_nobody;

-- quoting
CREATE FUNCTION quoting() RETURNS text LANGUAGE txv8 AS $$
  return [plv8.quote_literal("kevin's name"), plv8.quote_ident("kevin's name"), plv8.quote_ident('plain'),
          plv8.quote_nullable(null), plv8.quote_nullable(undefined), plv8.quote_nullable(5), plv8.quote_literal(null),
          String(plv8.quote_literal())].join(' ');
$$;
SELECT quoting();

-- elog
DO $$
  plv8.elog(NOTICE, 'a', 1, [2, 3], { toString: function () { return 'obj'; } });
  plv8.elog(INFO, 'info');
  plv8.elog(WARNING, 'warning');
  plv8.elog(DEBUG1, 'not shown');
  try { plv8.elog(NOTICE); } catch (e) { plv8.elog(NOTICE, typeof e, e); }
  try { plv8.elog(12345, 'x'); } catch (e) { plv8.elog(NOTICE, typeof e, e); }
  try { plv8.elog(ERROR, 'caught', 'error'); } catch (e) { plv8.elog(NOTICE, e instanceof Error, e.message); }
$$ LANGUAGE txv8;
DO $$ plv8.elog(ERROR, 'uncaught', 'elog'); $$ LANGUAGE txv8;

SET client_min_messages = warning;
DROP SCHEMA spi CASCADE;
