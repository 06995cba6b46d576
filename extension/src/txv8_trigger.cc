/* txv8_trigger.cc: trigger functions: NEW, OLD and TG_* in, the returned row out. */
#include "txv8_exec.h"

#include "txv8_elog.h"

extern "C" {
#include "utils/rel.h"
}

static v8::Local<v8::Value>
txv8_str(const char *s)
{
	return txv8_string_from_server(s, (int) strlen(s));
}

/* The relation's row conversions, cached in the call site and kept in step with ALTER TABLE. PostgreSQL-level. */
static txv8_typeinfo *
txv8_trigger_rowtype(txv8_callsite *cs, Relation rel)
{
	if (cs->trigrow == nullptr || cs->trigrelid != RelationGetRelid(rel))
	{
		cs->trigrow = (txv8_typeinfo *) MemoryContextAllocZero(cs->mcxt, sizeof(txv8_typeinfo));
		txv8_typeinfo_init(cs->trigrow, rel->rd_rel->reltype, -1, cs->mcxt);
		cs->trigrelid = RelationGetRelid(rel);
	}
	txv8_typeinfo_prepare(cs->trigrow);
	return cs->trigrow;
}

Datum
txv8_exec_trigger(FunctionCallInfo fcinfo, MemoryContext retcxt)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	txv8_context *ctx = txv8_context_current();
	/* the call site is the trigger's FmgrInfo: the same for every row of the statement */
	txv8_callsite *cs = txv8_callsite_get(fcinfo);
	txv8_proc  *proc = cs->proc;
	Relation	rel = td->tg_relation;
	txv8_typeinfo *row = txv8_trigger_rowtype(cs, rel);
	char	   *schema = get_namespace_name(RelationGetNamespace(rel));
	TriggerEvent ev = td->tg_event;
	bool		rowlevel = TRIGGER_FIRED_FOR_ROW(ev);
	txv8_frame	frame;
	Datum		result = PointerGetDatum(NULL);

	memset(&frame, 0, sizeof(frame));
	frame.fcinfo = fcinfo;
	frame.proc = proc;
	frame.read_only = proc->volatility != PROVOLATILE_VOLATILE;

	txv8_execute(ctx, &frame, [&] {
		txv8_pin	pin(proc);
		v8::Isolate *iso = txv8_isolate;
		v8::Local<v8::Context> context = iso->GetCurrentContext();
		v8::Local<v8::Function> fn = txv8_procedure_function(proc, ctx);
		v8::Local<v8::Value> argv[10];
		v8::Local<v8::Value> undef = v8::Undefined(iso);

		argv[0] = argv[1] = undef;
		if (rowlevel)
		{
			if (TRIGGER_FIRED_BY_INSERT(ev))
				argv[0] = txv8_heaptuple_to_object(row, td->tg_trigtuple);
			else if (TRIGGER_FIRED_BY_UPDATE(ev))
			{
				argv[0] = txv8_heaptuple_to_object(row, td->tg_newtuple);
				argv[1] = txv8_heaptuple_to_object(row, td->tg_trigtuple);
			}
			else if (TRIGGER_FIRED_BY_DELETE(ev))
				argv[1] = txv8_heaptuple_to_object(row, td->tg_trigtuple);
		}
		argv[2] = txv8_str(td->tg_trigger->tgname);
		argv[3] = txv8_str(TRIGGER_FIRED_BEFORE(ev) ? "BEFORE" :
						   TRIGGER_FIRED_AFTER(ev) ? "AFTER" : "INSTEAD OF");
		argv[4] = txv8_str(rowlevel ? "ROW" : "STATEMENT");
		argv[5] = txv8_str(TRIGGER_FIRED_BY_INSERT(ev) ? "INSERT" :
						   TRIGGER_FIRED_BY_UPDATE(ev) ? "UPDATE" :
						   TRIGGER_FIRED_BY_DELETE(ev) ? "DELETE" : "TRUNCATE");
		argv[6] = v8::Integer::NewFromUnsigned(iso, RelationGetRelid(rel));
		argv[7] = txv8_str(RelationGetRelationName(rel));
		argv[8] = txv8_str(schema ? schema : "");

		int			nargs = td->tg_trigger->tgnargs;
		v8::Local<v8::Array> tgargv = v8::Array::New(iso, nargs);

		for (int i = 0; i < nargs; i++)
			if (tgargv->Set(context, i, txv8_str(td->tg_trigger->tgargs[i])).IsNothing())
				throw txv8_js_thrown();
		argv[9] = tgargv;

		v8::Local<v8::Value> r;

		if (!fn->Call(context, context->Global(), 10, argv).ToLocal(&r))
			throw txv8_js_thrown();
		if (frame.scope.failed != nullptr || !rowlevel || r->IsNull())
			return;				/* NULL: skip the operation (BEFORE ROW) */
		if (r->IsUndefined())
		{
			/* the row as it came: edits to NEW without `return NEW` are ignored, as in plv8 */
			result = PointerGetDatum(TRIGGER_FIRED_BY_UPDATE(ev) ? td->tg_newtuple : td->tg_trigtuple);
			return;
		}
		MemoryContext old = MemoryContextSwitchTo(retcxt);

		try
		{
			result = PointerGetDatum(txv8_object_to_tuple(row, r));
		}
		catch (...)
		{
			MemoryContextSwitchTo(old);
			throw;
		}
		MemoryContextSwitchTo(old);
	});
	return result;
}
