/*
 * capture_row.c: to_jsonb of a captured table's row without PostgreSQL's per-row work — the
 * same jsonb datum, byte for byte, as to_jsonb(OLD/NEW) (PostgreSQL 15's composite_to_jsonb +
 * datum_to_jsonb), built from what does not change per row, cached per relation:
 *
 *   - the columns in jsonb's key order (shorter names first, then bytes: the order
 *     uniqueifyJsonbObject sorts them into), so the object is built already sorted, with no
 *     parse state, no copies and no sort, and serialized in one pass (capture_jsonb.c);
 *   - each column's category (as jsonb_categorize_type decides it, through domains) and output
 *     function, looked up once instead of twice per column per row (getBaseType,
 *     getTypeOutputInfo, fmgr_info);
 *   - the positions of the trigger's key columns among them.
 *
 * Per value, what datum_to_jsonb does, minus its detours that cannot change the result:
 * integers become the numeric numeric_in would parse from their text, written directly
 * (int_numeric); a numeric is its own datum when that is what the text round trip would give
 * (numeric_as_is); text, varchar and char(n) are their bytes
 * (their output functions copy them, padding included, and to_jsonb cuts at a NUL byte as
 * strlen does); booleans, date and timestamps as datum_to_jsonb makes them; floats (and numerics
 * not in that form) through their output function and numeric_in, as datum_to_jsonb does (NaN
 * and infinities become strings); any other built-in scalar through its output function as a string.
 *
 * A relation with a column of any other kind — json, jsonb, arrays, composites, types created
 * by users (enums, domains over them, types that may have a cast to json) — has no encoder:
 * capture_change.c calls PostgreSQL's own to_jsonb for its rows, as before. The cache is
 * dropped on a relcache invalidation of the relation (any ALTER TABLE, trigger or index change)
 * or of all relations (see capture_row_init); entries are marked stale, never freed while a
 * change may be using them, and rebuilt at the next change of that relation.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"

#include "capture.h"

/* How a column's values become jsonb values (datum_to_jsonb's categories, split finer). */
typedef enum RowKind
{
	KIND_BOOL,
	KIND_INT2,
	KIND_INT4,
	KIND_INT8,
	KIND_NUMERIC,				/* numeric: as it is (numeric_as_is), else as KIND_NUMBER */
	KIND_NUMBER,				/* float4, float8: output function, then numeric_in */
	KIND_TEXT,					/* text, varchar, bpchar: the bytes */
	KIND_DATE,
	KIND_TIMESTAMP,
	KIND_TIMESTAMPTZ,
	KIND_OTHER					/* another built-in scalar: its output, as a string */
} RowKind;

typedef struct RowColumn
{
	int			attno;			/* 0-based index in the relation's tuple descriptor */
	char	   *name;
	int			namelen;
	RowKind		kind;
	FmgrInfo	output;			/* KIND_NUMBER, KIND_OTHER */
} RowColumn;

struct CaptureEncoder
{
	Oid			relid;			/* hash key */
	bool		valid;			/* built and not invalidated since */
	uint64		invals;			/* invalidations seen (one during a build leaves it not valid) */
	bool		fast;			/* every column has a RowKind; else PostgreSQL's to_jsonb */
	MemoryContext cxt;			/* everything below */
	int			natts;			/* of the tuple descriptor it was built for */
	int			ncols;			/* columns not dropped, in jsonb key order */
	RowColumn  *cols;
	/* the key columns of the last trigger seen (its arguments 1…), in jsonb key order */
	int			nkeyargs;
	char	  **keyargs;		/* the arguments as given */
	int		   *keycols;		/* per key, sorted: index in cols, or -1 = not a column */
	char	  **keynames;		/* per key, sorted: its name */
	bool		keys_fast;		/* no duplicate key names */
};

static HTAB *encoders = NULL;

static void
encoders_invalidate_rel(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS seq;
	CaptureEncoder *e;

	if (encoders == NULL)
		return;
	if (OidIsValid(relid))
	{
		e = hash_search(encoders, &relid, HASH_FIND, NULL);
		if (e != NULL)
		{
			e->valid = false;
			e->invals++;
		}
		return;
	}
	hash_seq_init(&seq, encoders);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		e->valid = false;
		e->invals++;
	}
}

/*
 * Only the relation's own changes need a rebuild: what is cached of a column's type cannot
 * change while the column has it — a domain keeps its base type, ALTER TYPE cannot replace an
 * output function, and only built-in types are cached (a cast to json matters only for types
 * created by users, which are never cached). So no pg_type callback: creating any type (every
 * CREATE TEMP TABLE does) would otherwise drop every table's encoding.
 */
void
capture_row_init(void)
{
	CacheRegisterRelcacheCallback(encoders_invalidate_rel, (Datum) 0);
}

/* jsonb's key order (lengthCompareJsonbStringValue): length first, then bytes */
static int
key_order(const char *a, int alen, const char *b, int blen)
{
	if (alen != blen)
		return alen > blen ? 1 : -1;
	return memcmp(a, b, alen);
}

static int
column_cmp(const void *a, const void *b)
{
	const RowColumn *x = a;
	const RowColumn *y = b;

	return key_order(x->name, x->namelen, y->name, y->namelen);
}

/*
 * The kind of a column of type `typoid`, as jsonb_categorize_type would categorise it; false
 * for what this file does not encode (left to PostgreSQL's to_jsonb).
 */
static bool
column_kind(Oid typoid, RowKind *kind, Oid *outfunc)
{
	bool		varlena;

	typoid = getBaseType(typoid);
	*outfunc = InvalidOid;
	switch (typoid)
	{
		case BOOLOID:
			*kind = KIND_BOOL;
			return true;
		case INT2OID:
			*kind = KIND_INT2;
			return true;
		case INT4OID:
			*kind = KIND_INT4;
			return true;
		case INT8OID:
			*kind = KIND_INT8;
			return true;
		case NUMERICOID:
		case FLOAT4OID:
		case FLOAT8OID:
			getTypeOutputInfo(typoid, outfunc, &varlena);
			*kind = typoid == NUMERICOID ? KIND_NUMERIC : KIND_NUMBER;
			return true;
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
			*kind = KIND_TEXT;
			return true;
		case DATEOID:
			*kind = KIND_DATE;
			return true;
		case TIMESTAMPOID:
			*kind = KIND_TIMESTAMP;
			return true;
		case TIMESTAMPTZOID:
			*kind = KIND_TIMESTAMPTZ;
			return true;
		case JSONOID:
		case JSONBOID:
			return false;
		default:
			/* user-defined types may have a cast to json; arrays and composites nest */
			if (typoid >= FirstNormalObjectId || OidIsValid(get_element_type(typoid)) ||
				typoid == ANYARRAYOID || typoid == ANYCOMPATIBLEARRAYOID ||
				typoid == RECORDARRAYOID || type_is_rowtype(typoid))
				return false;
			getTypeOutputInfo(typoid, outfunc, &varlena);
			*kind = KIND_OTHER;
			return true;
	}
}

static void
encoder_build(CaptureEncoder *e, Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	MemoryContext old;
	uint64		invals = e->invals;

	if (e->cxt != NULL)
		MemoryContextDelete(e->cxt);
	e->cxt = NULL;
	e->valid = false;
	e->fast = false;
	e->ncols = 0;
	e->cols = NULL;
	e->nkeyargs = -1;
	e->cxt = AllocSetContextCreate(CacheMemoryContext, "txfn_capture row encoder", ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(e->cxt);

	e->natts = desc->natts;
	e->cols = palloc0(sizeof(RowColumn) * Max(desc->natts, 1));
	e->fast = true;
	for (int i = 0; i < desc->natts && e->fast; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		RowColumn  *c = &e->cols[e->ncols];
		Oid			outfunc;

		if (att->attisdropped)
			continue;
		if (!column_kind(att->atttypid, &c->kind, &outfunc))
		{
			e->fast = false;
			break;
		}
		c->attno = i;
		c->name = pstrdup(NameStr(att->attname));
		c->namelen = strlen(c->name);
		if (OidIsValid(outfunc))
			fmgr_info_cxt(outfunc, &c->output, e->cxt);
		e->ncols++;
	}
	if (e->fast)
		qsort(e->cols, e->ncols, sizeof(RowColumn), column_cmp);
	MemoryContextSwitchTo(old);
	/* complete and usable now; valid for later changes unless invalidated while building */
	e->valid = e->invals == invals;
}

CaptureEncoder *
capture_row_encoder(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	CaptureEncoder *e;
	bool		found;

	if (encoders == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(CaptureEncoder);
		ctl.hcxt = CacheMemoryContext;
		encoders = hash_create("txfn_capture row encoders", 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	e = hash_search(encoders, &relid, HASH_ENTER, &found);
	if (!found)
	{
		e->cxt = NULL;
		e->valid = false;
		e->invals = 0;
	}
	/* the descriptor's width is checked too: the encoder must never index past it */
	if (!e->valid || e->natts != RelationGetDescr(rel)->natts)
		encoder_build(e, rel);
	return e->fast ? e : NULL;
}

/* datum_to_jsonb's checkStringLen */
static int
string_len(size_t len)
{
	if (len > JENTRY_OFFLENMASK)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("string too long to represent as jsonb string"),
				 errdetail("Due to an implementation restriction, jsonb strings cannot exceed %d bytes.",
						   JENTRY_OFFLENMASK)));
	return (int) len;
}

/*
 * The numeric of an integer, as numeric_in (through make_result) makes it from the integer's
 * text: base-10000 digits without trailing zero digits, weight = digits before the point − 1,
 * dscale 0, in the short format (an int64 has at most 5 digits, weight ≤ 4), zero as no digits
 * with weight 0 and a positive sign. The layout is numeric's on-disk format (numeric.c; it
 * cannot change without breaking pg_upgrade): a 4-byte varlena header, the 16-bit short header
 * (NUMERIC_SHORT 0x8000, sign 0x2000, dscale << 7, weight in the low 6 bits), the digits.
 * Writes into `buf` (INT_NUMERIC_MAX bytes, int-aligned).
 */
#define INT_NUMERIC_MAX (VARHDRSZ + sizeof(uint16) + 5 * sizeof(int16))

static Numeric
int_numeric(int64 value, char *buf)
{
	uint64		u = value < 0 ? -(uint64) value : (uint64) value;
	int16		digits[5];
	int			n = 0;
	int			weight;
	uint16		header;
	int			last;

	while (u != 0)
	{
		digits[4 - n] = (int16) (u % 10000);
		u /= 10000;
		n++;
	}
	weight = n - 1;
	last = 5;
	while (n > 0 && digits[last - 1] == 0)
	{
		last--;
		n--;
	}
	if (n == 0)
		header = 0x8000;
	else
		header = 0x8000 | (value < 0 ? 0x2000 : 0) | (weight & 0x003F);
	SET_VARSIZE(buf, VARHDRSZ + sizeof(uint16) + n * sizeof(int16));
	memcpy(buf + VARHDRSZ, &header, sizeof(uint16));
	if (n > 0)
		memcpy(buf + VARHDRSZ + sizeof(uint16), &digits[last - n], n * sizeof(int16));
	return (Numeric) buf;
}

/*
 * A numeric datum as it is, when it is exactly what numeric_in would parse from its text
 * (numeric_out prints dscale digits after the point; numeric_in reads them back through
 * make_result): finite, no leading or trailing zero digit, zero as no digits with weight 0 and
 * a positive sign, the short format exactly when make_result would choose it (dscale ≤ 63,
 * −64 ≤ weight ≤ 63) — what every numeric PostgreSQL computes is. Anything else (NaN and the
 * infinities, a long-format value written by an old release) returns NULL: the caller takes
 * the text round trip as datum_to_jsonb does. The header layout is numeric.c's on-disk format.
 */
static Numeric
numeric_as_is(Datum d)
{
	Numeric		num = DatumGetNumeric(d);	/* a 4-byte varlena header, as jsonb stores it */
	uint16		header;
	bool		is_short;
	int			dscale;
	int			weight;
	bool		negative;
	int			ndigits;
	const char *digits;
	int16		first;
	int16		last;

	memcpy(&header, VARDATA(num), sizeof(uint16));
	if ((header & 0xC000) == 0xC000)
		return NULL;			/* NaN, ±Infinity */
	is_short = (header & 0xC000) == 0x8000;
	if (is_short)
	{
		negative = (header & 0x2000) != 0;
		dscale = (header & 0x1F80) >> 7;
		weight = (header & 0x0040) ? (int) (header | ~0x003F) : (header & 0x003F);
		digits = VARDATA(num) + sizeof(uint16);
	}
	else
	{
		int16		w;

		negative = (header & 0xC000) == 0x4000;
		dscale = header & 0x3FFF;
		memcpy(&w, VARDATA(num) + sizeof(uint16), sizeof(int16));
		weight = w;
		digits = VARDATA(num) + 2 * sizeof(uint16);
	}
	ndigits = (VARSIZE(num) - (digits - (const char *) num)) / sizeof(int16);
	if (ndigits == 0)
	{
		if (weight != 0 || negative)
			return NULL;
	}
	else
	{
		memcpy(&first, digits, sizeof(int16));
		memcpy(&last, digits + (ndigits - 1) * sizeof(int16), sizeof(int16));
		if (first == 0 || last == 0)
			return NULL;
	}
	if (is_short != (dscale <= 63 && weight <= 63 && weight >= -64))
		return NULL;
	return num;
}

/* One non-null value, as datum_to_jsonb turns it into a JsonbValue; `buf`: INT_NUMERIC_MAX bytes of scratch. */
static void
value_to_jsonb(const RowColumn *c, Datum d, JsonbValue *v, char *buf)
{
	switch (c->kind)
	{
		case KIND_BOOL:
			v->type = jbvBool;
			v->val.boolean = DatumGetBool(d);
			return;
		case KIND_INT2:
			v->type = jbvNumeric;
			v->val.numeric = int_numeric(DatumGetInt16(d), buf);
			return;
		case KIND_INT4:
			v->type = jbvNumeric;
			v->val.numeric = int_numeric(DatumGetInt32(d), buf);
			return;
		case KIND_INT8:
			v->type = jbvNumeric;
			v->val.numeric = int_numeric(DatumGetInt64(d), buf);
			return;
		case KIND_NUMERIC:
			if ((v->val.numeric = numeric_as_is(d)) != NULL)
			{
				v->type = jbvNumeric;
				return;
			}
			/* FALLTHROUGH */
		case KIND_NUMBER:
			{
				char	   *s = OutputFunctionCall((FmgrInfo *) &c->output, d);

				if (strchr(s, 'N') != NULL || strchr(s, 'n') != NULL)
				{
					v->type = jbvString;
					v->val.string.val = s;
					v->val.string.len = strlen(s);
				}
				else
				{
					v->type = jbvNumeric;
					v->val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(s),
																		 ObjectIdGetDatum(InvalidOid),
																		 Int32GetDatum(-1)));
				}
				return;
			}
		case KIND_TEXT:
			{
				text	   *t = DatumGetTextPP(d);
				const char *s = VARDATA_ANY(t);

				v->type = jbvString;
				v->val.string.val = (char *) s;
				v->val.string.len = string_len(strnlen(s, VARSIZE_ANY_EXHDR(t)));
				return;
			}
		case KIND_DATE:
			v->type = jbvString;
			v->val.string.val = JsonEncodeDateTime(NULL, d, DATEOID, NULL);
			v->val.string.len = strlen(v->val.string.val);
			return;
		case KIND_TIMESTAMP:
			v->type = jbvString;
			v->val.string.val = JsonEncodeDateTime(NULL, d, TIMESTAMPOID, NULL);
			v->val.string.len = strlen(v->val.string.val);
			return;
		case KIND_TIMESTAMPTZ:
			v->type = jbvString;
			v->val.string.val = JsonEncodeDateTime(NULL, d, TIMESTAMPTZOID, NULL);
			v->val.string.len = strlen(v->val.string.val);
			return;
		case KIND_OTHER:
			v->type = jbvString;
			v->val.string.val = OutputFunctionCall((FmgrInfo *) &c->output, d);
			v->val.string.len = string_len(strlen(v->val.string.val));
			return;
	}
}

void
capture_row_encode(CaptureEncoder *e, Relation rel, HeapTuple tuple, CaptureRow *row)
{
	TupleDesc	desc = RelationGetDescr(rel);
	Datum	   *values = palloc(sizeof(Datum) * Max(desc->natts, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(desc->natts, 1));
	char	   *scratch = palloc(INTALIGN(INT_NUMERIC_MAX) * Max(e->ncols, 1));

	/* missing attributes (added later with a default) come from the descriptor, as for to_jsonb */
	heap_deform_tuple(tuple, desc, values, nulls);
	row->npairs = e->ncols;
	row->pairs = palloc(sizeof(JsonbPair) * Max(e->ncols, 1));
	for (int i = 0; i < e->ncols; i++)
	{
		const RowColumn *c = &e->cols[i];
		JsonbPair  *p = &row->pairs[i];

		p->key.type = jbvString;
		p->key.val.string.val = c->name;
		p->key.val.string.len = c->namelen;
		p->order = i;
		if (nulls[c->attno])
			p->value.type = jbvNull;
		else
			value_to_jsonb(c, values[c->attno], &p->value, scratch + INTALIGN(INT_NUMERIC_MAX) * i);
	}
	row->jsonb = capture_jsonb_object(row->pairs, e->ncols);
	pfree(values);
	pfree(nulls);
}

static int
keyname_cmp(const void *a, const void *b)
{
	const char *x = *(char *const *) a;
	const char *y = *(char *const *) b;

	return key_order(x, strlen(x), y, strlen(y));
}

/* The key columns of `trigger` (arguments 1…) as positions among the encoder's columns. */
static void
encoder_keys(CaptureEncoder *e, Trigger *trigger)
{
	int			n = trigger->tgnargs - 1;
	MemoryContext old;

	if (e->nkeyargs == n)
	{
		int			i;

		for (i = 0; i < n; i++)
			if (strcmp(e->keyargs[i], trigger->tgargs[i + 1]) != 0)
				break;
		if (i == n)
			return;
	}
	old = MemoryContextSwitchTo(e->cxt);
	e->nkeyargs = -1;
	e->keyargs = palloc(sizeof(char *) * Max(n, 1));
	e->keynames = palloc(sizeof(char *) * Max(n, 1));
	e->keycols = palloc(sizeof(int) * Max(n, 1));
	for (int i = 0; i < n; i++)
		e->keyargs[i] = e->keynames[i] = pstrdup(trigger->tgargs[i + 1]);
	qsort(e->keynames, n, sizeof(char *), keyname_cmp);
	e->keys_fast = true;
	for (int i = 0; i < n; i++)
	{
		int			len = strlen(e->keynames[i]);

		if (i > 0 && strcmp(e->keynames[i - 1], e->keynames[i]) == 0)
			e->keys_fast = false;
		e->keycols[i] = -1;
		for (int j = 0; j < e->ncols; j++)
			if (e->cols[j].namelen == len && memcmp(e->cols[j].name, e->keynames[i], len) == 0)
				e->keycols[i] = j;
	}
	MemoryContextSwitchTo(old);
	e->nkeyargs = n;
}

/*
 * jsonb_build_object(col, row -> col, …) for the trigger's key columns (a column the row does
 * not have is JSON null), or NULL when the trigger's arguments name a column twice (the caller
 * then builds it as before).
 */
Jsonb *
capture_row_key(CaptureEncoder *e, Trigger *trigger, const CaptureRow *row)
{
	JsonbPair  *pairs;

	encoder_keys(e, trigger);
	if (!e->keys_fast)
		return NULL;
	pairs = palloc(sizeof(JsonbPair) * Max(e->nkeyargs, 1));
	for (int i = 0; i < e->nkeyargs; i++)
	{
		pairs[i].key.type = jbvString;
		pairs[i].key.val.string.val = e->keynames[i];
		pairs[i].key.val.string.len = strlen(e->keynames[i]);
		pairs[i].order = i;
		if (e->keycols[i] >= 0)
			pairs[i].value = row->pairs[e->keycols[i]].value;
		else
			pairs[i].value.type = jbvNull;
	}
	return capture_jsonb_object(pairs, e->nkeyargs);
}

/* Do two scalars have the same bytes (then the keys are equal)? */
static bool
scalar_same(const JsonbValue *a, const JsonbValue *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type)
	{
		case jbvNull:
			return true;
		case jbvBool:
			return a->val.boolean == b->val.boolean;
		case jbvString:
			return a->val.string.len == b->val.string.len &&
				memcmp(a->val.string.val, b->val.string.val, a->val.string.len) == 0;
		case jbvNumeric:
			return VARSIZE_ANY(a->val.numeric) == VARSIZE_ANY(b->val.numeric) &&
				memcmp(a->val.numeric, b->val.numeric, VARSIZE_ANY(a->val.numeric)) == 0;
		default:
			return false;
	}
}

/*
 * True when every key column holds the same bytes in both rows — the keys are then equal and
 * no old key is built; false leaves it to building the old key and comparing (as jsonb =).
 * Only after capture_row_key (which sets the key positions).
 */
bool
capture_row_key_same(CaptureEncoder *e, const CaptureRow *a, const CaptureRow *b)
{
	for (int i = 0; i < e->nkeyargs; i++)
	{
		int			j = e->keycols[i];

		if (j >= 0 && !scalar_same(&a->pairs[j].value, &b->pairs[j].value))
			return false;
	}
	return true;
}
