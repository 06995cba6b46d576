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

static JsonbIteratorToken
txv8_jsonb_next(JsonbIterator **it, JsonbValue *v)
{
	JsonbIteratorToken volatile tok = WJB_DONE;

	txv8_pg([&] { tok = JsonbIteratorNext(it, v, false); });
	return tok;
}

static v8::Local<v8::Value>
txv8_jsonb_scalar(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return v8::Null(txv8_isolate);
		case jbvBool:
			return v8::Boolean::New(txv8_isolate, v->val.boolean);
		case jbvString:
			return txv8_string_from_server(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			{
				Datum volatile r = 0;
				Numeric		n = v->val.numeric;

				txv8_pg([&] { r = DirectFunctionCall1(numeric_float8_no_overflow, NumericGetDatum(n)); });
				return v8::Number::New(txv8_isolate, DatumGetFloat8(r));
			}
		default:
			txv8_error(ERRCODE_INTERNAL_ERROR, "unexpected jsonb value type %d", (int) v->type);
	}
}

/* Convert the container whose BEGIN token was just read; returns the scalar itself for a raw-scalar root. */
static v8::Local<v8::Value>
txv8_jsonb_container(JsonbIterator **it, JsonbIteratorToken tok, JsonbValue *begin)
{
	v8::Local<v8::Context> ctx = txv8_isolate->GetCurrentContext();
	JsonbValue	v;

	if (tok == WJB_BEGIN_ARRAY)
	{
		bool		raw = begin->val.array.rawScalar;
		std::vector<v8::Local<v8::Value>> elems;

		elems.reserve(begin->val.array.nElems);
		while ((tok = txv8_jsonb_next(it, &v)) != WJB_END_ARRAY)
		{
			if (tok == WJB_ELEM)
				elems.push_back(txv8_jsonb_scalar(&v));
			else
				elems.push_back(txv8_jsonb_container(it, tok, &v));
		}
		if (raw && elems.size() == 1)
			return elems[0];
		return v8::Array::New(txv8_isolate, elems.data(), elems.size());
	}

	v8::Local<v8::Object> obj = v8::Object::New(txv8_isolate);

	while ((tok = txv8_jsonb_next(it, &v)) != WJB_END_OBJECT)
	{
		v8::Local<v8::String> key = txv8_string_from_server(v.val.string.val, v.val.string.len);
		v8::Local<v8::Value> val;

		tok = txv8_jsonb_next(it, &v);
		if (tok == WJB_VALUE)
			val = txv8_jsonb_scalar(&v);
		else
			val = txv8_jsonb_container(it, tok, &v);
		if (obj->CreateDataProperty(ctx, key, val).IsNothing())
			throw txv8_js_thrown();
	}
	return obj;
}

v8::Local<v8::Value>
txv8_jsonb_to_value(txv8_typeinfo *ti, Datum d)
{
	JsonbIterator *volatile it0 = nullptr;

	txv8_pg([&] {
		Jsonb	   *jb = DatumGetJsonbP(d);

		it0 = JsonbIteratorInit(&jb->root);
	});
	JsonbIterator *it = it0;
	JsonbValue	v;
	JsonbIteratorToken tok = txv8_jsonb_next(&it, &v);

	return txv8_jsonb_container(&it, tok, &v);
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

/* Fill *out from v; false if v is not representable (undefined, function, symbol). */
static bool
txv8_jb_value(txv8_jb_builder &b, v8::Local<v8::Value> v, JsonbValue *out)
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
		return txv8_jb_value(b, prim, out);
	}
	if (!v->IsArray())
	{
		v8::Local<v8::Value> tojson;

		if (!obj->Get(b.ctx, b.tojson).ToLocal(&tojson))
			throw txv8_js_thrown();
		if (tojson->IsFunction())
		{
			v8::Local<v8::Value> arg = v8::String::Empty(txv8_isolate);
			v8::Local<v8::Value> r;

			if (!tojson.As<v8::Function>()->Call(b.ctx, obj, 1, &arg).ToLocal(&r))
				throw txv8_js_thrown();
			return txv8_jb_value(b, r, out);
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
			if (!txv8_jb_value(b, e, &elems[i]))
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

		if (!txv8_jb_value(b, val, &p->value))
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

Datum
txv8_value_to_jsonb(txv8_typeinfo *ti, v8::Local<v8::Value> v, bool *isnull)
{
	txv8_jb_builder b;
	JsonbValue	root;

	b.ctx = txv8_isolate->GetCurrentContext();
	b.tojson = txv8_string_internal("toJSON");
	if (!txv8_jb_value(b, v, &root))
	{
		*isnull = true;
		return (Datum) 0;
	}
	Datum volatile r = 0;

	txv8_pg([&] { r = JsonbPGetDatum(JsonbValueToJsonb(&root)); });
	return r;
}
