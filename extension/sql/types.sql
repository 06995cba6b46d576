-- Type conversion both ways: scalars, int8 as BigInt, numeric, dates, bytea, arrays, composites, domains.
CREATE SCHEMA types;
SET search_path = types, public;

CREATE FUNCTION jstype(x anyelement) RETURNS text LANGUAGE txv8 AS $$
  if (x === null) return 'null';
  if (x instanceof Date) return 'Date ' + (isNaN(x) ? 'Invalid' : x.toISOString());
  if (x instanceof Uint8Array) return 'Uint8Array [' + Array.from(x) + ']';
  if (Array.isArray(x)) return 'Array ' + JSON.stringify(x, function (k, v) { return typeof v === 'bigint' ? v + 'n' : v; });
  if (typeof x === 'bigint') return 'bigint ' + x;
  if (typeof x === 'object') return 'object ' + JSON.stringify(x);
  return typeof x + ' ' + String(x);
$$;
SELECT jstype(true), jstype(1::int2), jstype(2::int4), jstype(3::int8), jstype(4::oid);
SELECT jstype(1.5::float4), jstype(2.25::float8), jstype(3.125::numeric), jstype('NaN'::numeric);
SELECT jstype('text'::text), jstype('vc'::varchar), jstype('bp'::char(4)), jstype('<a/>'::xml), jstype('nm'::name);
SELECT jstype('2024-02-29'::date), jstype('2024-02-29 10:11:12.345678'::timestamp), jstype('infinity'::date), jstype('-infinity'::timestamptz);
SELECT jstype('1999-12-31 23:59:59.9999'::timestamp);
SELECT jstype('\x00ff10'::bytea), jstype('{"a":[1,2]}'::json), jstype('{"a":[1,2]}'::jsonb);
SELECT jstype('10:30'::time), jstype('1 day'::interval), jstype('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid), jstype('[1,3)'::int4range);
SELECT jstype(NULL::int), jstype(ARRAY[1,NULL,3]), jstype(ARRAY[[1,2],[3,4]]), jstype('{}'::int[]), jstype(ARRAY[1,2]::int8[]);
SELECT jstype(ARRAY['a','b']), jstype(ARRAY['2024-01-01'::date]);

-- JS -> PostgreSQL, by target type
CREATE FUNCTION to_int(x text) RETURNS int LANGUAGE txv8 AS $$ return eval(x); $$;
SELECT to_int('42'), to_int('-3.9'), to_int('7n'), to_int('"12"'), to_int('true'), to_int('null') IS NULL AS n;
SELECT to_int('"true"');
SELECT to_int('2147483648');
SELECT to_int('NaN');
SELECT to_int('"abc"');
CREATE FUNCTION to_int2(x text) RETURNS int2 LANGUAGE txv8 AS $$ return eval(x); $$;
SELECT to_int2('32767'), to_int2('-32768');
SELECT to_int2('32768');
CREATE FUNCTION to_int8(x text) RETURNS int8 LANGUAGE txv8 AS $$ return eval(x); $$;
SELECT to_int8('9007199254740993n'), to_int8('-9223372036854775808n'), to_int8('2.5'), to_int8('"123"');
SELECT to_int8('9223372036854775808n');
CREATE FUNCTION to_float(x text) RETURNS float8 LANGUAGE txv8 AS $$ return eval(x); $$;
SELECT to_float('0.1 + 0.2'), to_float('1e300 * 1e10'), to_float('"1.5"');
CREATE FUNCTION to_float4(x text) RETURNS float4 LANGUAGE txv8 AS $$ return eval(x); $$;
SELECT to_float4('1.5');
SELECT to_float4('1e300');
CREATE FUNCTION to_numeric(x text) RETURNS numeric LANGUAGE txv8 AS $$ return eval(x); $$;
SELECT to_numeric('0.1 + 0.2'), to_numeric('1/3'), to_numeric('123456789012345678901234567890n'), to_numeric('"1.23456789012345678901"'), to_numeric('NaN');
CREATE FUNCTION to_bool(x text) RETURNS bool LANGUAGE txv8 AS $$ return eval(x); $$;
SELECT to_bool('true'), to_bool('false'), to_bool('1'), to_bool('"yes"'), to_bool('0');
CREATE FUNCTION to_text(x text) RETURNS text LANGUAGE txv8 AS $$ return eval(x); $$;
SELECT to_text('[1, 2]'), to_text('({})'), to_text('10n'), to_text('1e21'), to_text('"snowman \u2603"');
SELECT to_text('"nul \u0000 byte"');
CREATE FUNCTION to_varchar(x text) RETURNS varchar(3) LANGUAGE txv8 AS $$ return eval(x); $$;
SELECT to_varchar('"abcdef"');
CREATE FUNCTION to_date(x text) RETURNS date LANGUAGE txv8 AS $$ return eval(x); $$;
SELECT to_date('new Date(Date.UTC(2024, 1, 29, 23, 59))'), to_date('new Date(Date.UTC(1969, 11, 31, 12))'), to_date('"2024-05-06"');
SELECT to_date('new Date(NaN)');
CREATE FUNCTION to_ts(x text) RETURNS timestamp LANGUAGE txv8 AS $$ return eval(x); $$;
CREATE FUNCTION to_tstz(x text) RETURNS timestamptz LANGUAGE txv8 AS $$ return eval(x); $$;
SET TimeZone = 'Asia/Tokyo';
SELECT to_ts('new Date(Date.UTC(2024, 0, 1, 12, 0, 0, 5))'), to_tstz('new Date(Date.UTC(2024, 0, 1, 12, 0, 0, 5))'), to_tstz('new Date(Date.UTC(1950, 5, 1, 0, 0, 0, 1))');
RESET TimeZone;
CREATE FUNCTION to_bytea(x text) RETURNS bytea LANGUAGE txv8 AS $$ return eval(x); $$;
SELECT to_bytea('new Uint8Array([1,2,255])'), to_bytea('new Int8Array([-1])'), to_bytea('new Uint8Array([9,8,7]).buffer'),
       to_bytea('new Float64Array([1]).subarray(0, 1)'), to_bytea('"\\\\x0a0b"'), to_bytea('new DataView(new Uint8Array([5,6,7]).buffer, 1)');
CREATE FUNCTION to_json(x text) RETURNS json LANGUAGE txv8 AS $$ return eval(x); $$;
SELECT to_json('({a: [1, "x", null], d: new Date(0)})'), to_json('"{\"b\": 2}"'), to_json('5'), to_json('true');
SELECT to_json('"not json"');
SELECT to_json('({n: 1n})');
CREATE FUNCTION to_oid(x text) RETURNS oid LANGUAGE txv8 AS $$ return eval(x); $$;
SELECT to_oid('4294967295');
CREATE FUNCTION to_uuid(x text) RETURNS uuid LANGUAGE txv8 AS $$ return eval(x); $$;
SELECT to_uuid('"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"');
CREATE FUNCTION to_interval(x text) RETURNS interval LANGUAGE txv8 AS $$ return eval(x); $$;
SELECT to_interval('"2 hours"');

-- arrays
CREATE FUNCTION to_int_arr(x text) RETURNS int[] LANGUAGE txv8 AS $$ return eval(x); $$;
SELECT to_int_arr('[1, null, 3]'), to_int_arr('[[1, 2], [3, 4]]'), to_int_arr('[]'), to_int_arr('new Int32Array([5, 6])');
SELECT to_int_arr('[[1, 2], [3]]');
SELECT to_int_arr('"{1,2}"');
CREATE FUNCTION to_text_arr(x text) RETURNS text[] LANGUAGE txv8 AS $$ return eval(x); $$;
SELECT to_text_arr('["a", null, "c,d"]');
CREATE FUNCTION to_jsonb_arr(x text) RETURNS jsonb[] LANGUAGE txv8 AS $$ return eval(x); $$;
SELECT to_jsonb_arr('[[1, 2], {"a": [3]}]');
CREATE FUNCTION arr_roundtrip(x anyarray) RETURNS anyarray LANGUAGE txv8 AS $$ return x; $$;
SELECT arr_roundtrip(ARRAY[[1.5,2],[3,4]]::float8[]), arr_roundtrip(ARRAY['2024-01-02'::date]), arr_roundtrip(ARRAY[1,2]::int8[]);
SELECT arr_roundtrip('[0:1]={7,8}'::int[]);

-- composites and records
CREATE TYPE pair AS (a int, b text);
CREATE FUNCTION pair_in(p pair) RETURNS text LANGUAGE txv8 AS $$ return JSON.stringify(p); $$;
SELECT pair_in(ROW(1, 'x')::pair), pair_in(NULL::pair);
CREATE FUNCTION pair_out(a int) RETURNS pair LANGUAGE txv8 AS $$ return { a: a, b: 'b' + a, extra: true }; $$;
SELECT pair_out(3), (pair_out(4)).b;
CREATE FUNCTION pair_bad() RETURNS pair LANGUAGE txv8 AS $$ return { a: 1 }; $$;
SELECT pair_bad();
CREATE FUNCTION pair_bad2() RETURNS pair LANGUAGE txv8 AS $$ return 5; $$;
SELECT pair_bad2();
CREATE FUNCTION pair_arr() RETURNS pair[] LANGUAGE txv8 AS $$ return [{ a: 1, b: null }, { a: 2, b: 'two' }]; $$;
SELECT pair_arr();
CREATE TYPE nested AS (p pair, tags text[], j jsonb);
CREATE FUNCTION nested_rt(n nested) RETURNS nested LANGUAGE txv8 AS $$ n.p.a += 1; n.tags.push('z'); n.j.k = n.p; return n; $$;
SELECT nested_rt(ROW(ROW(1, 'x'), ARRAY['a'], '{}')::nested);
-- record arguments are refused, as plv8 does; records inside values convert
CREATE FUNCTION rec_in(r record) RETURNS text LANGUAGE txv8 AS $$ return JSON.stringify(r); $$;
CREATE FUNCTION rec_arr(r anyarray) RETURNS text LANGUAGE txv8 AS $$ return JSON.stringify(r); $$;
SELECT rec_arr(ARRAY[ROW(1, 'two', NULL), ROW(2, 'three', true)]);
-- a composite changed by ALTER TYPE is followed
CREATE FUNCTION pair_echo(p pair) RETURNS pair LANGUAGE txv8 AS $$ return p; $$;
SELECT pair_echo(ROW(1, 'x')::pair);
ALTER TYPE pair ADD ATTRIBUTE c bool;
SELECT pair_in(ROW(1, 'x', true)::pair), pair_echo(ROW(2, 'y', false)::pair);
SELECT pair_out(5);
ALTER TYPE pair DROP ATTRIBUTE b;
SELECT pair_in(ROW(1, false)::pair), pair_echo(ROW(3, NULL)::pair);
SELECT pair_out(6);

-- domains convert as their base type (plv8 gave strings) and keep their constraints
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE DOMAIN jdom AS jsonb;
CREATE FUNCTION dom_in(x posint, j jdom) RETURNS text LANGUAGE txv8 AS $$ return typeof x + ' ' + typeof j + ' ' + j.k; $$;
SELECT dom_in(5, '{"k": "v"}');
CREATE FUNCTION dom_out(x int) RETURNS posint LANGUAGE txv8 AS $$ return x; $$;
SELECT dom_out(3);
SELECT dom_out(-3);
CREATE DOMAIN nn AS text NOT NULL;
CREATE FUNCTION nn_out() RETURNS nn LANGUAGE txv8 AS $$ return null; $$;
SELECT nn_out();

SET client_min_messages = warning;
DROP SCHEMA types CASCADE;
