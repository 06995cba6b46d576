-- Cancels, timeouts, the heap limit: ERRORs, never crashes, and the session goes on.
CREATE SCHEMA intr;
SET search_path = intr, public;
-- where a cancel lands (in JS or in SQL) decides the CONTEXT lines: print messages only
\set VERBOSITY terse

-- statement_timeout stops pure JS, SPI-heavy loops and loops that catch errors
SET statement_timeout = '200ms';
DO $$ while (true) {} $$ LANGUAGE txv8;
DO $$ while (true) { plv8.execute('SELECT 1'); } $$ LANGUAGE txv8;
DO $$ while (true) { try { plv8.execute('SELECT pg_sleep(0.01)'); } catch (e) {} } $$ LANGUAGE txv8;
DO $$ while (true) { try { plv8.execute('SELECT 1/0'); } catch (e) {} } $$ LANGUAGE txv8;
DO $$ while (true) { try { plv8.quote_literal('x'); } catch (e) {} } $$ LANGUAGE txv8;
DO $$ for (;;) { try { plv8.subtransaction(function () { plv8.execute('SELECT 1'); }); } catch (e) {} } $$ LANGUAGE txv8;
DO $$ var c = plv8.prepare('SELECT g FROM generate_series(1, 100000000) g').cursor(); while (true) { try { c.fetch(1000); } catch (e) {} } $$ LANGUAGE txv8;
DO $$ try { while (true) {} } finally { plv8.elog(NOTICE, 'finally does not run after a cancel'); } $$ LANGUAGE txv8;
CREATE FUNCTION spin() RETURNS int LANGUAGE txv8 AS $$ while (true) {} $$;
DO $$ while (true) { try { plv8.execute('SELECT intr.spin()'); } catch (e) {} } $$ LANGUAGE txv8;
RESET statement_timeout;
DO $$ plv8.elog(NOTICE, 'next call works'); $$ LANGUAGE txv8;
-- a cancel inside a subtransaction leaves no open subtransaction behind
BEGIN;
SET LOCAL statement_timeout = '200ms';
DO $$ plv8.subtransaction(function () { while (true) {} }); $$ LANGUAGE txv8;
ROLLBACK;
SELECT 'session alive' AS ok;

-- the heap limit turns a memory bomb into an ERROR; the engine is reset and works again
\c
\set VERBOSITY terse
SET search_path = intr, public;
SET txv8.memory_limit = 64;
DO $$ globalThis.keep = 'lost after the reset'; $$ LANGUAGE txv8;
DO $$ var a = []; while (true) a.push({ x: new Array(1000).fill(1.5) }); $$ LANGUAGE txv8;
DO $$ plv8.elog(NOTICE, 'after the bomb:', typeof keep); $$ LANGUAGE txv8;
-- ArrayBuffers count too: over the limit is a catchable RangeError
DO $$
  try { new ArrayBuffer(200 * 1024 * 1024); } catch (e) { plv8.elog(NOTICE, e.name); }
  var small = new ArrayBuffer(1024 * 1024);
  plv8.elog(NOTICE, 'small buffer', small.byteLength);
$$ LANGUAGE txv8;
-- a memory bomb in a nested call ends the whole statement
CREATE FUNCTION bomb() RETURNS int LANGUAGE txv8 AS $$ var a = []; while (true) a.push(new Array(1000).fill(2.5)); $$;
DO $$ try { plv8.execute('SELECT intr.bomb()'); } catch (e) { plv8.elog(NOTICE, 'must not be caught'); } $$ LANGUAGE txv8;
DO $$ plv8.elog(NOTICE, 'works again'); $$ LANGUAGE txv8;

SET client_min_messages = warning;
DROP SCHEMA intr CASCADE;
