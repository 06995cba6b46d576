/* txv8_jsonb.cc: direct conversion between jsonb and JS values (no JSON text in between). */
#include "txv8_typeio.h"

#include <algorithm>
#include <cmath>
#include <vector>

extern "C" {
#include "common/shortest_dec.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
}

/* ---------- jsonb -> JS ---------- */

/*
 * jsonb -> JS through jsonb's text form and V8's JSON parser: the same values as a
 * walk of the jsonb tree (numbers are correctly rounded doubles either way, keys keep
 * jsonb's order, a scalar root gives the scalar), several times faster than creating
 * objects property by property through the API.
 */
v8::Local<v8::Value>
txv8_jsonb_to_value(txv8_typeinfo *ti, Datum d)
{
	char	   *volatile text = nullptr;

	txv8_pg([&] {
		Jsonb	   *jb = DatumGetJsonbP(d);

		text = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
	});
	v8::Local<v8::Value> r;

	if (!v8::JSON::Parse(txv8_isolate->GetCurrentContext(), txv8_string_from_server(text, (int) strlen(text))).ToLocal(&r))
		throw txv8_js_thrown();
	pfree(text);
	return r;
}

/* ---------- JS -> jsonb ---------- */

/*
 * The JsonbValue tree is built directly (arrays and objects as jbvArray / jbvObject
 * nodes) and serialised once by JsonbValueToJsonb. Semantics follow JSON.stringify:
 * toJSON() is honoured (so a Date becomes its ISO string anywhere), undefined,
 * functions and symbols are omitted from objects and become null in arrays, NaN and
 * Infinity become null; numbers keep their value exactly (shortest round-trip
 * decimal); BigInt becomes an exact jsonb number (JSON.stringify throws on BigInt).
 */
struct txv8_jb_builder
{
	v8::Local<v8::Context> ctx;
	v8::Local<v8::String> tojson;
};

static void
txv8_jb_numeric(JsonbValue *out, Datum num)
{
	out->type = jbvNumeric;
	out->val.numeric = DatumGetNumeric(num);
}

static void
txv8_jb_number(JsonbValue *out, v8::Local<v8::Value> v)
{
	Datum volatile r = 0;

	if (v->IsInt32())
	{
		int64		i = v.As<v8::Int32>()->Value();

		txv8_pg([&] { r = NumericGetDatum(int64_to_numeric(i)); });
		txv8_jb_numeric(out, r);
		return;
	}
	double		d = v.As<v8::Number>()->Value();

	if (!std::isfinite(d))
	{
		out->type = jbvNull;
		return;
	}
	char		buf[DOUBLE_SHORTEST_DECIMAL_LEN];

	double_to_shortest_decimal_buf(d, buf);
	txv8_pg([&] {
		r = DirectFunctionCall3(numeric_in, CStringGetDatum(buf), ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
	});
	txv8_jb_numeric(out, r);
}

static void
txv8_jb_string(JsonbValue *out, v8::Local<v8::Value> s)
{
	int			len;

	out->type = jbvString;
	out->val.string.val = txv8_string_to_server(s, &len);
	out->val.string.len = len;
}

/* jsonb's key order: shorter keys first, then bytewise. */
static bool
txv8_jb_key_less(const JsonbPair &a, const JsonbPair &b)
{
	int			la = a.key.val.string.len,
				lb = b.key.val.string.len;

	if (la != lb)
		return la < lb;
	int			c = memcmp(a.key.val.string.val, b.key.val.string.val, la);

	if (c != 0)
		return c < 0;
	return a.order > b.order;	/* the later duplicate first, so it is the one kept */
}

/* Fill *out from v (found under key, for toJSON); false if not representable (undefined, function, symbol). */
static bool
txv8_jb_value(txv8_jb_builder &b, v8::Local<v8::Value> v, JsonbValue *out, v8::Local<v8::Value> key)
{
	if (stack_is_too_deep())
		txv8_error(ERRCODE_STATEMENT_TOO_COMPLEX,
				   "cannot convert a cyclic or too deeply nested value to jsonb");
	if (v->IsNull())
	{
		out->type = jbvNull;
		return true;
	}
	if (v->IsUndefined() || v->IsFunction() || v->IsSymbol())
		return false;
	if (v->IsBoolean())
	{
		out->type = jbvBool;
		out->val.boolean = v.As<v8::Boolean>()->Value();
		return true;
	}
	if (v->IsString())
	{
		txv8_jb_string(out, v);
		return true;
	}
	if (v->IsNumber())
	{
		txv8_jb_number(out, v);
		return true;
	}
	if (v->IsBigInt())
	{
		char	   *s = txv8_string_to_server(v, nullptr);
		Datum volatile r = 0;

		txv8_pg([&] {
			r = DirectFunctionCall3(numeric_in, CStringGetDatum(s), ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
		});
		txv8_jb_numeric(out, r);
		return true;
	}
	if (!v->IsObject())
		return false;

	v8::Local<v8::Object> obj = v.As<v8::Object>();

	if (v->IsNumberObject() || v->IsStringObject() || v->IsBooleanObject() || v->IsBigIntObject())
	{
		v8::Local<v8::Value> prim;

		if (v->IsNumberObject())
			prim = v8::Number::New(txv8_isolate, v.As<v8::NumberObject>()->ValueOf());
		else if (v->IsStringObject())
			prim = v.As<v8::StringObject>()->ValueOf();
		else if (v->IsBooleanObject())
			prim = v8::Boolean::New(txv8_isolate, v.As<v8::BooleanObject>()->ValueOf());
		else
			prim = v.As<v8::BigIntObject>()->ValueOf();
		return txv8_jb_value(b, prim, out, key);
	}
	if (!v->IsArray())
	{
		v8::Local<v8::Value> tojson;

		if (!obj->Get(b.ctx, b.tojson).ToLocal(&tojson))
			throw txv8_js_thrown();
		if (tojson->IsFunction())
		{
			v8::Local<v8::Value> arg = key;
			v8::Local<v8::Value> r;

			if (!tojson.As<v8::Function>()->Call(b.ctx, obj, 1, &arg).ToLocal(&r))
				throw txv8_js_thrown();
			return txv8_jb_value(b, r, out, key);
		}
	}

	if (v->IsArray())
	{
		v8::Local<v8::Array> arr = v.As<v8::Array>();
		uint32		n = arr->Length();

		if (n > JENTRY_OFFLENMASK)
			txv8_error(ERRCODE_PROGRAM_LIMIT_EXCEEDED, "number of jsonb array elements exceeds the maximum allowed (%zu)",
					   (size_t) JENTRY_OFFLENMASK);
		JsonbValue *elems = (JsonbValue *) txv8_palloc(sizeof(JsonbValue) * Max(n, 1));

		for (uint32 i = 0; i < n; i++)
		{
			v8::Local<v8::Value> e;

			if (!arr->Get(b.ctx, i).ToLocal(&e))
				throw txv8_js_thrown();
			if (!txv8_jb_value(b, e, &elems[i], v8::Integer::NewFromUnsigned(txv8_isolate, i)->ToString(b.ctx).ToLocalChecked()))
				elems[i].type = jbvNull;
		}
		out->type = jbvArray;
		out->val.array.nElems = (int) n;
		out->val.array.elems = elems;
		out->val.array.rawScalar = false;
		return true;
	}

	v8::Local<v8::Array> keys;

	if (!obj->GetOwnPropertyNames(b.ctx, static_cast<v8::PropertyFilter>(v8::ONLY_ENUMERABLE | v8::SKIP_SYMBOLS),
								  v8::KeyConversionMode::kConvertToString).ToLocal(&keys))
		throw txv8_js_thrown();
	uint32		nkeys = keys->Length();

	if (nkeys > JENTRY_OFFLENMASK)
		txv8_error(ERRCODE_PROGRAM_LIMIT_EXCEEDED, "number of jsonb object pairs exceeds the maximum allowed (%zu)",
				   (size_t) JENTRY_OFFLENMASK);
	JsonbPair  *pairs = (JsonbPair *) txv8_palloc(sizeof(JsonbPair) * Max(nkeys, 1));
	uint32		npairs = 0;

	for (uint32 i = 0; i < nkeys; i++)
	{
		v8::Local<v8::Value> key,
					val;

		if (!keys->Get(b.ctx, i).ToLocal(&key) || !obj->Get(b.ctx, key).ToLocal(&val))
			throw txv8_js_thrown();
		JsonbPair  *p = &pairs[npairs];

		if (!txv8_jb_value(b, val, &p->value, key))
			continue;			/* undefined / function: the key is omitted */
		txv8_jb_string(&p->key, key);
		p->order = npairs++;
	}
	std::sort(pairs, pairs + npairs, txv8_jb_key_less);
	/* keep the first of equal keys (the last one set, by the sort above) */
	uint32		kept = 0;

	for (uint32 i = 0; i < npairs; i++)
	{
		if (kept > 0 && pairs[kept - 1].key.val.string.len == pairs[i].key.val.string.len &&
			memcmp(pairs[kept - 1].key.val.string.val, pairs[i].key.val.string.val,
				   pairs[i].key.val.string.len) == 0)
			continue;
		pairs[kept++] = pairs[i];
	}
	out->type = jbvObject;
	out->val.object.nPairs = (int) kept;
	out->val.object.pairs = pairs;
	return true;
}

/*
 * A parser for the JSON text JSON.stringify produces (so always well formed) straight
 * into a JsonbValue tree: no lexer callbacks, integers without numeric_in. Returns
 * false for what it leaves to the direct conversion (a \u escape it cannot represent).
 */
struct txv8_jp
{
	const char *p;
	const char *end;
};

static bool txv8_jp_value(txv8_jp &jp, JsonbValue *out);

static bool
txv8_jp_string(txv8_jp &jp, JsonbValue *out)
{
	const char *start = ++jp.p;	/* past the opening quote */
	const char *q = start;
	bool		escaped = false;

	while (*q != '"')
	{
		if (*q == '\\')
		{
			escaped = true;
			q++;
		}
		q++;
	}
	size_t		len = q - start;
	char	   *buf = (char *) txv8_palloc(len + 1);
	size_t		n = 0;

	if (!escaped)
	{
		memcpy(buf, start, len);
		n = len;
	}
	else
		for (const char *c = start; c < q; c++)
		{
			if (*c != '\\')
			{
				buf[n++] = *c;
				continue;
			}
			c++;
			switch (*c)
			{
				case 'b':
					buf[n++] = '\b';
					break;
				case 'f':
					buf[n++] = '\f';
					break;
				case 'n':
					buf[n++] = '\n';
					break;
				case 'r':
					buf[n++] = '\r';
					break;
				case 't':
					buf[n++] = '\t';
					break;
				case 'u':
					{
						char		hex[5] = {c[1], c[2], c[3], c[4], 0};
						unsigned	cp = (unsigned) strtoul(hex, nullptr, 16);

						/* JSON.stringify escapes only control characters and lone surrogates */
						if (cp == 0 || cp >= 0x80)
							return false;
						buf[n++] = (char) cp;
						c += 4;
					}
					break;
				default:
					buf[n++] = *c;	/* \" \\ \/ */
					break;
			}
		}
	buf[n] = '\0';
	out->type = jbvString;
	out->val.string.val = buf;
	out->val.string.len = (int) n;
	jp.p = q + 1;
	return true;
}

static bool
txv8_jp_number(txv8_jp &jp, JsonbValue *out)
{
	const char *start = jp.p;
	bool		integral = true;

	while (jp.p < jp.end && strchr("+-0123456789.eE", *jp.p))
	{
		if (*jp.p == '.' || *jp.p == 'e' || *jp.p == 'E')
			integral = false;
		jp.p++;
	}
	size_t		len = jp.p - start;
	Datum volatile r = 0;

	if (integral && len <= 18)
	{
		int64		i = strtoll(start, nullptr, 10);

		txv8_pg([&] { r = NumericGetDatum(int64_to_numeric(i)); });
	}
	else
	{
		char	   *text = (char *) txv8_palloc(len + 1);

		memcpy(text, start, len);
		text[len] = '\0';
		txv8_pg([&] {
			r = DirectFunctionCall3(numeric_in, CStringGetDatum(text), ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
		});
	}
	out->type = jbvNumeric;
	out->val.numeric = DatumGetNumeric(r);
	return true;
}

static bool
txv8_jp_value(txv8_jp &jp, JsonbValue *out)
{
	if (stack_is_too_deep())
		return false;
	switch (*jp.p)
	{
		case '"':
			return txv8_jp_string(jp, out);
		case 't':
			out->type = jbvBool;
			out->val.boolean = true;
			jp.p += 4;
			return true;
		case 'f':
			out->type = jbvBool;
			out->val.boolean = false;
			jp.p += 5;
			return true;
		case 'n':
			out->type = jbvNull;
			jp.p += 4;
			return true;
		case '[':
			{
				std::vector<JsonbValue> elems;

				jp.p++;
				while (*jp.p != ']')
				{
					elems.emplace_back();
					if (!txv8_jp_value(jp, &elems.back()))
						return false;
					if (*jp.p == ',')
						jp.p++;
				}
				jp.p++;
				JsonbValue *arr = (JsonbValue *) txv8_palloc(sizeof(JsonbValue) * Max(elems.size(), 1));

				if (!elems.empty())
					memcpy(arr, elems.data(), sizeof(JsonbValue) * elems.size());
				out->type = jbvArray;
				out->val.array.nElems = (int) elems.size();
				out->val.array.elems = arr;
				out->val.array.rawScalar = false;
				return true;
			}
		case '{':
			{
				std::vector<JsonbPair> pairs;

				jp.p++;
				while (*jp.p != '}')
				{
					pairs.emplace_back();
					JsonbPair  &pr = pairs.back();

					if (!txv8_jp_string(jp, &pr.key))
						return false;
					jp.p++;		/* ':' */
					if (!txv8_jp_value(jp, &pr.value))
						return false;
					pr.order = (uint32) pairs.size() - 1;
					if (*jp.p == ',')
						jp.p++;
				}
				jp.p++;
				std::sort(pairs.begin(), pairs.end(), txv8_jb_key_less);
				JsonbPair  *arr = (JsonbPair *) txv8_palloc(sizeof(JsonbPair) * Max(pairs.size(), 1));

				if (!pairs.empty())
					memcpy(arr, pairs.data(), sizeof(JsonbPair) * pairs.size());
				out->type = jbvObject;
				out->val.object.nPairs = (int) pairs.size();
				out->val.object.pairs = arr;
				return true;
			}
		default:
			return txv8_jp_number(jp, out);
	}
}

/*
 * The fast path: JSON.stringify (V8's native serializer) and the parser above. It gives
 * the same jsonb as the direct conversion below for everything JSON.stringify accepts;
 * anything else (BigInt, lone surrogates, \u0000, undefined results) falls back to it.
 */
static bool
txv8_jsonb_via_text(v8::Local<v8::Value> v, Datum *result)
{
	if (!v->IsObject() && !v->IsString() && !v->IsNumber() && !v->IsBoolean())
		return false;
	v8::TryCatch tc(txv8_isolate);
	v8::Local<v8::String> json;

	if (!v8::JSON::Stringify(txv8_isolate->GetCurrentContext(), v).ToLocal(&json))
	{
		if (tc.HasTerminated() || txv8_isolate->IsExecutionTerminating())
		{
			tc.ReThrow();
			throw txv8_js_thrown();
		}
		return false;			/* e.g. a BigInt: the direct conversion handles it */
	}
	int			len;
	char	   *text = txv8_string_to_server(json, &len);

	if (len == 9 && memcmp(text, "undefined", 9) == 0)
		return false;
	txv8_jp		jp = {text, text + len};
	JsonbValue	root;

	if (!txv8_jp_value(jp, &root))
		return false;
	Datum volatile d = 0;

	txv8_pg([&] { d = JsonbPGetDatum(JsonbValueToJsonb(&root)); });
	*result = d;
	return true;
}

Datum
txv8_value_to_jsonb(txv8_typeinfo *ti, v8::Local<v8::Value> v, bool *isnull)
{
	txv8_jb_builder b;
	JsonbValue	root;
	Datum		fast;

	if (txv8_jsonb_via_text(v, &fast))
		return fast;

	b.ctx = txv8_isolate->GetCurrentContext();
	b.tojson = txv8_string_internal("toJSON");
	if (!txv8_jb_value(b, v, &root, v8::String::Empty(txv8_isolate)))
	{
		*isnull = true;
		return (Datum) 0;
	}
	Datum volatile r = 0;

	txv8_pg([&] { r = JsonbPGetDatum(JsonbValueToJsonb(&root)); });
	return r;
}
