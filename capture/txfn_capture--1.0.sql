-- txfn_capture 1.0: the provenance capture row trigger in C. txfn.provenance_sync() installs it
-- instead of the PL/pgSQL txfn._provenance_capture() when this extension is installed
-- (runtime-sql/provenance.sql; contract: provenance/README.md).
\echo Use "CREATE EXTENSION txfn_capture" to load this file. \quit

-- AFTER INSERT OR UPDATE OR DELETE FOR EACH ROW, arguments (table_id, key column, …), exactly
-- as txfn._provenance_capture(). It writes txfn.provenance itself (every column formed by it:
-- nothing can be forged through it), so only the extension's owner may attach it to a table.
CREATE FUNCTION _provenance_capture_c() RETURNS trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'txfn_capture_row';
REVOKE ALL ON FUNCTION _provenance_capture_c() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _provenance_capture_c() TO @extowner@;
