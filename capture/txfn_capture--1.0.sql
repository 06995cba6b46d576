-- txfn_capture 1.0: the provenance capture row trigger in C. txfn.provenance_sync() installs it
-- instead of the PL/pgSQL txfn._provenance_capture() when this extension is installed
-- (runtime-sql/provenance.sql; contract: provenance/README.md).
\echo Use "CREATE EXTENSION txfn_capture" to load this file. \quit

-- AFTER INSERT OR UPDATE OR DELETE FOR EACH ROW, arguments (table_id, key column, …), exactly
-- as txfn._provenance_capture(). It writes txfn.provenance itself, every column formed by it
-- (role, xid and time from the server: nothing can be forged through it). EXECUTE stays with
-- PUBLIC, as for the PL/pgSQL function: creating a partition of a captured table clones its
-- trigger, which needs EXECUTE of whoever creates the partition.
CREATE FUNCTION _provenance_capture_c() RETURNS trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'txfn_capture_row';
