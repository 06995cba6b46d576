-- Trigger functions: NEW, OLD, TG_*, row results (skip, keep, replace), statement level, dropped columns.
CREATE SCHEMA trg;
SET search_path = trg, public;
CREATE TABLE t (id int PRIMARY KEY, name text, qty int);

CREATE FUNCTION describe() RETURNS trigger LANGUAGE txv8 AS $$
  plv8.elog(NOTICE, TG_NAME, TG_WHEN, TG_LEVEL, TG_OP, TG_TABLE_SCHEMA + '.' + TG_TABLE_NAME,
            TG_RELID === plv8.execute("SELECT 'trg.t'::regclass::oid AS o")[0].o,
            JSON.stringify(TG_ARGV), JSON.stringify(NEW), JSON.stringify(OLD));
$$;
CREATE TRIGGER a_describe BEFORE INSERT OR UPDATE OR DELETE ON t FOR EACH ROW EXECUTE FUNCTION describe('x', '2');
CREATE TRIGGER b_stmt AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON t FOR EACH STATEMENT EXECUTE FUNCTION describe();
INSERT INTO t VALUES (1, 'one', 1);
UPDATE t SET qty = 5 WHERE id = 1;
DELETE FROM t WHERE id = 1;
TRUNCATE t;
DROP TRIGGER a_describe ON t;
DROP TRIGGER b_stmt ON t;

-- BEFORE ROW: an object replaces the row, null skips it, undefined keeps it unchanged
CREATE FUNCTION shape() RETURNS trigger LANGUAGE txv8 AS $$
  if (NEW.name === 'skip') return null;
  if (NEW.name === 'keep') { NEW.qty = 999; return; }
  NEW.name = NEW.name.toUpperCase();
  NEW.qty = (NEW.qty || 0) * 10;
  return NEW;
$$;
CREATE TRIGGER shape BEFORE INSERT OR UPDATE ON t FOR EACH ROW EXECUTE FUNCTION shape();
INSERT INTO t VALUES (1, 'abc', 2), (2, 'skip', 3), (3, 'keep', 4);
SELECT * FROM t ORDER BY id;
UPDATE t SET name = 'def' WHERE id = 1;
SELECT * FROM t ORDER BY id;
-- a returned object with a missing column is an error
CREATE OR REPLACE FUNCTION shape() RETURNS trigger LANGUAGE txv8 AS $$ return { id: NEW.id }; $$;
INSERT INTO t VALUES (9, 'x', 1);
DROP TRIGGER shape ON t;

-- dropped and added columns
ALTER TABLE t DROP COLUMN name;
ALTER TABLE t ADD COLUMN tags text[];
CREATE FUNCTION tagger() RETURNS trigger LANGUAGE txv8 AS $$
  NEW.tags = (NEW.tags || []).concat([TG_OP.toLowerCase(), Object.keys(NEW).join('+')]);
  return NEW;
$$;
CREATE TRIGGER tagger BEFORE INSERT OR UPDATE ON t FOR EACH ROW EXECUTE FUNCTION tagger();
INSERT INTO t VALUES (5, 50, ARRAY['new']);
UPDATE t SET qty = 51 WHERE id = 5;
SELECT * FROM t WHERE id = 5;

-- AFTER triggers may run SQL; errors abort the statement
CREATE TABLE audit (op text, id int);
CREATE FUNCTION audit() RETURNS trigger LANGUAGE txv8 AS $$
  plv8.execute('INSERT INTO trg.audit VALUES ($1, $2)', [TG_OP, (NEW || OLD).id]);
  if ((NEW || OLD).id === 666) throw new Error('not that one');
$$;
CREATE TRIGGER audit AFTER INSERT OR DELETE ON t FOR EACH ROW EXECUTE FUNCTION audit();
INSERT INTO t (id, qty) VALUES (6, 1);
DELETE FROM t WHERE id = 6;
INSERT INTO t (id, qty) VALUES (666, 1);
SELECT * FROM audit ORDER BY op DESC;

-- INSTEAD OF triggers on a view report "INSTEAD OF" (plv8 said "AFTER")
CREATE VIEW v AS SELECT id, qty FROM t;
CREATE FUNCTION instead() RETURNS trigger LANGUAGE txv8 AS $$
  plv8.elog(NOTICE, TG_WHEN, TG_OP, JSON.stringify(NEW));
  plv8.execute('INSERT INTO trg.t (id, qty) VALUES ($1, $2)', [NEW.id, NEW.qty]);
  return NEW;
$$;
CREATE TRIGGER instead INSTEAD OF INSERT ON v FOR EACH ROW EXECUTE FUNCTION instead();
INSERT INTO v VALUES (7, 70);
SELECT id, qty FROM t WHERE id = 7;

-- a trigger function cannot be called directly
SELECT instead();

SET client_min_messages = warning;
DROP SCHEMA trg CASCADE;
