-- Cursors: fetch, move, close; closed and foreign cursors; errors inside fetch.
CREATE SCHEMA cur;
SET search_path = cur, public;

CREATE FUNCTION cursors() RETURNS text LANGUAGE txv8 AS $$
  var out = [];
  var p = plv8.prepare('SELECT g AS n FROM generate_series(1, $1) g', ['int']);
  var c = p.cursor([6]);
  out.push(JSON.stringify(c.fetch()), JSON.stringify(c.fetch(2)));
  c.move(1);
  out.push(JSON.stringify(c.fetch()));
  out.push(JSON.stringify(c.fetch(-2)));
  c.move();
  out.push(JSON.stringify(c.fetch(10)), JSON.stringify(c.fetch(3)), String(c.fetch()));
  out.push(String(c.close()));
  try { c.fetch(); } catch (e) { out.push(e.message); }
  try { c.close(); } catch (e) { out.push(e.message); }
  var c2 = p.cursor(2);
  out.push(JSON.stringify(c2.fetch(5)));
  p.free();
  return out.join(' | ');
$$;
SELECT cursors();

-- a cursor kept after the transaction is gone
CREATE FUNCTION keep_cursor() RETURNS text LANGUAGE txv8 AS $$
  if (plv8.kept_cursor) { try { plv8.kept_cursor.fetch(); } catch (e) { return 'old cursor: ' + e.message; } }
  plv8.kept_cursor = plv8.prepare('SELECT 1 AS x').cursor();
  return 'kept';
$$;
SELECT keep_cursor();
SELECT keep_cursor();

-- a cursor over a failing query: the error keeps its SQLSTATE, the cursor is then unusable
CREATE FUNCTION failing_cursor() RETURNS text LANGUAGE txv8 AS $$
  var out = [];
  var c = plv8.prepare('SELECT 10 / (x - 2) AS v FROM generate_series(1, 3) x').cursor();
  out.push(JSON.stringify(c.fetch()));
  try { c.fetch(); } catch (e) { out.push(e.sqlerrcode + ': ' + e.message); }
  try { c.fetch(); } catch (e) { out.push(e.sqlerrcode + ': ' + e.message.replace(/".*"/, '"..."')); }
  return out.join(' | ');
$$;
SELECT failing_cursor();

-- methods on foreign receivers throw (regression #527 crashed plv8)
CREATE FUNCTION foreign_this() RETURNS text LANGUAGE txv8 AS $$
  var c = plv8.prepare('SELECT 1').cursor();
  var out = [];
  [null, undefined, {}, 5, plv8].forEach(function (r) {
    ['fetch', 'move', 'close'].forEach(function (m) {
      try { c[m].call(r, 1); out.push('no error'); } catch (e) { out.push(e.message); }
    });
  });
  return out.join(',');
$$;
SELECT foreign_this();

SET client_min_messages = warning;
DROP SCHEMA cur CASCADE;
