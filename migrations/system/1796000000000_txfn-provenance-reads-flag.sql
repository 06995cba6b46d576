-- Read provenance's switch as the runtime reads it: txfn._provenance_reads_on() returns
-- txfn.provenance_config.capture_reads as a constant, re-created by a trigger whenever that
-- column changes. The claim statement of every invocation calls it; being IMMUTABLE it is folded
-- into the claim's cached plan, which PostgreSQL re-plans when the function is replaced — so
-- reading the switch costs the claim one more returned column. (A subquery on
-- txfn.provenance_config cost 16.6k instructions per invocation, 1.6% of reserveInventory:
-- executor start-up of the scan and, under SERIALIZABLE, a predicate lock.) See
-- provenance/README.md "Read provenance".

-- Up Migration
CREATE FUNCTION txfn._provenance_reads_on() RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT false $$;

-- Runs as whoever updates txfn.provenance_config (its owner or a superuser, as no one else may):
-- replacing the function needs the same.
CREATE FUNCTION txfn._provenance_reads_switch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.capture_reads IS DISTINCT FROM txfn._provenance_reads_on() THEN
    EXECUTE format('CREATE OR REPLACE FUNCTION txfn._provenance_reads_on() RETURNS boolean LANGUAGE sql IMMUTABLE AS %L',
                   'SELECT ' || coalesce(NEW.capture_reads, false));
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER provenance_reads_switch AFTER INSERT OR UPDATE OF capture_reads ON txfn.provenance_config
  FOR EACH ROW EXECUTE FUNCTION txfn._provenance_reads_switch();
UPDATE txfn.provenance_config SET capture_reads = capture_reads;

-- Down Migration
DROP TRIGGER provenance_reads_switch ON txfn.provenance_config;
DROP FUNCTION txfn._provenance_reads_switch();
DROP FUNCTION txfn._provenance_reads_on();
