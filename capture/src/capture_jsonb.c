/*
 * capture_jsonb.c: a flat jsonb object — keys already in jsonb's order and unique, values
 * scalars — serialized in one pass into one allocation, the same bytes PostgreSQL 15's
 * JsonbValueToJsonb (convertToJsonb → convertJsonbObject → convertJsonbScalar) writes for it:
 *
 *   varlena header | container header (count | JB_FOBJECT) | JEntry per key, then per value |
 *   the keys' bytes | the values' bytes (a numeric starts at a 4-byte boundary of the datum,
 *   zero padding counted in its length)
 *
 * where every JB_OFFSET_STRIDE'th JEntry (counting keys, then values) holds the end offset of
 * its data instead of its length. JsonbValueToJsonb gets there through a growing StringInfo,
 * a call per element and a copy per JEntry; a row is most of a captured change's encoding.
 * test/provenance-capture-c.test.ts compares the result with the PL/pgSQL trigger's byte for
 * byte, tables of more than JB_OFFSET_STRIDE columns included.
 */
#include "postgres.h"

#include "utils/numeric.h"

#include "capture.h"

/* bytes of one scalar's data when it starts at `pos` (padding before a numeric included) */
static Size
scalar_len(const JsonbValue *v, Size pos)
{
	switch (v->type)
	{
		case jbvString:
			return v->val.string.len;
		case jbvNumeric:
			return INTALIGN(pos) - pos + VARSIZE_ANY(v->val.numeric);
		case jbvNull:
		case jbvBool:
			return 0;
		default:
			elog(ERROR, "txfn_capture: unexpected jsonb value type %d in a row", (int) v->type);
			return 0;			/* keep compiler quiet */
	}
}

/* Writes one scalar's data at `pos`; returns its JEntry (type bits and length) */
static JEntry
scalar_write(char *buf, const JsonbValue *v, Size pos)
{
	switch (v->type)
	{
		case jbvString:
			memcpy(buf + pos, v->val.string.val, v->val.string.len);
			return (JEntry) v->val.string.len;
		case jbvNumeric:
			{
				Size		pad = INTALIGN(pos) - pos;
				Size		numlen = VARSIZE_ANY(v->val.numeric);

				memset(buf + pos, 0, pad);
				memcpy(buf + pos + pad, v->val.numeric, numlen);
				return JENTRY_ISNUMERIC | (JEntry) (pad + numlen);
			}
		case jbvNull:
			return JENTRY_ISNULL;
		case jbvBool:
			return v->val.boolean ? JENTRY_ISBOOL_TRUE : JENTRY_ISBOOL_FALSE;
		default:
			elog(ERROR, "txfn_capture: unexpected jsonb value type %d in a row", (int) v->type);
			return 0;			/* keep compiler quiet */
	}
}

static void
too_big(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("total size of jsonb object elements exceeds the maximum of %u bytes",
					JENTRY_OFFLENMASK)));
}

Jsonb *
capture_jsonb_object(const JsonbPair *pairs, int n)
{
	Size		header = VARHDRSZ + sizeof(uint32) + sizeof(JEntry) * 2 * (Size) n;
	Size		pos = header;
	char	   *buf;
	JEntry	   *entries;
	uint32		totallen = 0;	/* data written so far, as convertJsonbObject counts it */

	/* the exact size first (the error PostgreSQL raises for an object too big, before allocating) */
	for (int i = 0; i < n; i++)
		pos += pairs[i].key.val.string.len;
	for (int i = 0; i < n; i++)
	{
		pos += scalar_len(&pairs[i].value, pos);
		if (pos - VARHDRSZ > JENTRY_OFFLENMASK)
			too_big();
	}

	buf = palloc(pos);
	SET_VARSIZE(buf, pos);
	*(uint32 *) (buf + VARHDRSZ) = (uint32) n | JB_FOBJECT;
	entries = (JEntry *) (buf + VARHDRSZ + sizeof(uint32));
	pos = header;
	for (int i = 0; i < n; i++)
	{
		JEntry		meta = scalar_write(buf, &pairs[i].key, pos);
		uint32		len = JBE_OFFLENFLD(meta);

		pos += len;
		totallen += len;
		if ((i % JB_OFFSET_STRIDE) == 0)
			meta = (meta & JENTRY_TYPEMASK) | totallen | JENTRY_HAS_OFF;
		entries[i] = meta;
	}
	for (int i = 0; i < n; i++)
	{
		JEntry		meta = scalar_write(buf, &pairs[i].value, pos);
		uint32		len = JBE_OFFLENFLD(meta);

		pos += len;
		totallen += len;
		if (((i + n) % JB_OFFSET_STRIDE) == 0)
			meta = (meta & JENTRY_TYPEMASK) | totallen | JENTRY_HAS_OFF;
		entries[n + i] = meta;
	}
	return (Jsonb *) buf;
}
