-- json and jsonb: direct jsonb conversion both ways, JSON.stringify semantics, json through text.
CREATE SCHEMA jb;
SET search_path = jb, public;

CREATE FUNCTION jb_echo(x jsonb) RETURNS jsonb LANGUAGE txv8 AS $$ return x; $$;
CREATE FUNCTION jb_eval(x text) RETURNS jsonb LANGUAGE txv8 AS $$ return eval('(' + x + ')'); $$;
CREATE FUNCTION jb_describe(x jsonb) RETURNS text LANGUAGE txv8 AS $$
  return JSON.stringify(x) + ' ' + (Array.isArray(x) ? 'array' : x === null ? 'null' : typeof x);
$$;

-- jsonb -> JS
SELECT jb_describe('{"a": 1, "b": [true, null, "s"], "c": {"d": 1.5}}'), jb_describe('[]'), jb_describe('{}');
SELECT jb_describe('"s"'), jb_describe('12'), jb_describe('null'), jb_describe('true');
SELECT jb_describe('123456789012345678901234567890'), jb_describe('1e400'), jb_describe('0.1');
SELECT jb_describe('{"\u00e9t\u00e9": "caf\u00e9", "emoji": "\ud83d\ude00"}');
SELECT jb_echo('{"z": 1, "a": 2, "mm": 3}');

-- JS -> jsonb: JSON.stringify semantics, numbers exact, BigInt as an exact number
SELECT jb_eval('{a: 1, b: [1, undefined, function () {}, 3], c: function () {}, d: Symbol("x"), e: undefined}');
SELECT jb_eval('[NaN, Infinity, -Infinity, -0, 0.1 + 0.2, 1/3, 1e21, 1.5e-10, 2**53 + 2]');
SELECT jb_eval('{n: 12345678901234567890n, m: -5n}');
SELECT jb_eval('{d: new Date(Date.UTC(2020, 0, 2, 3, 4, 5, 6)), bad: new Date(NaN), arr: [new Date(0)]}');
SELECT jb_eval('new Date(0)'), jb_eval('"plain"'), jb_eval('42'), jb_eval('null'), jb_eval('undefined') IS NULL AS undef_is_null;
SELECT jb_eval('{toJSON: function () { return {custom: true}; }}'), jb_eval('{x: {toJSON: function (k) { return "key:" + k; }}}');
SELECT jb_eval('{s: new String("boxed"), n: new Number(3), b: new Boolean(false)}');
SELECT jb_eval('new Map([[1, 2]])'), jb_eval('new Uint8Array([1, 2])'), jb_eval('Object.create({inherited: 1}, {own: {value: 2, enumerable: true}})');
SELECT jb_eval('{"1": "a", "b": "c", "0": "d"}');
SELECT jb_eval('(function () { var o = {}; o.self = o; return o; })()');
SELECT jb_eval('{s: "nul \u0000"}');

-- json: objects through JSON.stringify, strings as JSON text
CREATE FUNCTION j_echo(x json) RETURNS json LANGUAGE txv8 AS $$ return x; $$;
CREATE FUNCTION j_eval(x text) RETURNS json LANGUAGE txv8 AS $$ return eval('(' + x + ')'); $$;
SELECT j_echo('{"b": 1, "a": [1, 2]}'), j_echo('3'), j_echo('["s"]');
-- a JS string returned as json is JSON text (plv8's rule), so a json string does not round-trip
SELECT j_echo('"str"');
SELECT j_eval('{a: [1, undefined], b: undefined}'), j_eval('"[1, 2]"'), j_eval('function () {}') IS NULL AS fn_is_null;

-- jsonb in SPI results and parameters
CREATE FUNCTION jb_spi() RETURNS jsonb LANGUAGE txv8 AS $$
  var r = plv8.execute('SELECT $1::jsonb AS j, $2::json AS k', [{ a: [1, 2] }, { b: true }])[0];
  return { j: r.j, k: r.k, jt: typeof r.j, kt: typeof r.k };
$$;
SELECT jb_spi();

-- a jsonb domain
CREATE DOMAIN jobj AS jsonb CHECK (jsonb_typeof(VALUE) = 'object');
CREATE FUNCTION jdom(x text) RETURNS jobj LANGUAGE txv8 AS $$ return eval('(' + x + ')'); $$;
SELECT jdom('{a: 1}');
SELECT jdom('[1]');

SET client_min_messages = warning;
DROP SCHEMA jb CASCADE;
