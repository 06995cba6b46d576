-- The active bundle version as the runtime's claim reads it: txfn._active_version() returns
-- the version of the active row of txfn.bundles as a constant (NULL: nothing deployed),
-- re-created by a statement trigger whenever the active row may have changed. Being IMMUTABLE
-- it is folded into the claim's cached plan, which PostgreSQL re-plans when the function is
-- replaced (as txfn._provenance_reads_on()). The subquery it replaces, (SELECT version FROM
-- txfn.bundles WHERE active), cost the claim 19 k instructions per invocation (2% of
-- reserveInventory): a sublink makes the plan cache walk the whole claim statement at every
-- execution, plus the scan's start-up and, under SERIALIZABLE, a predicate lock on bundles.
-- A transaction whose snapshot predates an activation may see the new version before its
-- bundle row; the runtime reports that as a serialization failure (retried, never recorded).
-- See runtime-sql/README.md "Per-invocation cost".

-- Up Migration
CREATE FUNCTION txfn._active_version() RETURNS integer LANGUAGE sql IMMUTABLE AS $$ SELECT NULL::integer $$;

-- SECURITY DEFINER: whoever may change txfn.bundles (its owner, a superuser) keeps the function
-- in step, whether or not they own it.
CREATE FUNCTION txfn._active_version_switch() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog AS $$
DECLARE
  v integer := (SELECT version FROM txfn.bundles WHERE active);
BEGIN
  IF v IS DISTINCT FROM txfn._active_version() THEN
    EXECUTE format('CREATE OR REPLACE FUNCTION txfn._active_version() RETURNS integer LANGUAGE sql IMMUTABLE AS %L',
                   'SELECT ' || coalesce(v::text, 'NULL') || '::integer');
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER active_version_switch AFTER INSERT OR UPDATE OF active OR DELETE ON txfn.bundles
  FOR EACH STATEMENT EXECUTE FUNCTION txfn._active_version_switch();
CREATE TRIGGER active_version_switch_truncate AFTER TRUNCATE ON txfn.bundles
  FOR EACH STATEMENT EXECUTE FUNCTION txfn._active_version_switch();
UPDATE txfn.bundles SET active = active WHERE active;

-- Down Migration
DROP TRIGGER active_version_switch_truncate ON txfn.bundles;
DROP TRIGGER active_version_switch ON txfn.bundles;
DROP FUNCTION txfn._active_version_switch();
DROP FUNCTION txfn._active_version();
