-- txfn system schema: provenance (issue 5). Every row change of a captured application table,
-- written by a trigger in the changing transaction. Contract: provenance/README.md.
-- The trigger and sync functions are not migrations: provenance/install.ts (re)installs
-- runtime-sql/provenance.sql whenever its text changes.

-- Up Migration

-- The tables capture knows about. Provenance rows name a table by this id (4 bytes, and
-- stable across renames); a dropped table keeps its row (relid NULL, dropped_at set).
CREATE TABLE txfn.provenance_tables (
  id           integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  relid        oid,                        -- pg_class oid while the table exists
  schema_name  name NOT NULL,
  table_name   name NOT NULL,
  key_columns  text[] NOT NULL,            -- primary key columns in order; {} = no primary key: the whole row is the key
  captured     boolean NOT NULL,           -- capture trigger installed now (false: excluded, disabled)
  partitioned  boolean NOT NULL DEFAULT false,
  captured_since timestamptz,             -- start of the current unbroken capture: changes committed after it are all recorded
  updated_at   timestamptz NOT NULL DEFAULT now(),
  dropped_at   timestamptz
);
CREATE UNIQUE INDEX provenance_tables_relid ON txfn.provenance_tables (relid) WHERE relid IS NOT NULL;
CREATE INDEX provenance_tables_name ON txfn.provenance_tables (table_name, schema_name);

-- One row per captured change. (xid, seq) is unique: seq counts the transaction's changes
-- (1, 2, 3, … in the order their AFTER ROW triggers fired; rolled-back subtransactions give
-- their numbers back). Columns with defaults are filled by the server, never by the writer:
-- PUBLIC may INSERT only the other columns (below), so role, xid and time cannot be forged.
CREATE TABLE txfn.provenance (
  xid              xid8 NOT NULL DEFAULT pg_current_xact_id(),   -- top-level transaction id
  seq              integer NOT NULL,
  table_id         integer NOT NULL,       -- txfn.provenance_tables.id (no foreign key: one lookup per change)
  op               "char" NOT NULL,        -- I insert, U update, D delete, T truncate (one row per removed row)
  key              jsonb NOT NULL,         -- {"pk_col": value, …} of the row after the change (before it for D, T)
  old_key          jsonb,                  -- U only: the key before, when the update changed it
  old_row          jsonb,                  -- U, D, T: the whole row before (to_jsonb)
  new_row          jsonb,                  -- I, U: the whole row after
  invocation_id    bigint DEFAULT nullif(current_setting('txfn.invocation_id', true), '')::bigint,  -- NULL outside txfn
  role             text NOT NULL DEFAULT current_user,
  application_name text DEFAULT nullif(current_setting('application_name'), ''),
  tx_time          timestamptz NOT NULL DEFAULT now(),           -- the transaction's start: equal for all its changes
  PRIMARY KEY (xid, seq)
);
-- history: one row's changes (hash: any key size, 4-byte entries)
CREATE INDEX provenance_key ON txfn.provenance USING hash (key);
CREATE INDEX provenance_old_key ON txfn.provenance USING hash (old_key) WHERE old_key IS NOT NULL;
-- prune by time (rows arrive roughly in time order: a BRIN index is tiny)
CREATE INDEX provenance_tx_time ON txfn.provenance USING brin (tx_time);

-- Settings, one row. Changed through `txfn provenance config` (or UPDATE + SELECT txfn.provenance_sync()).
CREATE TABLE txfn.provenance_config (
  singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  enabled       boolean NOT NULL DEFAULT true,
  include       text[] NOT NULL DEFAULT '{*}',     -- globs on schema.table (a bare name = a schema)
  exclude       text[] NOT NULL DEFAULT '{}',
  truncate      text NOT NULL DEFAULT 'record' CHECK (truncate IN ('record', 'refuse')),
  retention     interval CHECK (retention >= interval '0'),  -- prune never removes changes younger than this
  capture_reads boolean NOT NULL DEFAULT false,    -- read provenance: the SQL of each query an invocation ran
  pruned_max_xid  xid8,                            -- largest xid prune ever removed (holds must start above it)
  pruned_max_time timestamptz                      -- latest tx_time prune ever removed
);
INSERT INTO txfn.provenance_config DEFAULT VALUES;

-- What an unfinished replay (or a follower, or an auditor) needs kept: prune never removes a
-- change of a transaction with xid >= from_xid or started at or after from_time.
CREATE TABLE txfn.provenance_holds (
  name       text PRIMARY KEY,
  from_xid   xid8,
  from_time  timestamptz,
  reason     text,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz,                          -- NULL: until released
  CHECK (from_xid IS NOT NULL OR from_time IS NOT NULL)
);

-- Read provenance (off by default): each query an invocation ran, numbered in the same
-- per-transaction sequence as txfn.provenance, so reads and writes interleave exactly.
CREATE TABLE txfn.provenance_reads (
  xid           xid8 NOT NULL DEFAULT pg_current_xact_id(),
  seq           integer NOT NULL,
  invocation_id bigint NOT NULL DEFAULT nullif(current_setting('txfn.invocation_id', true), '')::bigint,
  sql           text NOT NULL,
  params        jsonb,
  row_count     bigint,
  tx_time       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (xid, seq)
);

-- Every role that writes an application table writes provenance through the trigger, which
-- runs as that role: it may insert the change columns, nothing else, and read nothing.
GRANT USAGE ON SCHEMA txfn TO PUBLIC;
GRANT INSERT (seq, table_id, op, key, old_key, old_row, new_row) ON txfn.provenance TO PUBLIC;
GRANT INSERT (seq, sql, params, row_count) ON txfn.provenance_reads TO PUBLIC;
GRANT SELECT ON txfn.provenance_config, txfn.provenance_tables TO PUBLIC;

-- Down Migration
DROP TABLE txfn.provenance_reads, txfn.provenance_holds, txfn.provenance_config, txfn.provenance, txfn.provenance_tables;
