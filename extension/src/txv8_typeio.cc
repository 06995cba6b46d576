/* txv8_typeio.cc: Datum <-> JS conversions for scalars, dates, bytea and json; choosing the conversion of a type. */
#include "txv8_typeio.h"

#include <cmath>
#include <cstdlib>
#include <unordered_map>
#include <vector>

extern "C" {
#include "utils/array.h"
#include "utils/date.h"
#include "utils/fmgrprotos.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"
}

bool		txv8_server_is_utf8 = true;

/* Milliseconds from the Unix epoch to the PostgreSQL epoch (2000-01-01). */
static const int64 txv8_pg_epoch_ms = (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000;

static inline v8::Local<v8::Context>
txv8_ctx(void)
{
	return txv8_isolate->GetCurrentContext();
}

/* ---------- strings ---------- */

v8::Local<v8::String>
txv8_string_from_server(const char *s, int len)
{
	v8::Local<v8::String> out;

	if (!txv8_server_is_utf8 && len > 0)
	{
		char	   *volatile conv = nullptr;

		txv8_pg([&] { conv = pg_server_to_any(s, len, PG_UTF8); });
		if (conv != s)
		{
			s = conv;
			len = (int) strlen(conv);
		}
	}
	if (!v8::String::NewFromUtf8(txv8_isolate, s, v8::NewStringType::kNormal, len).ToLocal(&out))
		txv8_error(ERRCODE_PROGRAM_LIMIT_EXCEEDED, "string is too long for a JavaScript string");
	return out;
}

v8::Local<v8::String>
txv8_string_internal(const char *s)
{
	return v8::String::NewFromUtf8(txv8_isolate, s, v8::NewStringType::kInternalized).ToLocalChecked();
}

v8::Local<v8::String>
txv8_name_string(const char *s)
{
	if (txv8_server_is_utf8)
		return txv8_string_internal(s);
	return txv8_string_from_server(s, (int) strlen(s));
}

char *
txv8_string_to_server(v8::Local<v8::Value> v, int *lenp)
{
	v8::Local<v8::String> str;

	if (v->IsString())
		str = v.As<v8::String>();
	else if (!v->ToString(txv8_ctx()).ToLocal(&str))
		throw txv8_js_thrown();

	int			n = str->Utf8Length(txv8_isolate);
	char	   *buf = (char *) txv8_palloc((Size) n + 1);

	str->WriteUtf8(txv8_isolate, buf, n, nullptr,
				   v8::String::REPLACE_INVALID_UTF8 | v8::String::NO_NULL_TERMINATION);
	buf[n] = '\0';
	if (memchr(buf, '\0', n) != nullptr)
		txv8_error(ERRCODE_UNTRANSLATABLE_CHARACTER,
				   "a JavaScript string containing \\u0000 cannot be converted to text");
	if (!txv8_server_is_utf8 && n > 0)
	{
		char	   *volatile conv = nullptr;

		txv8_pg([&] { conv = pg_any_to_server(buf, n, PG_UTF8); });
		if (conv != buf)
		{
			buf = conv;
			n = (int) strlen(conv);
		}
	}
	if (lenp)
		*lenp = n;
	return buf;
}

/* Detoast (decompress / fetch) a varlena, guarded; short and plain values pass as they are. */
static inline struct varlena *
txv8_detoast(Datum d)
{
	struct varlena *t = (struct varlena *) DatumGetPointer(d);

	if (VARATT_IS_EXTERNAL(t) || VARATT_IS_COMPRESSED(t))
	{
		struct varlena *volatile r = nullptr;

		txv8_pg([&] { r = pg_detoast_datum_packed(t); });
		t = r;
	}
	return t;
}

static Datum
txv8_text_datum(const char *s, int len)
{
	text	   *t = (text *) txv8_palloc((Size) len + VARHDRSZ);

	SET_VARSIZE(t, len + VARHDRSZ);
	memcpy(VARDATA(t), s, len);
	return PointerGetDatum(t);
}

/* ---------- lexical fallback: the type's output / input function ---------- */

static v8::Local<v8::Value>
lexical_to_js(txv8_typeinfo *ti, Datum d)
{
	char	   *volatile s = nullptr;

	txv8_pg([&] { s = OutputFunctionCall(&ti->outfunc, d); });
	return txv8_string_from_server(s, (int) strlen(s));
}

static Datum
lexical_from_js(txv8_typeinfo *ti, v8::Local<v8::Value> v, bool *isnull)
{
	char	   *s = txv8_string_to_server(v, nullptr);
	Datum volatile r = 0;

	if (!OidIsValid(ti->infunc.fn_oid))
		txv8_error(ERRCODE_FEATURE_NOT_SUPPORTED, "cannot convert a JavaScript value to a pseudo-type");
	txv8_pg([&] { r = InputFunctionCall(&ti->infunc, s, ti->ioparam, ti->typmod); });
	return r;
}

/* internal and other unresolved pseudo-types: nothing JS could use */
static v8::Local<v8::Value>
pseudo_to_js(txv8_typeinfo *, Datum)
{
	return v8::Undefined(txv8_isolate);
}

/* ---------- scalars ---------- */

static v8::Local<v8::Value>
bool_to_js(txv8_typeinfo *, Datum d)
{
	return v8::Boolean::New(txv8_isolate, DatumGetBool(d));
}

static v8::Local<v8::Value>
int2_to_js(txv8_typeinfo *, Datum d)
{
	return v8::Integer::New(txv8_isolate, DatumGetInt16(d));
}

static v8::Local<v8::Value>
int4_to_js(txv8_typeinfo *, Datum d)
{
	return v8::Integer::New(txv8_isolate, DatumGetInt32(d));
}

static v8::Local<v8::Value>
int8_to_js(txv8_typeinfo *, Datum d)
{
	return v8::BigInt::New(txv8_isolate, DatumGetInt64(d));
}

static v8::Local<v8::Value>
oid_to_js(txv8_typeinfo *, Datum d)
{
	return v8::Integer::NewFromUnsigned(txv8_isolate, DatumGetObjectId(d));
}

static v8::Local<v8::Value>
float4_to_js(txv8_typeinfo *, Datum d)
{
	return v8::Number::New(txv8_isolate, DatumGetFloat4(d));
}

static v8::Local<v8::Value>
float8_to_js(txv8_typeinfo *, Datum d)
{
	return v8::Number::New(txv8_isolate, DatumGetFloat8(d));
}

static v8::Local<v8::Value>
numeric_to_js(txv8_typeinfo *, Datum d)
{
	Datum volatile r = 0;

	txv8_pg([&] { r = DirectFunctionCall1(numeric_float8_no_overflow, d); });
	return v8::Number::New(txv8_isolate, DatumGetFloat8(r));
}

static v8::Local<v8::Value>
text_to_js(txv8_typeinfo *, Datum d)
{
	struct varlena *t = txv8_detoast(d);

	return txv8_string_from_server(VARDATA_ANY(t), (int) VARSIZE_ANY_EXHDR(t));
}

static v8::Local<v8::Value>
name_to_js(txv8_typeinfo *, Datum d)
{
	const char *s = NameStr(*DatumGetName(d));

	return txv8_string_from_server(s, (int) strlen(s));
}

static v8::Local<v8::Value>
txv8_date_value(double ms)
{
	v8::Local<v8::Value> r;

	if (!v8::Date::New(txv8_ctx(), ms).ToLocal(&r))
		throw txv8_js_thrown();
	return r;
}

static v8::Local<v8::Value>
date_to_js(txv8_typeinfo *, Datum d)
{
	DateADT		day = DatumGetDateADT(d);

	if (DATE_NOT_FINITE(day))
		return txv8_date_value(std::nan(""));
	return txv8_date_value((double) day * 86400000.0 + (double) txv8_pg_epoch_ms);
}

/* timestamp (wall clock taken as UTC) and timestamptz (an instant) share one representation. */
static v8::Local<v8::Value>
timestamp_to_js(txv8_typeinfo *, Datum d)
{
	Timestamp	t = DatumGetTimestamp(d);

	if (TIMESTAMP_NOT_FINITE(t))
		return txv8_date_value(std::nan(""));
	int64		ms = t / 1000;

	if (t % 1000 < 0)
		ms--;					/* floor, so instants before 2000 do not move forward */
	return txv8_date_value((double) (ms + txv8_pg_epoch_ms));
}

static v8::Local<v8::Value>
bytea_to_js(txv8_typeinfo *, Datum d)
{
	struct varlena *t = txv8_detoast(d);
	size_t		len = VARSIZE_ANY_EXHDR(t);
	void	   *copy = malloc(len ? len : 1);

	if (copy == nullptr)
		txv8_error(ERRCODE_OUT_OF_MEMORY, "out of memory converting bytea of %zu bytes", len);
	memcpy(copy, VARDATA_ANY(t), len);
	std::unique_ptr<v8::BackingStore> bs = v8::ArrayBuffer::NewBackingStore(
		copy, len, [](void *data, size_t, void *) { free(data); }, nullptr);
	v8::Local<v8::ArrayBuffer> ab = v8::ArrayBuffer::New(txv8_isolate, std::move(bs));

	return v8::Uint8Array::New(ab, 0, len);
}

static v8::Local<v8::Value>
json_to_js(txv8_typeinfo *ti, Datum d)
{
	v8::Local<v8::String> s = text_to_js(ti, d).As<v8::String>();
	v8::Local<v8::Value> r;

	if (!v8::JSON::Parse(txv8_ctx(), s).ToLocal(&r))
		throw txv8_js_thrown();
	return r;
}

static Datum
bool_from_js(txv8_typeinfo *ti, v8::Local<v8::Value> v, bool *isnull)
{
	if (v->IsBoolean())
		return BoolGetDatum(v.As<v8::Boolean>()->Value());
	return lexical_from_js(ti, v, isnull);
}

/* Integers: numbers are truncated toward zero; out-of-range values are an error (plv8 wrapped them). */
static int64
txv8_integer_value(txv8_typeinfo *ti, v8::Local<v8::Value> v, int64 lo, int64 hi, const char *what, bool *done)
{
	*done = true;
	if (v->IsInt32())
	{
		int64		i = v.As<v8::Int32>()->Value();

		if (i >= lo && i <= hi)
			return i;
	}
	else if (v->IsNumber())
	{
		double		d = std::trunc(v.As<v8::Number>()->Value());

		/* 2^63 is exactly representable; every double below it fits in int64 */
		if (d >= (double) lo && d <= (double) hi && d < 9223372036854775808.0)
			return (int64) d;
	}
	else if (v->IsBoolean())
		return v.As<v8::Boolean>()->Value() ? 1 : 0;
	else if (v->IsBigInt())
	{
		bool		lossless;
		int64		i = v.As<v8::BigInt>()->Int64Value(&lossless);

		if (lossless && i >= lo && i <= hi)
			return i;
	}
	else
	{
		*done = false;
		return 0;
	}
	txv8_error(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE, "%s out of range", what);
}

static Datum
int2_from_js(txv8_typeinfo *ti, v8::Local<v8::Value> v, bool *isnull)
{
	bool		done;
	int64		i = txv8_integer_value(ti, v, PG_INT16_MIN, PG_INT16_MAX, "smallint", &done);

	return done ? Int16GetDatum((int16) i) : lexical_from_js(ti, v, isnull);
}

static Datum
int4_from_js(txv8_typeinfo *ti, v8::Local<v8::Value> v, bool *isnull)
{
	if (v->IsInt32())
		return Int32GetDatum(v.As<v8::Int32>()->Value());
	bool		done;
	int64		i = txv8_integer_value(ti, v, PG_INT32_MIN, PG_INT32_MAX, "integer", &done);

	return done ? Int32GetDatum((int32) i) : lexical_from_js(ti, v, isnull);
}

static Datum
int8_from_js(txv8_typeinfo *ti, v8::Local<v8::Value> v, bool *isnull)
{
	bool		done;
	int64		i = txv8_integer_value(ti, v, PG_INT64_MIN, PG_INT64_MAX, "bigint", &done);

	return done ? Int64GetDatum(i) : lexical_from_js(ti, v, isnull);
}

static Datum
oid_from_js(txv8_typeinfo *ti, v8::Local<v8::Value> v, bool *isnull)
{
	bool		done;
	int64		i = txv8_integer_value(ti, v, 0, PG_UINT32_MAX, "OID", &done);

	return done ? ObjectIdGetDatum((Oid) i) : lexical_from_js(ti, v, isnull);
}

static Datum
float4_from_js(txv8_typeinfo *ti, v8::Local<v8::Value> v, bool *isnull)
{
	if (!v->IsNumber())
		return lexical_from_js(ti, v, isnull);
	double		d = v.As<v8::Number>()->Value();
	float		f = (float) d;

	if (std::isinf(f) && !std::isinf(d))
		txv8_error(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE, "value out of range: overflow");
	return Float4GetDatum(f);
}

static Datum
float8_from_js(txv8_typeinfo *ti, v8::Local<v8::Value> v, bool *isnull)
{
	if (v->IsNumber())
		return Float8GetDatum(v.As<v8::Number>()->Value());
	return lexical_from_js(ti, v, isnull);
}

/* numeric: integers exactly, other numbers through float8_numeric (15 significant digits, as plv8), BigInt exactly. */
static Datum
numeric_from_js(txv8_typeinfo *ti, v8::Local<v8::Value> v, bool *isnull)
{
	Datum volatile r = 0;

	if (v->IsInt32())
	{
		int64		i = v.As<v8::Int32>()->Value();

		txv8_pg([&] { r = NumericGetDatum(int64_to_numeric(i)); });
	}
	else if (v->IsNumber())
	{
		double		d = v.As<v8::Number>()->Value();

		txv8_pg([&] { r = DirectFunctionCall1(float8_numeric, Float8GetDatum(d)); });
	}
	else
		return lexical_from_js(ti, v, isnull);	/* BigInt and strings: exact through numeric_in */
	return r;
}

static Datum
text_from_js(txv8_typeinfo *ti, v8::Local<v8::Value> v, bool *isnull)
{
	int			len;
	char	   *s = txv8_string_to_server(v, &len);

	return txv8_text_datum(s, len);
}

static int64
txv8_date_ms(v8::Local<v8::Value> v)
{
	double		ms = v.As<v8::Date>()->ValueOf();

	if (std::isnan(ms))
		txv8_error(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE, "cannot convert an invalid Date");
	return (int64) ms;
}

static Datum
date_from_js(txv8_typeinfo *ti, v8::Local<v8::Value> v, bool *isnull)
{
	if (!v->IsDate())
		return lexical_from_js(ti, v, isnull);
	int64		ms = txv8_date_ms(v) - txv8_pg_epoch_ms;
	int64		day = ms / 86400000;

	if (ms % 86400000 < 0)
		day--;					/* the UTC calendar day of the instant, before 2000 too */
	if (!IS_VALID_DATE(day))
		txv8_error(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE, "date out of range");
	return DateADTGetDatum((DateADT) day);
}

static Datum
timestamp_from_js(txv8_typeinfo *ti, v8::Local<v8::Value> v, bool *isnull)
{
	if (!v->IsDate())
		return lexical_from_js(ti, v, isnull);
	int64		us = (txv8_date_ms(v) - txv8_pg_epoch_ms) * 1000;

	if (!IS_VALID_TIMESTAMP(us))
		txv8_error(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE, "timestamp out of range");
	return TimestampGetDatum(us);
}

/* bytea: any ArrayBufferView (only the viewed bytes) or ArrayBuffer; other values lexically. */
static Datum
bytea_from_js(txv8_typeinfo *ti, v8::Local<v8::Value> v, bool *isnull)
{
	bytea	   *b;

	if (v->IsArrayBufferView())
	{
		v8::Local<v8::ArrayBufferView> view = v.As<v8::ArrayBufferView>();
		size_t		n = view->ByteLength();

		b = (bytea *) txv8_palloc(n + VARHDRSZ);
		n = view->CopyContents(VARDATA(b), n);
		SET_VARSIZE(b, n + VARHDRSZ);
	}
	else if (v->IsArrayBuffer())
	{
		std::shared_ptr<v8::BackingStore> bs = v.As<v8::ArrayBuffer>()->GetBackingStore();
		size_t		n = bs->ByteLength();

		b = (bytea *) txv8_palloc(n + VARHDRSZ);
		if (n)
			memcpy(VARDATA(b), bs->Data(), n);
		SET_VARSIZE(b, n + VARHDRSZ);
	}
	else
		return lexical_from_js(ti, v, isnull);
	return PointerGetDatum(b);
}

/* json: objects and arrays through JSON.stringify; strings, numbers, booleans as JSON text (json_in). */
static Datum
json_from_js(txv8_typeinfo *ti, v8::Local<v8::Value> v, bool *isnull)
{
	if (!v->IsObject())
		return lexical_from_js(ti, v, isnull);
	v8::Local<v8::String> s;

	if (v->IsFunction() || !v8::JSON::Stringify(txv8_ctx(), v).ToLocal(&s))
	{
		if (v->IsFunction())
		{
			*isnull = true;
			return (Datum) 0;
		}
		throw txv8_js_thrown();
	}
	return text_from_js(ti, s, isnull);
}

static Datum
domain_from_js(txv8_typeinfo *ti, v8::Local<v8::Value> v, bool *isnull)
{
	Datum		r = ti->base_from_js(ti, v, isnull);
	bool		n = *isnull;

	txv8_pg([&] { domain_check(r, n, ti->typid, &ti->domain_extra, ti->mcxt); });
	return r;
}

void
txv8_domain_check_null(txv8_typeinfo *ti)
{
	txv8_pg([&] { domain_check((Datum) 0, true, ti->typid, &ti->domain_extra, ti->mcxt); });
}

/* ---------- choosing conversions ---------- */

void
txv8_typeinfo_init(txv8_typeinfo *ti, Oid typid, int32 typmod, MemoryContext mcxt)
{
	memset(ti, 0, sizeof(*ti));
	ti->typid = typid;
	ti->mcxt = mcxt;
	ti->typmod = -1;

	int32		basemod = typmod;
	Oid			base = getBaseTypeAndTypmod(typid, &basemod);

	ti->basetype = base;
	if (base != typid)
		ti->typmod = basemod;
	get_typlenbyvalalign(base, &ti->typlen, &ti->typbyval, &ti->typalign);

	char		typtype = get_typtype(base);
	bool		pseudo = typtype == TYPTYPE_PSEUDO && base != RECORDOID && base != UNKNOWNOID;

	if (!pseudo)
	{
		Oid			infn,
					outfn;
		bool		isvarlena;

		getTypeInputInfo(base, &infn, &ti->ioparam);
		getTypeOutputInfo(base, &outfn, &isvarlena);
		fmgr_info_cxt(infn, &ti->infunc, mcxt);
		fmgr_info_cxt(outfn, &ti->outfunc, mcxt);
	}
	ti->to_js = pseudo ? pseudo_to_js : lexical_to_js;
	ti->from_js = lexical_from_js;

	switch (base)
	{
		case BOOLOID:
			ti->to_js = bool_to_js;
			ti->from_js = bool_from_js;
			break;
		case INT2OID:
			ti->to_js = int2_to_js;
			ti->from_js = int2_from_js;
			break;
		case INT4OID:
			ti->to_js = int4_to_js;
			ti->from_js = int4_from_js;
			break;
		case INT8OID:
			ti->to_js = int8_to_js;
			ti->from_js = int8_from_js;
			break;
		case OIDOID:
			ti->to_js = oid_to_js;
			ti->from_js = oid_from_js;
			break;
		case FLOAT4OID:
			ti->to_js = float4_to_js;
			ti->from_js = float4_from_js;
			break;
		case FLOAT8OID:
			ti->to_js = float8_to_js;
			ti->from_js = float8_from_js;
			break;
		case NUMERICOID:
			ti->to_js = numeric_to_js;
			ti->from_js = numeric_from_js;
			break;
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
			ti->to_js = text_to_js;
			ti->from_js = text_from_js;
			break;
		case XMLOID:
			ti->to_js = text_to_js;
			break;
		case NAMEOID:
			ti->to_js = name_to_js;
			break;
		case DATEOID:
			ti->to_js = date_to_js;
			ti->from_js = date_from_js;
			break;
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			ti->to_js = timestamp_to_js;
			ti->from_js = timestamp_from_js;
			break;
		case BYTEAOID:
			ti->to_js = bytea_to_js;
			ti->from_js = bytea_from_js;
			break;
		case JSONOID:
			ti->to_js = json_to_js;
			ti->from_js = json_from_js;
			break;
		case JSONBOID:
			ti->to_js = txv8_jsonb_to_value;
			ti->from_js = txv8_value_to_jsonb;
			break;
		default:
			{
				Oid			elemtype = get_element_type(base);

				if (OidIsValid(elemtype))
				{
					ti->elem = (txv8_typeinfo *) MemoryContextAlloc(mcxt, sizeof(txv8_typeinfo));
					txv8_typeinfo_init(ti->elem, elemtype, ti->typmod, mcxt);
					ti->elem_is_json = ti->elem->basetype == JSONOID || ti->elem->basetype == JSONBOID;
					ti->to_js = txv8_array_to_js;
					ti->from_js = txv8_array_from_js;
				}
				else if (base == RECORDOID || typtype == TYPTYPE_COMPOSITE)
				{
					ti->composite = true;
					ti->to_js = txv8_composite_to_js;
					ti->from_js = txv8_composite_from_js;
				}
			}
			break;
	}
	if (base != typid)
	{
		ti->base_from_js = ti->from_js;
		ti->from_js = domain_from_js;
	}
}

/* Built-in types never change: their conversions are built once per backend. */
static std::unordered_map<Oid, txv8_typeinfo *> *txv8_builtin_types;
static MemoryContext txv8_type_cxt;

txv8_typeinfo *
txv8_typeinfo_get(Oid typid, int32 typmod, MemoryContext mcxt)
{
	if (typid < FirstGenbkiObjectId)
	{
		if (txv8_builtin_types == nullptr)
		{
			txv8_type_cxt = AllocSetContextCreate(TopMemoryContext, "txv8 built-in types", ALLOCSET_SMALL_SIZES);
			txv8_builtin_types = new std::unordered_map<Oid, txv8_typeinfo *>();
		}
		auto		it = txv8_builtin_types->find(typid);

		if (it != txv8_builtin_types->end())
			return it->second;
		txv8_typeinfo *ti = (txv8_typeinfo *) MemoryContextAlloc(txv8_type_cxt, sizeof(txv8_typeinfo));

		txv8_typeinfo_init(ti, typid, -1, txv8_type_cxt);
		txv8_builtin_types->emplace(typid, ti);
		return ti;
	}
	txv8_typeinfo *ti = (txv8_typeinfo *) MemoryContextAlloc(mcxt, sizeof(txv8_typeinfo));

	txv8_typeinfo_init(ti, typid, typmod, mcxt);
	return ti;
}

