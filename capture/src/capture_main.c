/*
 * capture_main.c: the library's start-up and the row trigger txfn._provenance_capture_c() — the
 * C drop-in for the PL/pgSQL txfn._provenance_capture() (runtime-sql/provenance.sql), which
 * stays the reference behaviour. AFTER INSERT OR UPDATE OR DELETE FOR EACH ROW, arguments
 * (table_id, key column, …); no key column = the whole row is the key.
 */
#include "postgres.h"

#include "fmgr.h"

#include "capture.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

PG_FUNCTION_INFO_V1(txfn_capture_row);

void
_PG_init(void)
{
	capture_context_init();
	capture_row_init();
	capture_store_init();
}

/*
 * One captured change: form it, attribute it, store it; the trigger's result is ignored
 * (AFTER ROW), so NULL.
 */
Datum
txfn_capture_row(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	CaptureChange change;
	CaptureContext context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("txfn._provenance_capture_c() can only be called as a trigger")));
	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!(TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) || TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ||
		  TRIGGER_FIRED_BY_DELETE(trigdata->tg_event)))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("txfn._provenance_capture_c() must be an AFTER INSERT OR UPDATE OR DELETE FOR EACH ROW trigger"),
				 errdetail("Trigger \"%s\" on \"%s\".", trigdata->tg_trigger->tgname,
						   RelationGetRelationName(trigdata->tg_relation))));

	/* like the PL/pgSQL version: the number first, then the rows, then the INSERT */
	change.seq = capture_seq_next();
	capture_change_form(trigdata, &change);
	capture_context_get(&context);
	capture_store_insert(&change, &context);

	return PointerGetDatum(NULL);
}
