-- Statements without a subtransaction (a txv8 extension; plv8 ignores the options argument):
-- plv8.prepare(sql, types, { subtransaction: false }) runs execute()/cursor() directly under the
-- current (sub)transaction, like a PL/pgSQL statement outside an EXCEPTION block. An SQL error
-- fails the innermost plv8.subtransaction() frame (or the whole call when there is none): until
-- it is rolled back, every plv8.* call that would enter PostgreSQL throws 25P02 at once.
CREATE SCHEMA direct;
SET search_path = direct, public;
CREATE TABLE t (id int PRIMARY KEY, v text CHECK (v <> 'bad'));
INSERT INTO t VALUES (1, 'one');

CREATE FUNCTION ex(code text) RETURNS text LANGUAGE txv8 AS $$
  var r = eval(code);
  return JSON.stringify(r, function (k, v) { return typeof v === 'bigint' ? v + 'n' : v; });
$$;

-- the options argument: types as an array, as separate names, [] / null / undefined (deduced)
SELECT ex($$ plv8.prepare('SELECT v FROM direct.t WHERE id = $1', ['int'], { subtransaction: false }).execute(1) $$);
SELECT ex($$ plv8.prepare('SELECT $1::text || $2 AS s', 'text', 'text', { subtransaction: false }).execute('a', 'b') $$);
SELECT ex($$ plv8.prepare('SELECT $1 + 1 AS n', [], { subtransaction: false }).execute(41) $$);
SELECT ex($$ plv8.prepare('SELECT count(*) AS n FROM direct.t', null, { subtransaction: false }).execute() $$);
SELECT ex($$ plv8.prepare('UPDATE direct.t SET v = v WHERE id = 1', undefined, { subtransaction: true }).execute() $$);
SELECT ex($$ plv8.prepare('SELECT 1 AS one', { subtransaction: false }).execute() $$);
SELECT ex($$ (function () { try { plv8.prepare('SELECT 1', [], { subtransation: false }); } catch (e) { return e.message; } })() $$);
SELECT ex($$ (function () { try { plv8.prepare('SELECT 1', [], { subtransaction: 0 }); } catch (e) { return e.message; } })() $$);
SELECT ex($$ typeof plv8.txv8_version $$);

-- the caught Error carries the original SQLSTATE and fields; catching it and going on is refused
CREATE FUNCTION catch_and_continue() RETURNS text LANGUAGE txv8 AS $$
  var ins = plv8.prepare('INSERT INTO direct.t VALUES ($1, $2)', ['int', 'text'], { subtransaction: false });
  var out = [], first;
  try { ins.execute([1, 'dup']); } catch (e) {
    first = e;
    out.push([e instanceof Error, e.message, e.sqlerrcode, e.condition_name, e.constraint_name, e.detail].join(' / '));
  }
  function refused(what, f) {
    try { f(); out.push(what + ': ran'); }
    catch (e) { out.push(what + ': ' + e.sqlerrcode + ' ' + e.condition_name + (e.cause === first ? ' (cause: the first error)' : '')); }
  }
  refused('execute', function () { plv8.execute('SELECT 1'); });
  refused('direct plan', function () { ins.execute([2, 'two']); });
  refused('prepare', function () { plv8.prepare('SELECT 1'); });
  refused('subtransaction', function () { plv8.subtransaction(function () {}); });
  refused('find_function', function () { plv8.find_function('direct.ex'); });
  refused('free (deferred)', function () { ins.free(); });
  refused('quote_literal', function () { plv8.quote_literal("it's"); });
  refused('elog', function () { plv8.elog(NOTICE, 'elog below ERROR still reports'); });
  try { plv8.execute('SELECT 1'); } catch (e) { out.push(e.message); out.push(e.hint); }
  plv8.elog(NOTICE, out.join('\n'));
  return 'returned normally';
$$;
-- the function returned normally, yet the call fails with the original error
SELECT catch_and_continue();
SELECT * FROM t ORDER BY id;
-- the plan freed while the call was failed is gone, and the next call works
SELECT ex($$ plv8.execute('SELECT count(*) AS n FROM direct.t') $$);

-- the original SQLSTATE and fields reach the caller (here a PL/pgSQL EXCEPTION block)
CREATE FUNCTION swallow(v text) RETURNS text LANGUAGE txv8 AS $$
  try { plv8.prepare('INSERT INTO direct.t VALUES (5, $1)', ['text'], { subtransaction: false }).execute(v); }
  catch (e) { return 'swallowed ' + e.sqlerrcode; }
  return 'inserted';
$$;
DO $$
DECLARE st text; msg text; det text; cons text; ctx text;
BEGIN
  PERFORM direct.swallow('bad');
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
    cons = CONSTRAINT_NAME, ctx = PG_EXCEPTION_CONTEXT;
  RAISE NOTICE 'caught % (%) constraint % detail %', st, msg, cons, det;
  RAISE NOTICE 'context: %', ctx;
  PERFORM direct.swallow('good');   -- the block's subtransaction was rolled back: SQL works again
  RAISE NOTICE 'after the rollback: %', (SELECT v FROM direct.t WHERE id = 5);
END $$;
DELETE FROM t WHERE id = 5;
-- letting the very Error escape reports it as any SQL error: with the JS line of the throw
CREATE FUNCTION escape() RETURNS void LANGUAGE txv8 AS $$
  var p = plv8.prepare('INSERT INTO direct.t VALUES (1, $1)', ['text'], { subtransaction: false });
  p.execute('dup');
$$;
SELECT escape();
-- throwing something else still fails the call with the original error
CREATE FUNCTION replace_error() RETURNS void LANGUAGE txv8 AS $$
  try { plv8.prepare('SELECT 1/0', null, { subtransaction: false }).execute(); }
  catch (e) { throw new Error('something else'); }
$$;
SELECT replace_error();
-- inside a transaction block, the failed call leaves the transaction aborted, as in PL/pgSQL
BEGIN;
SELECT swallow('bad');
SELECT 1;
ROLLBACK;

-- a plv8.subtransaction() frame is the scope: rolled back, it throws the original Error, and
-- the call goes on
CREATE FUNCTION recovers() RETURNS text LANGUAGE txv8 AS $$
  var ins = plv8.prepare('INSERT INTO direct.t VALUES ($1, $2)', ['int', 'text'], { subtransaction: false });
  var out = [];
  ins.execute([2, 'two']);
  try {
    plv8.subtransaction(function () {
      ins.execute([3, 'three']);   // undone with the frame
      ins.execute([1, 'dup']);     // fails the frame
      out.push('not reached');
    });
  } catch (e) { out.push('frame threw ' + e.sqlerrcode + ' ' + e.constraint_name); }
  ins.execute([4, 'four']);
  // a failed frame fails even when fn catches the error and returns normally
  var inner;
  try {
    var r = plv8.subtransaction(function () {
      ins.execute([6, 'six']);
      try { ins.execute([1, 'dup']); } catch (e) { inner = e; }
      return 'normal return';
    });
    out.push('returned ' + r);
  } catch (e) { out.push('frame threw ' + e.sqlerrcode + (e === inner ? ' (the same Error)' : '')); }
  // ... or throws something else
  try {
    plv8.subtransaction(function () {
      try { ins.execute([1, 'dup']); } catch (e) { throw new Error('other'); }
    });
  } catch (e) { out.push('frame threw ' + e.sqlerrcode); }
  // nested frames: only the innermost fails; the outer one commits
  plv8.subtransaction(function () {
    ins.execute([7, 'seven']);
    try { plv8.subtransaction(function () { ins.execute([8, 'eight']); ins.execute([8, 'again']); }); }
    catch (e) { out.push('inner frame threw ' + e.sqlerrcode); }
    ins.execute([9, 'nine']);
  });
  // statements with a subtransaction still recover on their own
  try { plv8.execute('INSERT INTO direct.t VALUES (1, $1)', ['dup']); } catch (e) { out.push('plv8.execute: ' + e.sqlerrcode); }
  ins.execute([10, 'ten']);
  return out.join('\n');
$$;
SELECT recovers();
SELECT * FROM t ORDER BY id;
DELETE FROM t WHERE id > 1;

-- nested calls (JS -> SQL -> JS): the inner call's failure reaches the outer statement
CREATE FUNCTION inner_fails() RETURNS int LANGUAGE txv8 AS $$
  try { plv8.prepare('SELECT 1/0', null, { subtransaction: false }).execute(); } catch (e) {}
  return 1;
$$;
CREATE FUNCTION outer_calls(direct boolean) RETURNS text LANGUAGE txv8 AS $$
  var p = plv8.prepare('SELECT direct.inner_fails()', null, { subtransaction: !direct });
  var out = [];
  try { p.execute(); } catch (e) { out.push('caught ' + e.sqlerrcode); }
  try { plv8.execute('SELECT 1'); out.push('goes on'); } catch (e) { out.push('then ' + e.sqlerrcode); }
  return out.join(', ');
$$;
SELECT outer_calls(false);  -- a statement with a subtransaction: caught, rolled back, goes on
SELECT outer_calls(true);   -- without one: the outer call fails in turn

-- cursors of a plan without subtransaction open, fetch and move without one too
CREATE FUNCTION cursors() RETURNS text LANGUAGE txv8 AS $$
  var p = plv8.prepare('SELECT 10 / (3 - g) AS q FROM generate_series(1, 5) g', null, { subtransaction: false });
  var out = [];
  var c = p.cursor();
  out.push(JSON.stringify(c.fetch(2)));
  c.close();
  // an error in a fetch fails the frame; the frame's rollback makes SQL usable again
  var d = p.cursor();
  try {
    plv8.subtransaction(function () {
      d.fetch();
      d.fetch();
      d.fetch();   // division by zero
    });
  } catch (e) { out.push('fetch: ' + e.sqlerrcode); }
  try { plv8.subtransaction(function () { d.fetch(); }); }
  catch (e) { out.push('the failed cursor: ' + e.sqlerrcode + ' ' + e.message); }
  out.push(JSON.stringify(plv8.execute('SELECT 1 AS ok')));
  // while a scope is failed, cursors are refused too (even close)
  var f = p.cursor();
  try {
    plv8.subtransaction(function () {
      try { plv8.prepare('SELECT 1/0', null, { subtransaction: false }).execute(); } catch (e) {}
      try { f.fetch(); } catch (e) { out.push('fetch refused: ' + e.sqlerrcode); }
      try { f.move(1); } catch (e) { out.push('move refused: ' + e.sqlerrcode); }
      try { f.close(); } catch (e) { out.push('close refused: ' + e.sqlerrcode); }
    });
  } catch (e) { out.push('frame: ' + e.sqlerrcode); }
  out.push(JSON.stringify(f.fetch(2)));
  f.close();
  return out.join('\n');
$$;
SELECT cursors();

-- set-returning functions and triggers: a failed call returns no rows / fails the statement
CREATE FUNCTION srf() RETURNS SETOF int LANGUAGE txv8 AS $$
  plv8.return_next(1);
  try { plv8.prepare('SELECT 1/0', null, { subtransaction: false }).execute(); } catch (e) {}
  try { plv8.return_next(2); } catch (e) { plv8.elog(NOTICE, 'return_next refused: ' + e.sqlerrcode); }
  return [3];
$$;
SELECT * FROM srf();
CREATE TABLE log (id int, note text);
CREATE FUNCTION trg() RETURNS trigger LANGUAGE txv8 AS $$
  try { plv8.prepare('INSERT INTO direct.log VALUES ($1, 1/($1 - $1))', ['int'], { subtransaction: false }).execute(NEW.id); }
  catch (e) {}
  return NEW;
$$;
CREATE TRIGGER t_trg BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION trg();
INSERT INTO t VALUES (20, 'twenty');
SELECT count(*) FROM t WHERE id = 20;
DROP TRIGGER t_trg ON t;

-- a procedure's plv8.commit() is refused too while the call is failed
CREATE PROCEDURE commits() LANGUAGE txv8 AS $$
  plv8.prepare('INSERT INTO direct.t VALUES (30, $1)', ['text'], { subtransaction: false }).execute('kept');
  plv8.commit();
  try { plv8.prepare('INSERT INTO direct.t VALUES (31, $1)', ['text'], { subtransaction: false }).execute('bad'); } catch (e) {}
  try { plv8.commit(); } catch (e) { plv8.elog(NOTICE, 'commit refused: ' + e.sqlerrcode); }
$$;
CALL commits();
SELECT * FROM t WHERE id >= 30 ORDER BY id;

-- cancels and timeouts stay uncatchable; a failed call that is then cancelled reports the cancel
SET statement_timeout = '200ms';
\set VERBOSITY terse
DO $$
  try { plv8.prepare('SELECT pg_sleep(5)', null, { subtransaction: false }).execute(); }
  catch (e) { plv8.elog(NOTICE, 'must not be caught'); }
$$ LANGUAGE txv8;
DO $$
  try { plv8.subtransaction(function () {
    try { plv8.prepare('SELECT 1/0', null, { subtransaction: false }).execute(); } catch (e) {}
    while (true) {}
  }); } catch (e) { plv8.elog(NOTICE, 'must not be caught'); }
$$ LANGUAGE txv8;
DO $$ for (;;) { try { plv8.subtransaction(function () { plv8.prepare('SELECT 1/0', null, { subtransaction: false }).execute(); }); } catch (e) {} } $$ LANGUAGE txv8;
\set VERBOSITY default
DO $$
  try { plv8.prepare('SELECT 1/0', null, { subtransaction: false }).execute(); } catch (e) {}
  while (true) {}
$$ LANGUAGE txv8;
DO $$ while (true) { try { plv8.prepare('SELECT 1/0', null, { subtransaction: false }).execute(); } catch (e) {} } $$ LANGUAGE txv8;
RESET statement_timeout;
DO $$ plv8.elog(NOTICE, 'next call works'); $$ LANGUAGE txv8;

SET client_min_messages = warning;
DROP SCHEMA direct CASCADE;
