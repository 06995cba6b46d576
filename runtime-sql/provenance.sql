-- txfn provenance capture (issue 5): the row trigger, the TRUNCATE trigger, the sync that keeps
-- the triggers in step with the application tables, the DDL event trigger's function, and the
-- read-provenance entry point. Tables: migrations/system/*_txfn-provenance.sql. Contract and
-- what replay may rely on: provenance/README.md.
--
-- (Re)installed by provenance/install.ts whenever this file changes; the installed version is
-- kept in the comment of txfn.provenance_sync().

-- The next number of the transaction's change sequence (writes and reads share it). A
-- transaction-local setting: a rolled-back subtransaction restores it, so committed numbers are
-- 1..n without gaps. Never read from a table: under SERIALIZABLE a read of txfn.provenance
-- would take predicate locks every concurrent writer conflicts with.
CREATE OR REPLACE FUNCTION txfn._provenance_next_seq(n integer DEFAULT 1) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
  cur text := current_setting('txfn.provenance_seq', true);
  s integer := CASE WHEN cur IS NULL OR cur = '' THEN 0 ELSE cur::integer END;
BEGIN
  cur := set_config('txfn.provenance_seq', (s + n)::text, true);
  RETURN s + 1;
END
$fn$;

-- AFTER INSERT OR UPDATE OR DELETE FOR EACH ROW, arguments (table_id, key column, …); no key
-- column = no primary key: the whole row is the key. Runs as the writing role; one INSERT.
-- The reference behaviour: txfn._provenance_capture_c() of the txfn_capture extension
-- (capture/) writes the same rows at a fraction of the cost and replaces it where installed.
CREATE OR REPLACE FUNCTION txfn._provenance_capture() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  -- the next number of the transaction's sequence (see txfn._provenance_next_seq), one expression
  s integer := set_config('txfn.provenance_seq',
                          (coalesce(nullif(current_setting('txfn.provenance_seq', true), ''), '0')::integer + 1)::text, true)::integer;
  o jsonb;
  n jsonb;
  k jsonb;
  ok jsonb;
  i integer;
BEGIN
  IF TG_OP = 'UPDATE' THEN
    o := to_jsonb(OLD);
    n := to_jsonb(NEW);
  ELSIF TG_OP = 'INSERT' THEN
    n := to_jsonb(NEW);
  ELSE
    o := to_jsonb(OLD);
  END IF;
  IF TG_NARGS = 2 THEN
    k := jsonb_build_object(TG_ARGV[1], coalesce(n, o) -> TG_ARGV[1]);
    IF o IS NOT NULL AND n IS NOT NULL AND (o -> TG_ARGV[1]) <> (n -> TG_ARGV[1]) THEN
      ok := jsonb_build_object(TG_ARGV[1], o -> TG_ARGV[1]);
    END IF;
  ELSIF TG_NARGS = 1 THEN
    k := coalesce(n, o);
    IF o IS NOT NULL AND n IS NOT NULL AND o <> n THEN ok := o; END IF;
  ELSE
    k := '{}';
    FOR i IN 1 .. TG_NARGS - 1 LOOP
      k := k || jsonb_build_object(TG_ARGV[i], coalesce(n, o) -> TG_ARGV[i]);
    END LOOP;
    IF o IS NOT NULL AND n IS NOT NULL THEN
      ok := '{}';
      FOR i IN 1 .. TG_NARGS - 1 LOOP
        ok := ok || jsonb_build_object(TG_ARGV[i], o -> TG_ARGV[i]);
      END LOOP;
      IF ok = k THEN ok := NULL; END IF;
    END IF;
  END IF;
  INSERT INTO txfn.provenance (seq, table_id, op, key, old_key, old_row, new_row)
    VALUES (s, TG_ARGV[0]::integer, substr(TG_OP, 1, 1)::"char", k, ok, o, n);
  RETURN NULL;
END
$fn$;

-- Records every row of `rel` (ONLY: not its partitions) as one change each: op 'T' (old_row:
-- the rows a TRUNCATE removes) or 'I' (new_row: the rows CREATE TABLE AS / SELECT INTO wrote
-- before capture was on). Numbers them in the transaction's sequence; returns how many.
CREATE OR REPLACE FUNCTION txfn._provenance_record_rows(rel regclass, table_id integer, cols text[], op "char") RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
  s integer := txfn._provenance_next_seq(0);  -- the first number this statement may use
  n bigint;
BEGIN
  EXECUTE format(
    'INSERT INTO txfn.provenance (seq, table_id, op, key, old_row, new_row) '
    'SELECT $1 + (row_number() OVER ())::integer - 1, $2, $4, '
    'CASE WHEN cardinality($3) = 0 THEN r ELSE (SELECT jsonb_object_agg(c, r -> c) FROM unnest($3) c) END, '
    'CASE WHEN $4 = ''T'' THEN r END, CASE WHEN $4 = ''I'' THEN r END '
    'FROM (SELECT to_jsonb(t) AS r FROM ONLY %s t) x', rel)
    USING s, table_id, cols, op;
  GET DIAGNOSTICS n = ROW_COUNT;
  PERFORM set_config('txfn.provenance_seq', (s - 1 + n)::text, true);
  RETURN n;
END
$fn$;

-- BEFORE TRUNCATE FOR EACH STATEMENT, arguments as above. Records every removed row as a 'T'
-- change (so replay can put them back), or refuses, per txfn.provenance_config.truncate.
CREATE OR REPLACE FUNCTION txfn._provenance_truncate() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  mode text;
BEGIN
  SELECT c.truncate INTO mode FROM txfn.provenance_config c;
  IF mode = 'refuse' THEN
    RAISE EXCEPTION 'txfn: TRUNCATE of %.% is refused: it is a captured table and provenance is configured to refuse TRUNCATE',
        TG_TABLE_SCHEMA, TG_TABLE_NAME
      USING ERRCODE = 'TXF20',
            HINT = 'use DELETE (captured row by row), or exclude the table: txfn provenance config --exclude ' || TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME;
  END IF;
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'txfn: TRUNCATE of %.% is refused at isolation %: it would remove rows committed after this transaction''s snapshot, which provenance cannot record',
        TG_TABLE_SCHEMA, TG_TABLE_NAME, current_setting('transaction_isolation')
      USING ERRCODE = 'TXF21', HINT = 'run the TRUNCATE in a READ COMMITTED transaction, or use DELETE';
  END IF;
  PERFORM txfn._provenance_record_rows(TG_RELID, TG_ARGV[0]::integer,
                                       CASE WHEN TG_NARGS > 1 THEN TG_ARGV[1:TG_NARGS - 1] ELSE '{}'::text[] END, 'T');
  RETURN NULL;
END
$fn$;

-- Read provenance: the runtime calls this after each ctx.query/ctx.execute when
-- txfn.provenance_config.capture_reads is on (see provenance/README.md).
CREATE OR REPLACE FUNCTION txfn._provenance_read(sql text, params jsonb, row_count bigint) RETURNS void
LANGUAGE sql VOLATILE AS $fn$
  INSERT INTO txfn.provenance_reads (seq, sql, params, row_count) VALUES (txfn._provenance_next_seq(), sql, params, row_count)
$fn$;

-- Does schema.table match a glob list? '*' matches any run of characters, '?' one; a pattern
-- without a dot names a schema (shop = shop.*).
CREATE OR REPLACE FUNCTION txfn._provenance_glob(schema_name text, table_name text, patterns text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $fn$
  SELECT EXISTS (
    SELECT 1 FROM unnest(patterns) p
    WHERE (schema_name || '.' || table_name) ~ ('^' ||
      replace(replace(regexp_replace(CASE WHEN strpos(p, '.') = 0 THEN p || '.*' ELSE p END,
                                     '([\\^$.|+()\[\]{}])', '\\\1', 'g'), '*', '.*'), '?', '.') || '$'))
$fn$;

-- The application tables capture should cover now: plain tables and partitioned roots outside
-- the system schemas, not owned by an extension, matching include and not exclude.
CREATE OR REPLACE FUNCTION txfn.provenance_candidates()
RETURNS TABLE (relid oid, schema_name name, table_name name, partitioned boolean, key_columns text[])
LANGUAGE sql STABLE AS $fn$
  SELECT c.oid, n.nspname, c.relname, c.relkind = 'p',
         coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord)
                   FROM pg_index i
                   CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                   WHERE i.indrelid = c.oid AND i.indisprimary), '{}')
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  CROSS JOIN txfn.provenance_config cfg
  WHERE cfg.enabled
    AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relpersistence <> 't'
    AND n.nspname NOT IN ('txfn', 'pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\_%'
    AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
    AND txfn._provenance_glob(n.nspname, c.relname, cfg.include)
    AND NOT txfn._provenance_glob(n.nspname, c.relname, cfg.exclude)
$fn$;

-- The row trigger function capture installs: the C txfn._provenance_capture_c() when the
-- txfn_capture extension is installed in this database and the caller (the sync's owner) may
-- attach it, else the PL/pgSQL txfn._provenance_capture().
CREATE OR REPLACE FUNCTION txfn._provenance_capture_fn() RETURNS regproc
LANGUAGE sql STABLE AS $fn$
  SELECT coalesce((SELECT p.oid::regproc FROM pg_proc p
                   JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
                   JOIN pg_extension e ON d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid
                   WHERE p.oid = to_regprocedure('txfn._provenance_capture_c()') AND e.extname = 'txfn_capture'
                     AND has_function_privilege(p.oid, 'EXECUTE')),
                  'txfn._provenance_capture'::regproc)
$fn$;

-- tgargs of a trigger created with these arguments.
CREATE OR REPLACE FUNCTION txfn._provenance_tgargs(args text[]) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $fn$
  SELECT coalesce(string_agg(convert_to(a, getdatabaseencoding()) || '\x00'::bytea, ''::bytea ORDER BY o), ''::bytea)
  FROM unnest(args) WITH ORDINALITY AS u(a, o)
$fn$;

-- Makes sure relation `rel` has trigger `name` exactly as txfn installs it (function, timing,
-- events, arguments, no WHEN, no column list, ENABLE ALWAYS so session_replication_role =
-- replica does not skip it). Returns 'installed', 'updated', 'enabled' or 'unchanged'.
CREATE OR REPLACE FUNCTION txfn._provenance_ensure_trigger(rel regclass, name text, fn regproc, tgtype smallint, args text[])
RETURNS text LANGUAGE plpgsql AS $fn$
DECLARE
  t pg_trigger;
  timing text := CASE WHEN tgtype & 2 = 2 THEN 'BEFORE' ELSE 'AFTER' END;
  events text := CASE WHEN tgtype & 32 = 32 THEN 'TRUNCATE' ELSE 'INSERT OR UPDATE OR DELETE' END;
  level text := CASE WHEN tgtype & 1 = 1 THEN 'ROW' ELSE 'STATEMENT' END;
  action text;
BEGIN
  SELECT * INTO t FROM pg_trigger WHERE tgrelid = rel AND tgname = name;
  IF FOUND AND t.tgfoid = fn AND t.tgtype = tgtype AND t.tgargs = txfn._provenance_tgargs(args)
     AND t.tgqual IS NULL AND t.tgattr::text = '' AND t.tgparentid = 0 THEN
    IF t.tgenabled = 'A' THEN RETURN 'unchanged'; END IF;
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', rel, name);
    RETURN 'enabled';
  END IF;
  action := CASE WHEN FOUND THEN 'updated' ELSE 'installed' END;
  IF FOUND THEN EXECUTE format('DROP TRIGGER %I ON %s', name, rel); END IF;
  EXECUTE format('CREATE TRIGGER %I %s %s ON %s FOR EACH %s EXECUTE FUNCTION %s(%s)', name, timing, events, rel, level, fn,
                 (SELECT string_agg(quote_literal(a), ', ') FROM unnest(args) a));
  EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', rel, name);
  RETURN action;
END
$fn$;

-- Brings capture in step with the tables: installs or fixes the triggers of every candidate
-- table (and the TRUNCATE trigger of every partition), removes them from tables no longer
-- captured, and updates txfn.provenance_tables (new tables, renames, key changes, drops).
-- One row per captured or uncaptured table; `warning` is set for a table without primary key.
-- The row trigger is the C one where the txfn_capture extension is installed (see
-- txfn._provenance_capture_fn(); creating or dropping the extension re-syncs through the DDL
-- event trigger), else the PL/pgSQL one: a switch re-creates every table's trigger ('updated').
-- Called at deploy, by the DDL event trigger, and by `txfn provenance sync`. SECURITY DEFINER
-- (with a fixed search_path) so the event trigger can keep every table in step whoever runs the DDL.
CREATE OR REPLACE FUNCTION txfn.provenance_sync()
RETURNS TABLE (table_id integer, table_name text, key_columns text[], action text, warning text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  c record;
  reg txfn.provenance_tables;
  act text;
  act2 text;
  leaf record;
  trg record;
  kept integer[] := '{}';
  capture regproc := txfn._provenance_capture_fn();
  mine oid[] := ARRAY['txfn._provenance_capture'::regproc, 'txfn._provenance_truncate'::regproc]::oid[]
                || coalesce(to_regprocedure('txfn._provenance_capture_c()')::oid, 0::oid);
BEGIN
  IF current_setting('txfn.provenance_syncing', true) = 'on' THEN RETURN; END IF;
  PERFORM set_config('txfn.provenance_syncing', 'on', true);

  FOR c IN SELECT * FROM txfn.provenance_candidates() ORDER BY 2, 3 LOOP
    SELECT * INTO reg FROM txfn.provenance_tables p WHERE p.relid = c.relid;
    IF NOT FOUND THEN
      INSERT INTO txfn.provenance_tables (relid, schema_name, table_name, key_columns, captured, partitioned, captured_since)
        VALUES (c.relid, c.schema_name, c.table_name, c.key_columns, true, c.partitioned, now())
        RETURNING * INTO reg;
    ELSIF (reg.schema_name, reg.table_name, reg.key_columns, reg.captured, reg.partitioned)
          IS DISTINCT FROM (c.schema_name, c.table_name, c.key_columns, true, c.partitioned) THEN
      UPDATE txfn.provenance_tables p
        SET schema_name = c.schema_name, table_name = c.table_name, key_columns = c.key_columns, captured = true,
            partitioned = c.partitioned, captured_since = CASE WHEN p.captured THEN p.captured_since ELSE now() END,
            updated_at = now()
        WHERE p.id = reg.id;
    END IF;
    kept := kept || reg.id;
    act := txfn._provenance_ensure_trigger(c.relid, 'txfn_provenance', capture, 29::smallint,
                                           reg.id::text || c.key_columns);
    IF c.partitioned THEN
      -- TRUNCATE triggers are per relation: one on every leaf (each records its own rows).
      FOR leaf IN SELECT p.relid FROM pg_partition_tree(c.relid) p JOIN pg_class k ON k.oid = p.relid
                  WHERE p.isleaf AND k.relkind = 'r' LOOP
        act2 := txfn._provenance_ensure_trigger(leaf.relid, 'txfn_provenance_truncate', 'txfn._provenance_truncate'::regproc,
                                                34::smallint, reg.id::text || c.key_columns);
        IF act = 'unchanged' AND act2 <> 'unchanged' THEN act := act2; END IF;
        -- the row trigger cloned from the root must fire in replica mode too
        IF EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = leaf.relid AND g.tgname = 'txfn_provenance' AND g.tgenabled <> 'A') THEN
          EXECUTE format('ALTER TABLE ONLY %s ENABLE ALWAYS TRIGGER txfn_provenance', leaf.relid::regclass);
          IF act = 'unchanged' THEN act := 'enabled'; END IF;
        END IF;
      END LOOP;
    ELSE
      act2 := txfn._provenance_ensure_trigger(c.relid, 'txfn_provenance_truncate', 'txfn._provenance_truncate'::regproc,
                                              34::smallint, reg.id::text || c.key_columns);
      IF act = 'unchanged' AND act2 <> 'unchanged' THEN act := act2; END IF;
    END IF;
    IF act = 'enabled' THEN
      RAISE WARNING 'txfn: the provenance trigger of %.% was disabled; it is enabled again', c.schema_name, c.table_name
        USING HINT = 'to stop capturing a table, exclude it: txfn provenance config --exclude ' || c.schema_name || '.' || c.table_name;
    END IF;
    table_id := reg.id;
    table_name := c.schema_name || '.' || c.table_name;
    key_columns := c.key_columns;
    action := act;
    warning := CASE WHEN cardinality(c.key_columns) = 0
                    THEN 'table ' || table_name || ' has no primary key: provenance uses the whole row as its key' END;
    RETURN NEXT;
  END LOOP;

  -- Any other trigger calling the capture functions: on tables no longer captured (excluded,
  -- capture disabled), or a copy under another name (ALTER TRIGGER … RENAME) that would record twice.
  FOR trg IN SELECT g.tgname, g.tgrelid::regclass AS rel FROM pg_trigger g
             WHERE g.tgfoid = ANY (mine) AND g.tgparentid = 0
               AND NOT (g.tgname IN ('txfn_provenance', 'txfn_provenance_truncate')
                        AND EXISTS (SELECT 1 FROM txfn.provenance_tables p
                                    WHERE p.id = ANY (kept)
                                      AND (p.relid = g.tgrelid
                                           OR (p.partitioned AND g.tgrelid IN (SELECT t.relid FROM pg_partition_tree(p.relid) t)))))
  LOOP
    EXECUTE format('DROP TRIGGER %I ON %s', trg.tgname, trg.rel);
  END LOOP;

  FOR reg IN UPDATE txfn.provenance_tables p
             SET captured = false, updated_at = now(),
                 relid = CASE WHEN EXISTS (SELECT 1 FROM pg_class k WHERE k.oid = p.relid) THEN p.relid END,
                 dropped_at = CASE WHEN EXISTS (SELECT 1 FROM pg_class k WHERE k.oid = p.relid) THEN NULL ELSE now() END
             WHERE (p.captured OR (p.relid IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_class k WHERE k.oid = p.relid)))
               AND NOT p.id = ANY (kept)
             RETURNING p.* LOOP
    table_id := reg.id;
    table_name := reg.schema_name || '.' || reg.table_name;
    key_columns := reg.key_columns;
    action := CASE WHEN reg.dropped_at IS NULL THEN 'removed' ELSE 'dropped' END;
    warning := NULL;
    RETURN NEXT;
  END LOOP;

  PERFORM set_config('txfn.provenance_syncing', '', true);
END
$fn$;

-- ddl_command_end: keeps capture in step with tables created, altered, renamed or dropped
-- outside `txfn deploy` (psql, other tools). A failing sync fails the DDL: a table that cannot
-- be captured is not silently left uncaptured. Rows written by the creating statement itself
-- (CREATE TABLE AS, SELECT INTO) are recorded as inserts.
CREATE OR REPLACE FUNCTION txfn._provenance_on_ddl() RETURNS event_trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  r record;
BEGIN
  IF current_setting('txfn.provenance_syncing', true) = 'on' THEN RETURN; END IF;
  FOR r IN SELECT * FROM txfn.provenance_sync() s WHERE s.action IN ('installed', 'updated') AND s.warning IS NOT NULL LOOP
    RAISE WARNING 'txfn: %', r.warning USING HINT = 'add a primary key, or exclude the table: txfn provenance config --exclude ' || r.table_name;
  END LOOP;
  IF tg_tag IN ('CREATE TABLE AS', 'SELECT INTO') THEN
    FOR r IN SELECT p.relid, p.id, p.key_columns FROM pg_event_trigger_ddl_commands() e
             JOIN txfn.provenance_tables p ON p.relid = e.objid AND p.captured
             WHERE e.object_type = 'table' LOOP
      PERFORM txfn._provenance_record_rows(r.relid, r.id, r.key_columns, 'I');
    END LOOP;
  END IF;
END
$fn$;

-- Holds (provenance/README.md "Holds"): prune never removes a change of a transaction with
-- xid >= from_xid or started at or after from_time while the hold is active. Takes the lock
-- prune's batches take, so a batch either sees the hold or committed before it; a range prune
-- already removed part of is refused (TXF22). Call it in a short transaction of its own: the
-- lock lasts until commit and blocks prune meanwhile.
CREATE OR REPLACE FUNCTION txfn.provenance_hold(name text, from_xid xid8, from_time timestamptz DEFAULT NULL,
                                                reason text DEFAULT NULL, expires_at timestamptz DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $fn$
#variable_conflict use_variable
DECLARE
  cfg txfn.provenance_config;
BEGIN
  IF name IS NULL OR name = '' OR (from_xid IS NULL AND from_time IS NULL) THEN
    RAISE EXCEPTION 'txfn.provenance_hold: a hold needs a name and from_xid or from_time' USING ERRCODE = '22023';
  END IF;
  PERFORM pg_advisory_xact_lock(hashtext('txfn: provenance holds'));
  SELECT * INTO cfg FROM txfn.provenance_config;
  IF (from_xid IS NOT NULL AND cfg.pruned_max_xid IS NOT NULL AND from_xid <= cfg.pruned_max_xid)
     OR (from_time IS NOT NULL AND cfg.pruned_max_time IS NOT NULL AND from_time <= cfg.pruned_max_time) THEN
    RAISE EXCEPTION 'txfn: cannot hold provenance from %: prune already removed changes up to xid % (transactions started up to %)',
        coalesce('xid ' || from_xid::text, from_time::text), cfg.pruned_max_xid, cfg.pruned_max_time
      USING ERRCODE = 'TXF22', HINT = 'the changes that range needs are gone; hold from a later point';
  END IF;
  INSERT INTO txfn.provenance_holds AS h (name, from_xid, from_time, reason, expires_at)
    VALUES (name, from_xid, from_time, reason, expires_at)
    ON CONFLICT ON CONSTRAINT provenance_holds_pkey DO UPDATE
      SET from_xid = excluded.from_xid, from_time = excluded.from_time, reason = excluded.reason,
          expires_at = excluded.expires_at, created_at = now();
END
$fn$;

-- Releases a hold; false when there was none.
CREATE OR REPLACE FUNCTION txfn.provenance_release(name text) RETURNS boolean
LANGUAGE sql AS $fn$
  WITH gone AS (DELETE FROM txfn.provenance_holds h WHERE h.name = provenance_release.name RETURNING 1)
  SELECT EXISTS (SELECT 1 FROM gone)
$fn$;
