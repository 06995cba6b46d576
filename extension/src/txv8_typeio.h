/* txv8_typeio.h: conversions between PostgreSQL Datums and JS values, chosen once per type. */
#pragma once

#include "txv8_pg.h"

struct txv8_typeinfo;

/* Datum (never NULL) -> JS value. */
typedef v8::Local<v8::Value> (*txv8_to_js_fn) (txv8_typeinfo *ti, Datum d);

/* JS value (never null/undefined) -> Datum; may set *isnull. */
typedef Datum (*txv8_from_js_fn) (txv8_typeinfo *ti, v8::Local<v8::Value> v, bool *isnull);

/*
 * How one PostgreSQL type converts. Built by txv8_typeinfo_init() (a PostgreSQL-level
 * call: run it outside V8 scopes or inside txv8_pg), used by txv8_datum_to_value() and
 * txv8_value_to_datum() on the hot path, which are a single indirect call each.
 */
struct txv8_typeinfo
{
	Oid			typid;			/* declared type (may be a domain) */
	Oid			basetype;		/* after stripping domains */
	int32		typmod;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	txv8_to_js_fn to_js;
	txv8_from_js_fn from_js;
	txv8_from_js_fn base_from_js;	/* for domains: the base type's conversion */
	MemoryContext mcxt;			/* owns everything below */

	/* lexical conversions (type input/output functions) */
	FmgrInfo	infunc;
	FmgrInfo	outfunc;
	Oid			ioparam;

	void	   *domain_extra;	/* domain_check() cache */

	/* arrays */
	txv8_typeinfo *elem;
	bool		elem_is_json;	/* nested JS arrays are values, not dimensions */

	/* composites and records */
	bool		composite;		/* a row type (named, record, or domain over one) */
	TupleDesc	tupdesc;		/* NULL until known (records: per value) */
	uint64		tupdesc_id;		/* typcache identifier the attribute infos were built for */
	bool		fixed_tupdesc;	/* tupdesc given by the caller (function results) */
	int			natts;
	txv8_typeinfo *atts;		/* per attribute (dropped ones have typid InvalidOid) */
};

/* Initialise *ti for typid/typmod, allocating in mcxt. PostgreSQL-level (may ereport). */
void		txv8_typeinfo_init(txv8_typeinfo *ti, Oid typid, int32 typmod, MemoryContext mcxt);

/* A record type with a known tuple descriptor (function results, SRF rows). PostgreSQL-level. */
void		txv8_typeinfo_init_tupdesc(txv8_typeinfo *ti, TupleDesc tupdesc, MemoryContext mcxt);

/*
 * A long-lived typeinfo for a built-in type (cached for the backend) or a fresh one in
 * mcxt for any other type. PostgreSQL-level.
 */
txv8_typeinfo *txv8_typeinfo_get(Oid typid, int32 typmod, MemoryContext mcxt);

static inline v8::Local<v8::Value>
txv8_datum_to_value(txv8_typeinfo *ti, Datum d, bool isnull)
{
	if (isnull)
		return v8::Null(v8::Isolate::GetCurrent());
	return ti->to_js(ti, d);
}

void		txv8_domain_check_null(txv8_typeinfo *ti);

static inline Datum
txv8_value_to_datum(txv8_typeinfo *ti, v8::Local<v8::Value> v, bool *isnull)
{
	if (v->IsNullOrUndefined())
	{
		*isnull = true;
		if (unlikely(ti->base_from_js != nullptr))
			txv8_domain_check_null(ti);	/* NOT NULL domains */
		return (Datum) 0;
	}
	*isnull = false;
	return ti->from_js(ti, v, isnull);
}

/* Composite helpers shared with triggers, SRFs and SPI results. */
v8::Local<v8::Object> txv8_tuple_to_object(txv8_typeinfo *ti, HeapTupleHeader tup);
v8::Local<v8::Object> txv8_heaptuple_to_object(txv8_typeinfo *ti, HeapTuple tuple);
void		txv8_object_to_values(txv8_typeinfo *ti, v8::Local<v8::Value> v, Datum *values, bool *nulls);
HeapTuple	txv8_object_to_tuple(txv8_typeinfo *ti, v8::Local<v8::Value> v);
void		txv8_typeinfo_refresh(txv8_typeinfo *ti);	/* composite: match the current row type (guarded) */
void		txv8_typeinfo_prepare(txv8_typeinfo *ti);	/* the same, PostgreSQL-level */

/*
 * Row converter for query results: column names and conversions built once per tuple
 * descriptor (SPI results, cursors), reused while the descriptor's shape is unchanged.
 */
struct txv8_rowconv
{
	int			natts;
	Oid		   *types;
	char	  **names;			/* NULL for dropped columns */
	txv8_typeinfo **infos;
	MemoryContext mcxt;
	char	   *shape;			/* the column list, the key of its row builder in each context */
	int			nlive;			/* columns that are not dropped */
	uint64		builder_serial; /* context whose row factory `builder` points to */
	void	   *builder;		/* txv8_row_factory * owned by that context */
};

txv8_rowconv *txv8_rowconv_build(TupleDesc tupdesc, MemoryContext mcxt);	/* PostgreSQL-level */
bool		txv8_rowconv_matches(txv8_rowconv *rc, TupleDesc tupdesc);
v8::Local<v8::Array> txv8_rowconv_rows(txv8_rowconv *rc, SPITupleTable *tuptable, uint64 ntuples);

/* Strings in the database encoding <-> JS strings. */
v8::Local<v8::String> txv8_string_from_server(const char *s, int len);
char	   *txv8_string_to_server(v8::Local<v8::Value> v, int *lenp);	/* ToString; palloc'd, NUL-terminated */
v8::Local<v8::String> txv8_string_internal(const char *s);	/* ASCII/UTF-8 constant names */

v8::Local<v8::String> txv8_name_string(const char *s);	/* a column/attribute name */

/* Conversions of arrays and composites (txv8_typeio_rows.cc), chosen by txv8_typeinfo_init. */
v8::Local<v8::Value> txv8_array_to_js(txv8_typeinfo *ti, Datum d);
Datum		txv8_array_from_js(txv8_typeinfo *ti, v8::Local<v8::Value> v, bool *isnull);
v8::Local<v8::Value> txv8_composite_to_js(txv8_typeinfo *ti, Datum d);
Datum		txv8_composite_from_js(txv8_typeinfo *ti, v8::Local<v8::Value> v, bool *isnull);

/* jsonb (txv8_jsonb.cc) */
v8::Local<v8::Value> txv8_jsonb_to_value(txv8_typeinfo *ti, Datum d);
Datum		txv8_value_to_jsonb(txv8_typeinfo *ti, v8::Local<v8::Value> v, bool *isnull);
