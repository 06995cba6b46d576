/* txv8_typeio_rows.cc: Datum <-> JS conversions for arrays, composites and records, and query result rows. */
#include "txv8_typeio.h"

#include <string>

#include "txv8_engine.h"

#include <vector>

extern "C" {
#include "utils/array.h"
#include "utils/typcache.h"
}

static inline v8::Local<v8::Context>
txv8_ctx(void)
{
	return txv8_isolate->GetCurrentContext();
}

/* ---------- arrays ---------- */

static v8::Local<v8::Value>
txv8_array_level(std::vector<v8::Local<v8::Value>> &elems, int ndim, int *dims, int level, size_t *pos)
{
	int			n = dims[level];

	if (level == ndim - 1)
	{
		v8::Local<v8::Array> a = v8::Array::New(txv8_isolate, elems.data() + *pos, n);

		*pos += n;
		return a;
	}
	std::vector<v8::Local<v8::Value>> sub(n);

	for (int i = 0; i < n; i++)
		sub[i] = txv8_array_level(elems, ndim, dims, level + 1, pos);
	return v8::Array::New(txv8_isolate, sub.data(), n);
}

/* A PostgreSQL array becomes a JS Array; a multi-dimensional one becomes nested Arrays (plv8 flattened them). */
v8::Local<v8::Value>
txv8_array_to_js(txv8_typeinfo *ti, Datum d)
{
	ArrayType  *volatile arr = nullptr;
	Datum	   *volatile values = nullptr;
	bool	   *volatile nulls = nullptr;
	int volatile nitems = 0;
	txv8_typeinfo *et = ti->elem;

	txv8_pg([&] {
		Datum	   *vv;
		bool	   *nn;
		int			ni;

		arr = DatumGetArrayTypeP(d);
		deconstruct_array(arr, ARR_ELEMTYPE(arr), et->typlen, et->typbyval, et->typalign, &vv, &nn, &ni);
		values = vv;
		nulls = nn;
		nitems = ni;
	});
	int			ndim = ARR_NDIM(arr);

	if (ndim == 0 || nitems == 0)
		return v8::Array::New(txv8_isolate, 0);

	std::vector<v8::Local<v8::Value>> elems(nitems);

	for (int i = 0; i < nitems; i++)
		elems[i] = txv8_datum_to_value(et, values[i], nulls[i]);
	size_t		pos = 0;

	return txv8_array_level(elems, ndim, ARR_DIMS(arr), 0, &pos);
}

static bool
txv8_is_list(v8::Local<v8::Value> v)
{
	return v->IsArray() || v->IsTypedArray();
}

static uint32
txv8_list_length(v8::Local<v8::Value> v)
{
	if (v->IsArray())
		return v.As<v8::Array>()->Length();
	return (uint32) v.As<v8::TypedArray>()->Length();
}

static void
txv8_array_fill(txv8_typeinfo *ti, v8::Local<v8::Value> v, int level, int ndim, int *dims,
				Datum *values, bool *nulls, size_t *pos)
{
	v8::Local<v8::Context> ctx = txv8_ctx();

	if (!txv8_is_list(v) || txv8_list_length(v) != (uint32) dims[level])
		txv8_error(ERRCODE_ARRAY_SUBSCRIPT_ERROR,
				   "multidimensional arrays must have array expressions with matching dimensions");
	v8::Local<v8::Object> o = v.As<v8::Object>();

	for (int i = 0; i < dims[level]; i++)
	{
		v8::Local<v8::Value> e;

		if (!o->Get(ctx, i).ToLocal(&e))
			throw txv8_js_thrown();
		if (level == ndim - 1)
		{
			values[*pos] = txv8_value_to_datum(ti->elem, e, &nulls[*pos]);
			(*pos)++;
		}
		else
			txv8_array_fill(ti, e, level + 1, ndim, dims, values, nulls, pos);
	}
}

/* A JS Array (or typed array) becomes a PostgreSQL array; nested Arrays give dimensions. */
Datum
txv8_array_from_js(txv8_typeinfo *ti, v8::Local<v8::Value> v, bool *isnull)
{
	if (!txv8_is_list(v))
		txv8_error(ERRCODE_DATATYPE_MISMATCH, "value is not an Array");

	int			dims[MAXDIM];
	int			lbs[MAXDIM];
	int			ndim = 0;
	v8::Local<v8::Value> cur = v;
	v8::Local<v8::Context> ctx = txv8_ctx();
	size_t		nitems = 1;

	for (;;)
	{
		uint32		len = txv8_list_length(cur);

		if (ndim == MAXDIM)
			txv8_error(ERRCODE_PROGRAM_LIMIT_EXCEEDED, "number of array dimensions exceeds the maximum allowed (%d)", MAXDIM);
		dims[ndim] = (int) len;
		lbs[ndim] = 1;
		ndim++;
		nitems *= len;
		if (len == 0 || ti->elem_is_json || !cur->IsArray())
			break;
		v8::Local<v8::Value> first;

		if (!cur.As<v8::Array>()->Get(ctx, 0).ToLocal(&first))
			throw txv8_js_thrown();
		if (!first->IsArray())
			break;
		cur = first;
	}
	if (nitems == 0)
	{
		Datum volatile r = 0;
		Oid			et = ti->elem->typid;

		txv8_pg([&] { r = PointerGetDatum(construct_empty_array(et)); });
		return r;
	}
	if (nitems > MaxAllocSize / sizeof(Datum))
		txv8_error(ERRCODE_PROGRAM_LIMIT_EXCEEDED, "array size exceeds the maximum allowed");

	Datum	   *values = (Datum *) txv8_palloc(nitems * sizeof(Datum));
	bool	   *nulls = (bool *) txv8_palloc(nitems * sizeof(bool));
	size_t		pos = 0;

	txv8_array_fill(ti, v, 0, ndim, dims, values, nulls, &pos);

	Datum volatile r = 0;
	txv8_typeinfo *et = ti->elem;

	txv8_pg([&] {
		r = PointerGetDatum(construct_md_array(values, nulls, ndim, dims, lbs, et->typid,
											   et->typlen, et->typbyval, et->typalign));
	});
	return r;
}

/* ---------- composites ---------- */

static void
txv8_typeinfo_build_atts(txv8_typeinfo *ti, TupleDesc td)
{
	MemoryContext old = MemoryContextSwitchTo(ti->mcxt);

	ti->tupdesc = CreateTupleDescCopy(td);
	ti->natts = td->natts;
	ti->atts = (txv8_typeinfo *) palloc0(sizeof(txv8_typeinfo) * Max(td->natts, 1));
	for (int i = 0; i < td->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(td, i);

		if (!att->attisdropped)
			txv8_typeinfo_init(&ti->atts[i], att->atttypid, att->atttypmod, ti->mcxt);
	}
	MemoryContextSwitchTo(old);
}

/* Make ti's attribute conversions match the current row type. PostgreSQL-level. */
static void
txv8_composite_prepare(txv8_typeinfo *ti, Oid typid, int32 typmod)
{
	if (ti->fixed_tupdesc)
		return;
	if (typid == RECORDOID)
	{
		if (ti->tupdesc && ti->tupdesc->tdtypeid == RECORDOID && ti->tupdesc->tdtypmod == typmod)
			return;
		TupleDesc	td = lookup_rowtype_tupdesc(typid, typmod);

		txv8_typeinfo_build_atts(ti, td);
		ReleaseTupleDesc(td);
		return;
	}
	TypeCacheEntry *tce = lookup_type_cache(typid, TYPECACHE_TUPDESC);

	if (tce->tupDesc == NULL)
		elog(ERROR, "type %u is not composite", typid);
	if (ti->tupdesc && ti->tupdesc_id == tce->tupDesc_identifier)
		return;
	txv8_typeinfo_build_atts(ti, tce->tupDesc);
	ti->tupdesc_id = tce->tupDesc_identifier;
}

void
txv8_typeinfo_prepare(txv8_typeinfo *ti)
{
	if (!ti->composite || ti->fixed_tupdesc || ti->basetype == RECORDOID)
		return;
	txv8_composite_prepare(ti, ti->basetype, ti->typmod);
}

void
txv8_typeinfo_refresh(txv8_typeinfo *ti)
{
	txv8_pg([&] { txv8_typeinfo_prepare(ti); });
}

v8::Local<v8::Object>
txv8_heaptuple_to_object(txv8_typeinfo *ti, HeapTuple tuple)
{
	TupleDesc	td = ti->tupdesc;
	int			natts = td->natts;
	Datum	   *values = (Datum *) txv8_palloc(sizeof(Datum) * Max(natts, 1));
	bool	   *nulls = (bool *) txv8_palloc(sizeof(bool) * Max(natts, 1));
	v8::Local<v8::Context> ctx = txv8_ctx();
	v8::Local<v8::Object> obj = v8::Object::New(txv8_isolate);

	heap_deform_tuple(tuple, td, values, nulls);
	for (int i = 0; i < natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(td, i);

		if (att->attisdropped)
			continue;
		v8::Local<v8::Value> val = txv8_datum_to_value(&ti->atts[i], values[i], nulls[i]);

		if (obj->CreateDataProperty(ctx, txv8_name_string(NameStr(att->attname)), val).IsNothing())
			throw txv8_js_thrown();
	}
	pfree(values);
	pfree(nulls);
	return obj;
}

v8::Local<v8::Object>
txv8_tuple_to_object(txv8_typeinfo *ti, HeapTupleHeader th)
{
	HeapTupleData tmp;

	tmp.t_len = HeapTupleHeaderGetDatumLength(th);
	ItemPointerSetInvalid(&tmp.t_self);
	tmp.t_tableOid = InvalidOid;
	tmp.t_data = th;
	return txv8_heaptuple_to_object(ti, &tmp);
}

v8::Local<v8::Value>
txv8_composite_to_js(txv8_typeinfo *ti, Datum d)
{
	HeapTupleHeader volatile th = nullptr;

	txv8_pg([&] {
		th = DatumGetHeapTupleHeader(d);
		txv8_composite_prepare(ti, HeapTupleHeaderGetTypeId(th), HeapTupleHeaderGetTypMod(th));
	});
	return txv8_tuple_to_object(ti, th);
}

/*
 * An object becomes a row: every column name must be a property of the object (plv8's
 * "field name / property name mismatch" otherwise); extra properties are ignored;
 * undefined and null become NULL.
 */
void
txv8_object_to_values(txv8_typeinfo *ti, v8::Local<v8::Value> v, Datum *values, bool *nulls)
{
	if (!v->IsObject() || v->IsArray())
		txv8_error(ERRCODE_DATATYPE_MISMATCH, "argument must be an object");
	if (ti->tupdesc == NULL)
		txv8_error(ERRCODE_FEATURE_NOT_SUPPORTED, "input of anonymous composite types is not implemented");

	v8::Local<v8::Object> obj = v.As<v8::Object>();
	v8::Local<v8::Context> ctx = txv8_ctx();
	TupleDesc	td = ti->tupdesc;

	for (int i = 0; i < td->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(td, i);

		values[i] = (Datum) 0;
		nulls[i] = true;
		if (att->attisdropped)
			continue;
		v8::Local<v8::String> name = txv8_name_string(NameStr(att->attname));
		v8::Local<v8::Value> pv;

		if (!obj->Get(ctx, name).ToLocal(&pv))
			throw txv8_js_thrown();
		if (pv->IsUndefined())
		{
			v8::Maybe<bool> has = obj->Has(ctx, name);

			if (has.IsNothing())
				throw txv8_js_thrown();
			if (!has.FromJust())
				txv8_error(ERRCODE_DATATYPE_MISMATCH, "field name / property name mismatch");
		}
		values[i] = txv8_value_to_datum(&ti->atts[i], pv, &nulls[i]);
	}
}

HeapTuple
txv8_object_to_tuple(txv8_typeinfo *ti, v8::Local<v8::Value> v)
{
	if (ti->basetype == RECORDOID && !ti->fixed_tupdesc)
		txv8_error(ERRCODE_FEATURE_NOT_SUPPORTED, "input of anonymous composite types is not implemented");
	if (!ti->fixed_tupdesc)
		txv8_typeinfo_refresh(ti);
	int			natts = ti->tupdesc ? ti->tupdesc->natts : 0;
	Datum	   *values = (Datum *) txv8_palloc(sizeof(Datum) * Max(natts, 1));
	bool	   *nulls = (bool *) txv8_palloc(sizeof(bool) * Max(natts, 1));

	txv8_object_to_values(ti, v, values, nulls);

	HeapTuple volatile tup = nullptr;

	txv8_pg([&] { tup = heap_form_tuple(ti->tupdesc, values, nulls); });
	return tup;
}

Datum
txv8_composite_from_js(txv8_typeinfo *ti, v8::Local<v8::Value> v, bool *isnull)
{
	HeapTuple	tup = txv8_object_to_tuple(ti, v);
	Datum volatile r = 0;

	txv8_pg([&] { r = HeapTupleGetDatum(tup); });
	return r;
}

void
txv8_typeinfo_init_tupdesc(txv8_typeinfo *ti, TupleDesc tupdesc, MemoryContext mcxt)
{
	txv8_typeinfo_init(ti, RECORDOID, -1, mcxt);
	ti->fixed_tupdesc = true;
	txv8_typeinfo_build_atts(ti, tupdesc);
	MemoryContext old = MemoryContextSwitchTo(mcxt);

	ti->tupdesc = BlessTupleDesc(ti->tupdesc);
	MemoryContextSwitchTo(old);
}

/* ---------- query results ---------- */

txv8_rowconv *
txv8_rowconv_build(TupleDesc td, MemoryContext mcxt)
{
	txv8_rowconv *rc = (txv8_rowconv *) MemoryContextAllocZero(mcxt, sizeof(txv8_rowconv));
	int			n = td->natts;

	rc->mcxt = mcxt;
	rc->natts = n;
	rc->types = (Oid *) MemoryContextAllocZero(mcxt, sizeof(Oid) * Max(n, 1));
	rc->names = (char **) MemoryContextAllocZero(mcxt, sizeof(char *) * Max(n, 1));
	rc->infos = (txv8_typeinfo **) MemoryContextAllocZero(mcxt, sizeof(txv8_typeinfo *) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		Form_pg_attribute att = TupleDescAttr(td, i);

		if (att->attisdropped)
			continue;
		rc->types[i] = att->atttypid;
		rc->names[i] = MemoryContextStrdup(mcxt, NameStr(att->attname));
		rc->infos[i] = txv8_typeinfo_get(att->atttypid, att->atttypmod, mcxt);
		rc->nlive++;
	}

	StringInfoData shape;

	initStringInfo(&shape);
	for (int i = 0; i < n; i++)
		if (rc->names[i])
			appendStringInfo(&shape, "%s\x01", rc->names[i]);
	rc->shape = MemoryContextStrdup(mcxt, shape.data);
	pfree(shape.data);
	return rc;
}

bool
txv8_rowconv_matches(txv8_rowconv *rc, TupleDesc td)
{
	if (rc->natts != td->natts)
		return false;
	for (int i = 0; i < td->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(td, i);

		if (att->attisdropped != (rc->names[i] == NULL))
			return false;
		if (!att->attisdropped &&
			(att->atttypid != rc->types[i] || strcmp(NameStr(att->attname), rc->names[i]) != 0))
			return false;
	}
	return true;
}

/* The row factory of rc's column list in the running context, made on first use. */
static txv8_row_factory *
txv8_row_factory_get(txv8_rowconv *rc)
{
	txv8_context *ctx = txv8_running_context;

	if (rc->builder != nullptr && rc->builder_serial == ctx->serial)
		return static_cast<txv8_row_factory *>(rc->builder);

	auto		it = ctx->row_factories.try_emplace(rc->shape).first;

	rc->builder = &it->second;
	rc->builder_serial = ctx->serial;
	return &it->second;
}

/* One row's object literal, "{"k0": <v(0)>, "k1": <v(1)>, ...}", live columns in order. */
template <typename F>
static void
txv8_row_literal(std::string &src, txv8_rowconv *rc, F &&value)
{
	int			k = 0;

	src += "{";
	for (int i = 0; i < rc->natts; i++)
	{
		const char *name = rc->names[i];

		if (name == nullptr)
			continue;
		if (k > 0)
			src += ", ";
		/* a quoted key; "__proto__" must be computed or it would set the prototype */
		bool		proto = strcmp(name, "__proto__") == 0;

		src += proto ? "[\"" : "\"";
		for (const char *p = name; *p; p++)
		{
			unsigned char c = (unsigned char) *p;

			if (c == '"' || c == '\\')
			{
				src += '\\';
				src += (char) c;
			}
			else if (c < 0x20)
			{
				char		esc[8];

				snprintf(esc, sizeof(esc), "\\u%04x", c);
				src += esc;
			}
			else
				src += (char) c;
		}
		src += proto ? "\"]" : "\"";
		src += ": " + value(k);
		k++;
	}
	src += "}";
}

/*
 * Rows are built by JS compiled once per column list and context: an object literal in
 * optimised JS builds a row far faster than defining its properties one by one through
 * the API, and every row gets the same keys, order and values (a later duplicate name
 * wins) in a fast-mode object of one shared hidden class. One function serves both forms:
 *   f(null, a0, a1, ...)  one row, its values as arguments (up to txv8_row_direct_max):
 *                         [{k0: a0, k1: a1, ...}]
 *   f(flat)               any number of rows from a flat array of their values
 * Calling it costs less than building the one row through the API (a clone of a blank
 * row filled by CreateDataProperty, and Array::New: 0.85 k instructions more per lookup,
 * and more cache misses). v8::Object::New with names and values makes dictionary-mode
 * objects, slower to use.
 */
static const int txv8_row_direct_max = 16;

static v8::Local<v8::Function>
txv8_row_builder(txv8_rowconv *rc, txv8_row_factory *f)
{
	if (f->builder.IsEmpty())
	{
		int			n = rc->nlive;
		std::string src = "(function (v";

		for (int k = 0; k < n && k < txv8_row_direct_max; k++)
			src += ", a" + std::to_string(k);
		src += ") { if (v === null) return [";
		txv8_row_literal(src, rc, [](int k) { return "a" + std::to_string(k); });
		src += "]; var n = v.length / " + std::to_string(n) + ", r = new Array(n); " +
			"for (var i = 0, j = 0; i < n; i++, j += " + std::to_string(n) + ") r[i] = ";
		txv8_row_literal(src, rc, [](int k) { return "v[j + " + std::to_string(k) + "]"; });
		src += "; return r; })";

		v8::Local<v8::Context> context = txv8_ctx();
		v8::Local<v8::Script> script;
		v8::Local<v8::Value> fn;

		if (!v8::Script::Compile(context, txv8_string_from_server(src.c_str(), (int) src.size())).ToLocal(&script) ||
			!script->Run(context).ToLocal(&fn) || !fn->IsFunction())
			throw txv8_js_thrown();
		f->builder.Reset(txv8_isolate, fn.As<v8::Function>());
	}
	return f->builder.Get(txv8_isolate);
}

/* Rows become objects keyed by column name in column order (a later duplicate name wins). */
v8::Local<v8::Array>
txv8_rowconv_rows(txv8_rowconv *rc, SPITupleTable *tuptable, uint64 ntuples)
{
	if (ntuples == 0)
		return v8::Array::New(txv8_isolate, 0);

	int			natts = rc->natts;
	int			nlive = rc->nlive;
	txv8_row_factory *f = txv8_row_factory_get(rc);
	size_t		nvals = (size_t) ntuples * nlive;
	bool		direct = ntuples == 1 && nlive <= txv8_row_direct_max;
	v8::Local<v8::Value> one[1 + txv8_row_direct_max];	/* null, then the values */
	std::vector<v8::Local<v8::Value>> many(direct ? 0 : nvals);
	v8::Local<v8::Value> *vals = direct ? one + 1 : many.data();
	Datum		values_inline[txv8_row_direct_max];
	bool		nulls_inline[txv8_row_direct_max];
	bool		small = natts <= txv8_row_direct_max;
	Datum	   *values = small ? values_inline : (Datum *) txv8_palloc(sizeof(Datum) * natts);
	bool	   *nulls = small ? nulls_inline : (bool *) txv8_palloc(sizeof(bool) * natts);
	size_t		pos = 0;

	for (uint64 r = 0; r < ntuples; r++)
	{
		heap_deform_tuple(tuptable->vals[r], tuptable->tupdesc, values, nulls);
		for (int i = 0; i < natts; i++)
			if (rc->names[i] != NULL)
				vals[pos++] = txv8_datum_to_value(rc->infos[i], values[i], nulls[i]);
	}
	if (!small)
	{
		pfree(values);
		pfree(nulls);
	}

	v8::Local<v8::Function> builder = txv8_row_builder(rc, f);
	v8::Local<v8::Value> rows;

	if (direct)
	{
		one[0] = v8::Null(txv8_isolate);
		if (!builder->Call(txv8_ctx(), v8::Undefined(txv8_isolate), 1 + nlive, one).ToLocal(&rows))
			throw txv8_js_thrown();
	}
	else
	{
		v8::Local<v8::Value> flat = v8::Array::New(txv8_isolate, vals, nvals);

		if (!builder->Call(txv8_ctx(), v8::Undefined(txv8_isolate), 1, &flat).ToLocal(&rows))
			throw txv8_js_thrown();
	}
	return rows.As<v8::Array>();
}
