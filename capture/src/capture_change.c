/*
 * capture_change.c: forming a change from the trigger's rows — op, table id, to_jsonb of the
 * old and new row, the key and the old key — with the rules and the byte-exact jsonb of the
 * PL/pgSQL txfn._provenance_capture() (runtime-sql/provenance.sql):
 *
 *   rows     to_jsonb(OLD) / to_jsonb(NEW): capture_row.c's encoding, cached per relation,
 *            where every column is of a kind it encodes (the same datum); else PostgreSQL's own
 *            to_jsonb, called through fmgr with a record argument, as PL/pgSQL's call resolves it;
 *   key      jsonb_build_object(col, row -> col, …) of the row after (I, U) or before (D); the
 *            whole row when there is no key column;
 *   old_key  U only: the same of the row before, unless it equals the key (jsonb equality).
 *
 * jsonb's binary form is canonical (keys sorted and unique, scalars copied as stored), so a
 * key built here from the row's values is the same datum jsonb_build_object and || build.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "capture.h"

/* to_jsonb(anyelement), with a call expression saying its argument is a record. */
static FmgrInfo to_jsonb_flinfo;
static bool to_jsonb_ready = false;

static void
to_jsonb_setup(void)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	Node	   *arg = (Node *) makeNullConst(RECORDOID, -1, InvalidOid);

	fmgr_info_cxt(F_TO_JSONB, &to_jsonb_flinfo, TopMemoryContext);
	to_jsonb_flinfo.fn_expr = (Node *) makeFuncExpr(F_TO_JSONB, JSONBOID, list_make1(arg),
													InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
	MemoryContextSwitchTo(old);
	to_jsonb_ready = true;
}

/* to_jsonb of one row of the trigger's relation. */
static Jsonb *
row_to_jsonb(HeapTuple tuple, TupleDesc tupdesc)
{
	Datum		row;

	if (!to_jsonb_ready)
		to_jsonb_setup();
	/* a composite datum of the relation's row type: what PL/pgSQL's OLD/NEW flatten to */
	row = heap_copy_tuple_as_datum(tuple, tupdesc);
	return DatumGetJsonbP(FunctionCall1(&to_jsonb_flinfo, row));
}

/*
 * {"col": row -> col, …} for the key columns (trigger arguments 1…): a column the row does not
 * have maps to JSON null, as jsonb_build_object(col, NULL) does.
 */
static Jsonb *
key_of_row(Jsonb *row, Trigger *trigger)
{
	JsonbParseState *state = NULL;
	JsonbValue *result;

	(void) pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int i = 1; i < trigger->tgnargs; i++)
	{
		const char *name = trigger->tgargs[i];
		JsonbValue	k;
		JsonbValue	buf;
		JsonbValue *v;

		k.type = jbvString;
		k.val.string.val = (char *) name;
		k.val.string.len = strlen(name);
		(void) pushJsonbValue(&state, WJB_KEY, &k);
		v = getKeyJsonValueFromContainer(&row->root, name, k.val.string.len, &buf);
		if (v == NULL)
		{
			buf.type = jbvNull;
			v = &buf;
		}
		/* a container value (jbvBinary) is unpacked token by token, as jsonb_build_object does */
		(void) pushJsonbValue(&state, WJB_VALUE, v);
	}
	result = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(result);
}

/* jsonb equality (the = operator); the same bytes are equal without comparing further */
static bool
jsonb_equal(Jsonb *a, Jsonb *b)
{
	if (VARSIZE(a) == VARSIZE(b) && memcmp(a, b, VARSIZE(a)) == 0)
		return true;
	return compareJsonbContainers(&a->root, &b->root) == 0;
}

/*
 * The common UPDATE: every key column holds the same scalar, byte for byte, in the old and the
 * new row — then the keys are equal and no old key is built. Anything else (containers,
 * another spelling of an equal number) is left to key_of_row + jsonb_equal.
 */
static bool
key_unchanged_fast(Jsonb *old_row, Jsonb *new_row, Trigger *trigger)
{
	for (int i = 1; i < trigger->tgnargs; i++)
	{
		const char *name = trigger->tgargs[i];
		int			len = strlen(name);
		JsonbValue	a;
		JsonbValue	b;

		if (getKeyJsonValueFromContainer(&old_row->root, name, len, &a) == NULL ||
			getKeyJsonValueFromContainer(&new_row->root, name, len, &b) == NULL ||
			a.type != b.type)
			return false;
		switch (a.type)
		{
			case jbvNull:
				break;
			case jbvBool:
				if (a.val.boolean != b.val.boolean)
					return false;
				break;
			case jbvString:
				if (a.val.string.len != b.val.string.len ||
					memcmp(a.val.string.val, b.val.string.val, a.val.string.len) != 0)
					return false;
				break;
			case jbvNumeric:
				if (VARSIZE_ANY(a.val.numeric) != VARSIZE_ANY(b.val.numeric) ||
					memcmp(a.val.numeric, b.val.numeric, VARSIZE_ANY(a.val.numeric)) != 0)
					return false;
				break;
			default:
				return false;
		}
	}
	return true;
}

void
capture_change_form(TriggerData *trigdata, CaptureChange *change)
{
	Trigger    *trigger = trigdata->tg_trigger;
	Relation	rel = trigdata->tg_relation;
	TupleDesc	tupdesc = RelationGetDescr(rel);
	TriggerEvent event = trigdata->tg_event;
	bool		whole_row = trigger->tgnargs <= 1;
	HeapTuple	old_tuple;
	HeapTuple	new_tuple;
	CaptureEncoder *encoder;
	CaptureRow	old_enc = {0};
	CaptureRow	new_enc = {0};

	if (trigger->tgnargs < 1)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" on \"%s\" has no arguments: txfn._provenance_capture_c() needs (table_id, key column, …)",
						trigger->tgname, RelationGetRelationName(trigdata->tg_relation)),
				 errhint("SELECT * FROM txfn.provenance_sync() re-creates the capture triggers.")));

	change->old_row = NULL;
	change->new_row = NULL;
	change->old_key = NULL;
	change->op = TRIGGER_FIRED_BY_UPDATE(event) ? 'U' : TRIGGER_FIRED_BY_INSERT(event) ? 'I' : 'D';
	old_tuple = change->op == 'I' ? NULL : trigdata->tg_trigtuple;
	new_tuple = change->op == 'U' ? trigdata->tg_newtuple : change->op == 'I' ? trigdata->tg_trigtuple : NULL;

	/* the rows: cached per-relation encoding where every column allows it, else to_jsonb */
	encoder = capture_row_encoder(rel);
	if (encoder != NULL)
	{
		if (old_tuple != NULL)
		{
			capture_row_encode(encoder, rel, old_tuple, &old_enc);
			change->old_row = old_enc.jsonb;
		}
		if (new_tuple != NULL)
		{
			capture_row_encode(encoder, rel, new_tuple, &new_enc);
			change->new_row = new_enc.jsonb;
		}
	}
	else
	{
		if (old_tuple != NULL)
			change->old_row = row_to_jsonb(old_tuple, tupdesc);
		if (new_tuple != NULL)
			change->new_row = row_to_jsonb(new_tuple, tupdesc);
	}

	if (whole_row)
	{
		change->key = change->new_row != NULL ? change->new_row : change->old_row;
		if (change->op == 'U' && !jsonb_equal(change->old_row, change->new_row))
			change->old_key = change->old_row;
	}
	else if (encoder != NULL &&
			 (change->key = capture_row_key(encoder, trigger, new_tuple != NULL ? &new_enc : &old_enc)) != NULL)
	{
		/* the keys from the rows' values: no lookups in the jsonb just built */
		if (change->op == 'U' && !capture_row_key_same(encoder, &old_enc, &new_enc))
		{
			Jsonb	   *old_key = capture_row_key(encoder, trigger, &old_enc);

			if (!jsonb_equal(old_key, change->key))
				change->old_key = old_key;
		}
	}
	else
	{
		change->key = key_of_row(change->new_row != NULL ? change->new_row : change->old_row, trigger);
		if (change->op == 'U' && !key_unchanged_fast(change->old_row, change->new_row, trigger))
		{
			Jsonb	   *old_key = key_of_row(change->old_row, trigger);

			if (!jsonb_equal(old_key, change->key))
				change->old_key = old_key;
		}
	}

	/* TG_ARGV[0]::integer */
	change->table_id = DatumGetInt32(DirectFunctionCall1(int4in, CStringGetDatum(trigger->tgargs[0])));
}
