-- bench/txv8/schema.sql: the functions bench/txv8 compares (txv8 and the equivalent PL/pgSQL), shared by run.sh and callgrind.sh.
CREATE EXTENSION IF NOT EXISTS txv8;
DROP SCHEMA IF EXISTS txv8_bench CASCADE;
CREATE SCHEMA txv8_bench;
SET search_path = txv8_bench;
CREATE TABLE kv (id int PRIMARY KEY, v int NOT NULL, note text);
INSERT INTO kv SELECT g, g, 'row ' || g FROM generate_series(1, 1000) g;
ANALYZE kv;
CREATE FUNCTION t_js(x int) RETURNS int LANGUAGE txv8 AS $$ return x + 1; $$;
CREATE FUNCTION t_pl(x int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN x + 1; END $$;
CREATE FUNCTION j_js(x jsonb) RETURNS jsonb LANGUAGE txv8 AS $$ x.n = (x.n || 0) + 1; return x; $$;
CREATE FUNCTION j_pl(x jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN RETURN jsonb_set(x, '{n}', to_jsonb(coalesce((x->>'n')::int, 0) + 1)); END $$;
CREATE FUNCTION s_js(k int) RETURNS int LANGUAGE txv8 AS $$
  return plv8.execute('SELECT v FROM txv8_bench.kv WHERE id = $1', [k])[0].v;
$$;
CREATE FUNCTION s_pl(k int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE r int; BEGIN SELECT v INTO r FROM txv8_bench.kv WHERE id = k; RETURN r; END $$;
CREATE FUNCTION su_js(k int) RETURNS int LANGUAGE txv8 AS $$
  var v = plv8.execute('SELECT v FROM txv8_bench.kv WHERE id = $1', [k])[0].v;
  plv8.execute('UPDATE txv8_bench.kv SET v = $1 WHERE id = $2', [v + 1, k]);
  return v + 1;
$$;
CREATE FUNCTION su_pl(k int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE r int;
BEGIN
  SELECT v INTO r FROM txv8_bench.kv WHERE id = k;
  UPDATE txv8_bench.kv SET v = r + 1 WHERE id = k;
  RETURN r + 1;
END $$;
