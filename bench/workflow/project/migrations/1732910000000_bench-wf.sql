-- bench/workflow: accounts the benchmark workflows debit and credit (both txfn and DBOS).

-- Up Migration
CREATE SCHEMA bench_wf;
CREATE TABLE bench_wf.accounts (id integer PRIMARY KEY, balance bigint NOT NULL);
INSERT INTO bench_wf.accounts SELECT g, 1000000 FROM generate_series(1, 10000) g;

-- Down Migration
DROP SCHEMA bench_wf CASCADE;
