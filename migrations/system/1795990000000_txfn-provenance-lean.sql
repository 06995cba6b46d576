-- Provenance capture cost (measured with callgrind on a single-row UPDATE: the capture INSERT
-- pays executor set-up and one insertion per index): the BRIN index on tx_time cost 17.6k
-- instructions per change and the partial hash index on old_key 11.8k, about a fifth of
-- capture. Prune now removes the oldest changes in primary-key order instead (never more than
-- a prefix of (xid, seq), so its watermark is exact); history finds a row's earlier keys through
-- the old_key values of the changes it already found (provenance/README.md).

-- Up Migration
DROP INDEX txfn.provenance_tx_time;
DROP INDEX txfn.provenance_old_key;

-- Down Migration
CREATE INDEX provenance_tx_time ON txfn.provenance USING brin (tx_time);
CREATE INDEX provenance_old_key ON txfn.provenance USING hash (old_key) WHERE old_key IS NOT NULL;
