-- Polymorphic and variadic arguments, resolved per call site.
CREATE SCHEMA poly;
SET search_path = poly, public;

CREATE FUNCTION first_of(a anyarray) RETURNS anyelement LANGUAGE txv8 AS $$ return a.length ? a[0] : null; $$;
SELECT first_of(ARRAY[3, 4]), first_of(ARRAY['x', 'y']), first_of(ARRAY[2.5::numeric]), first_of(ARRAY['2024-01-01'::date]), first_of(ARRAY[5::int8]);
CREATE FUNCTION same(a anyelement) RETURNS anyelement LANGUAGE txv8 AS $$ return a; $$;
SELECT same(1), same('t'::text), same(true), same('{"a": 1}'::jsonb), same(ROW(1, 'x')::record IS NULL);
CREATE FUNCTION typeof_js(a anyelement) RETURNS text LANGUAGE txv8 AS $$ return typeof a; $$;
SELECT typeof_js(1), typeof_js(1::int8), typeof_js('x'::text), typeof_js(now()), typeof_js('{}'::jsonb);
CREATE FUNCTION wrap(a anycompatible, b anycompatible) RETURNS anycompatiblearray LANGUAGE txv8 AS $$ return [a, b]; $$;
SELECT wrap(1, 2.5), wrap('a'::text, 'b');
-- one call site, many rows
SELECT same(x) FROM (VALUES (1), (2)) v(x);

-- variadic
CREATE FUNCTION total(VARIADIC nums int[]) RETURNS int LANGUAGE txv8 AS $$ return nums.reduce(function (s, v) { return s + v; }, 0); $$;
SELECT total(1, 2, 3), total(VARIADIC ARRAY[10, 20]), total(VARIADIC '{}'::int[]);
CREATE FUNCTION joined(sep text, VARIADIC parts anyarray) RETURNS text LANGUAGE txv8 AS $$ return parts.join(sep); $$;
SELECT joined('-', 1, 2, 3), joined('/', 'a'::text, 'b');

-- "any" is not supported (as in plv8)
CREATE FUNCTION anyarg("any") RETURNS int LANGUAGE txv8 AS $$ return 1; $$;

SET client_min_messages = warning;
DROP SCHEMA poly CASCADE;
