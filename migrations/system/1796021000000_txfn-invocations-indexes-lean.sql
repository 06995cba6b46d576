-- Per-invocation cost of txfn.invocations' indexes (measured with bench/invoke/callgrind.ts,
-- runtime-sql/README.md "Per-invocation cost"): every index is opened and closed by both the
-- claim and the outcome update, and the claim inserts into each.
--
-- idempotency_key compares in the "C" collation: the claim's ON CONFLICT probe and its insert
-- each descend the unique index comparing keys, and a linguistic collation (the database's,
-- C.UTF-8 here, en_US elsewhere) compares through strcoll; "C" is memcmp (-3.9 k instructions
-- per invocation under C.UTF-8). Equality, hence uniqueness, is the same under every
-- deterministic collation; only the order of the keys (which nothing sorts by) changes.
--
-- invocations_workflow (workflow_id, workflow_step) WHERE workflow_id IS NOT NULL is dropped:
-- no reader looks invocations up through it (workflows find their steps by idempotency key;
-- replay's --workflows selection scans the table for the transactions' xids anyway), and it
-- cost 10.5 k instructions per invocation, workflow or not (its predicate is prepared and
-- evaluated per claim, the index opened and closed by both statements).

-- Up Migration
ALTER TABLE txfn.invocations ALTER COLUMN idempotency_key TYPE text COLLATE "C";
DROP INDEX txfn.invocations_workflow;

-- Down Migration
CREATE INDEX invocations_workflow ON txfn.invocations (workflow_id, workflow_step) WHERE workflow_id IS NOT NULL;
ALTER TABLE txfn.invocations ALTER COLUMN idempotency_key TYPE text COLLATE "default";
