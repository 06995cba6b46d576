/* txv8_exec.cc: calling txv8 functions (plain, set-returning, procedures with OUT parameters), DO blocks and start_proc. */
#include "txv8_exec.h"

#include <unordered_set>
#include <vector>

#include "txv8_elog.h"
#include "txv8_spi.h"

extern "C" {
#include "utils/acl.h"
#include "utils/inval.h"
#include "utils/regproc.h"
}

txv8_frame *txv8_current_frame = nullptr;
txv8_scope *txv8_scope_top = nullptr;

void
txv8_frame_enter(txv8_frame *f)
{
	f->prev = txv8_current_frame;
	txv8_current_frame = f;
	f->scope.prev = txv8_scope_top;
	txv8_scope_top = &f->scope;
}

void
txv8_frame_leave(txv8_frame *f)
{
	txv8_current_frame = f->prev;
	txv8_scope_top = f->scope.prev;
	txv8_scope_forget(&f->scope);	/* nothing left normally: txv8_failed_outcome took it */
}

txv8_scope *
txv8_frame_scope(txv8_frame *f)
{
	return &f->scope;
}

/*
 * SPI is connected lazily, by the first plv8.* call that needs it, so a function that
 * runs no SQL pays nothing for it. Disconnected once the invocation succeeded; after an
 * error, (sub)transaction abort cleans the SPI stack up.
 */
void
txv8_spi_connect(void)
{
	txv8_frame *f = txv8_current_frame;

	txv8_refuse_if_failed();	/* every SQL-running plv8.* call comes here first */
	if (f == nullptr || f->spi_connected)
		return;
	MemoryContext cxt = CurrentMemoryContext;
	bool		nonatomic = f->nonatomic;

	txv8_pg([&] {
		if (SPI_connect_ext(nonatomic ? SPI_OPT_NONATOMIC : 0) != SPI_OK_CONNECT)
			elog(ERROR, "could not connect to SPI manager");
	});
	MemoryContextSwitchTo(cxt);
	f->spi_connected = true;
}

void
txv8_frame_finish(txv8_frame *f)
{
	if (!f->spi_connected)
		return;
	MemoryContext cxt = CurrentMemoryContext;

	f->spi_connected = false;
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	MemoryContextSwitchTo(cxt);
}

static std::unordered_set<txv8_callsite *> *txv8_callsites;

/* ---------- call sites ---------- */

static void
txv8_callsite_free(void *arg)
{
	txv8_callsite *cs = (txv8_callsite *) arg;

	txv8_callsites->erase(cs);
	cs->receiver.Reset();
	delete cs;
}

void
txv8_exec_forget_all(void)
{
	if (txv8_callsites)
		for (txv8_callsite *cs : *txv8_callsites)
			cs->receiver.Reset();
}

/* Resolve argument and result conversions of this call site. PostgreSQL-level. */
static void
txv8_callsite_resolve(txv8_callsite *cs, txv8_proc *proc, FunctionCallInfo fcinfo)
{
	MemoryContextReset(cs->mcxt);
	cs->proc = proc;
	cs->generation = proc->generation;
	cs->trigrow = nullptr;
	cs->trigrelid = InvalidOid;
	cs->result = nullptr;
	cs->result_unknown_record = false;
	if (proc->is_trigger)
		return;

	if (!proc->polymorphic)
		cs->args = proc->args;
	else
	{
		cs->args = (txv8_typeinfo *) MemoryContextAllocZero(cs->mcxt, sizeof(txv8_typeinfo) * Max(proc->njsargs, 1));
		for (int i = 0; i < proc->njsargs; i++)
		{
			Oid			t = proc->jsarg_types[i];

			if (IsPolymorphicType(t))
				t = get_fn_expr_argtype(fcinfo->flinfo, proc->jsarg_pos[i]);
			if (!OidIsValid(t))
				ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
								errmsg("could not determine actual argument type for polymorphic function \"%s\"",
									   proc->name)));
			txv8_typeinfo_init(&cs->args[i], t, -1, cs->mcxt);
		}
	}

	if (proc->rettype == VOIDOID)
		return;
	if (!proc->polymorphic && !proc->result_record)
	{
		cs->result = proc->result;
		return;
	}
	Oid			rettype;
	TupleDesc	td;
	TypeFuncClass c = get_call_result_type(fcinfo, &rettype, &td);

	cs->result = (txv8_typeinfo *) MemoryContextAllocZero(cs->mcxt, sizeof(txv8_typeinfo));
	switch (c)
	{
		case TYPEFUNC_SCALAR:
			txv8_typeinfo_init(cs->result, rettype, -1, cs->mcxt);
			break;
		case TYPEFUNC_COMPOSITE:
		case TYPEFUNC_COMPOSITE_DOMAIN:
			if (rettype != RECORDOID)
				txv8_typeinfo_init(cs->result, rettype, -1, cs->mcxt);
			else
				txv8_typeinfo_init_tupdesc(cs->result, td, cs->mcxt);
			break;
		case TYPEFUNC_RECORD:
			cs->result = nullptr;
			cs->result_unknown_record = true;
			break;
		default:
			cs->result = nullptr;
			break;
	}
}

/*
 * pg_proc invalidations seen by this backend (any function, or a cache reset). A call site
 * whose function was found valid at the current count needs no pg_proc lookup: its row can
 * only have changed through an invalidation, which reaches the syscache and this counter
 * in the same step (LocalExecuteInvalidationMessage). Starts at 1, call sites at 0.
 */
static uint64 txv8_proc_invals = 1;

static void
txv8_proc_invalidated(Datum arg, int cacheid, uint32 hashvalue)
{
	txv8_proc_invals++;
}

txv8_callsite *
txv8_callsite_get(FunctionCallInfo fcinfo)
{
	FmgrInfo   *flinfo = fcinfo->flinfo;
	txv8_callsite *cs = (txv8_callsite *) flinfo->fn_extra;
	static bool registered = false;

	/* the common call: same function, unchanged since checked (saves a syscache search per call) */
	if (cs != nullptr && cs->proc_checked == txv8_proc_invals && cs->generation == cs->proc->generation)
		return cs;
	if (!registered)
	{
		CacheRegisterSyscacheCallback(PROCOID, txv8_proc_invalidated, (Datum) 0);
		registered = true;
	}

	uint64		checked = txv8_proc_invals;	/* before the lookup: an invalidation during it counts */
	txv8_proc  *proc = txv8_procedure_get(flinfo->fn_oid);

	if (cs != nullptr && cs->proc == proc && cs->generation == proc->generation)
	{
		cs->proc_checked = checked;
		return cs;
	}
	if (cs == nullptr)
	{
		MemoryContext mcxt = AllocSetContextCreate(flinfo->fn_mcxt, "txv8 call site", ALLOCSET_SMALL_SIZES);

		cs = new txv8_callsite();
		cs->mcxt = mcxt;
		cs->cb.func = txv8_callsite_free;
		cs->cb.arg = cs;
		if (txv8_callsites == nullptr)
			txv8_callsites = new std::unordered_set<txv8_callsite *>();
		txv8_callsites->insert(cs);
		MemoryContextRegisterResetCallback(flinfo->fn_mcxt, &cs->cb);
		flinfo->fn_extra = cs;
	}
	cs->proc_checked = 0;		/* until resolved */
	txv8_callsite_resolve(cs, proc, fcinfo);
	cs->proc_checked = checked;
	return cs;
}

/* `this` of a call: one object per call site and context (plv8: per FmgrInfo). */
static v8::Local<v8::Object>
txv8_callsite_receiver(txv8_callsite *cs, txv8_context *ctx)
{
	if (cs->recv_serial != ctx->serial || cs->receiver.IsEmpty())
	{
		cs->receiver.Reset(txv8_isolate, v8::Object::New(txv8_isolate));
		cs->recv_serial = ctx->serial;
	}
	return cs->receiver.Get(txv8_isolate);
}

/* ---------- set-returning functions ---------- */

static void
txv8_srf_setup(txv8_frame *f, txv8_callsite *cs)
{
	ReturnSetInfo *rsi = (ReturnSetInfo *) f->fcinfo->resultinfo;

	if (rsi == NULL || !IsA(rsi, ReturnSetInfo))
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						errmsg("set-valued function called in context that cannot accept a set")));
	if (!(rsi->allowedModes & SFRM_Materialize))
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						errmsg("materialize mode required, but it is not allowed in this context")));
	if (cs->result == nullptr)
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						errmsg("function returning record called in context that cannot accept type record")));

	txv8_typeinfo *ri = cs->result;

	txv8_typeinfo_prepare(ri);
	f->rowinfo = ri;
	f->row_composite = ri->composite;

	MemoryContext old = MemoryContextSwitchTo(rsi->econtext->ecxt_per_query_memory);

	if (f->row_composite)
		f->tupdesc = CreateTupleDescCopy(ri->tupdesc);
	else
	{
		f->tupdesc = CreateTemplateTupleDesc(1);
		TupleDescInitEntry(f->tupdesc, (AttrNumber) 1, "txv8", ri->typid, -1, 0);
	}
	f->tupstore = tuplestore_begin_heap(rsi->allowedModes & SFRM_Materialize_Random, false, work_mem);
	MemoryContextSwitchTo(old);
	rsi->returnMode = SFRM_Materialize;
	rsi->setResult = f->tupstore;
	rsi->setDesc = f->tupdesc;
	f->rowcxt = AllocSetContextCreate(CurrentMemoryContext, "txv8 set-returning row", ALLOCSET_SMALL_SIZES);
}

static void
txv8_srf_put(txv8_frame *f, v8::Local<v8::Value> v)
{
	struct row_scope
	{
		MemoryContext old, cxt;
		row_scope(MemoryContext c):old(MemoryContextSwitchTo(c)), cxt(c) {}
		~row_scope()
		{
			MemoryContextSwitchTo(old);
			MemoryContextReset(cxt);
		}
	}			scope(f->rowcxt);
	int			natts = f->tupdesc->natts;
	Datum	   *values = (Datum *) txv8_palloc(sizeof(Datum) * natts);
	bool	   *nulls = (bool *) txv8_palloc(sizeof(bool) * natts);

	if (f->row_composite)
		txv8_object_to_values(f->rowinfo, v, values, nulls);
	else
		values[0] = txv8_value_to_datum(f->rowinfo, v, &nulls[0]);
	txv8_pg([&] { tuplestore_putvalues(f->tupstore, f->tupdesc, values, nulls); });
}

void
txv8_exec_return_next(v8::Local<v8::Value> v)
{
	txv8_frame *f = txv8_current_frame;

	if (f == nullptr || f->tupstore == nullptr)
		txv8_throw_error("return_next called in context that cannot accept a set");
	txv8_refuse_if_failed();	/* the tuplestore may spill to a file (resource owner) */
	txv8_srf_put(f, v);
}

/* The returned value adds rows: undefined none, an Array one per element, anything else one. */
static void
txv8_srf_return(txv8_frame *f, v8::Local<v8::Value> r)
{
	if (r->IsUndefined())
		return;
	if (!r->IsArray())
	{
		txv8_srf_put(f, r);
		return;
	}
	v8::Local<v8::Array> a = r.As<v8::Array>();
	v8::Local<v8::Context> ctx = txv8_isolate->GetCurrentContext();

	for (uint32 i = 0; i < a->Length(); i++)
	{
		v8::Local<v8::Value> e;

		if (!a->Get(ctx, i).ToLocal(&e))
			throw txv8_js_thrown();
		txv8_srf_put(f, e);
	}
}

/* ---------- results ---------- */

/*
 * The result of a procedure with OUT/INOUT parameters is an object keyed by their names;
 * with exactly one, the bare value is accepted too; undefined returns the INOUT inputs
 * (and NULL for OUT), as a PL/pgSQL procedure that assigns nothing would.
 */
static Datum
txv8_procedure_result(txv8_frame *f, txv8_callsite *cs, v8::Local<v8::Value> r, bool *isnull)
{
	txv8_typeinfo *ti = cs->result;
	TupleDesc	td = ti->tupdesc;
	txv8_proc  *proc = f->proc;
	int			natts = td->natts;
	Datum	   *values = (Datum *) txv8_palloc(sizeof(Datum) * Max(natts, 1));
	bool	   *nulls = (bool *) txv8_palloc(sizeof(bool) * Max(natts, 1));

	if (r->IsUndefined() && natts == proc->nout)
	{
		for (int i = 0; i < natts; i++)
		{
			NullableDatum *a = &f->fcinfo->args[proc->out_pos[i]];

			values[i] = a->value;
			nulls[i] = a->isnull;
		}
	}
	else if (natts == 1 && !(r->IsObject() && !r->IsArray() &&
							 r.As<v8::Object>()->HasOwnProperty(txv8_isolate->GetCurrentContext(),
																txv8_string_internal(NameStr(TupleDescAttr(td, 0)->attname))).FromMaybe(false)))
		values[0] = txv8_value_to_datum(&ti->atts[0], r, &nulls[0]);
	else
		return txv8_value_to_datum(ti, r, isnull);

	Datum volatile d = 0;

	txv8_pg([&] { d = HeapTupleGetDatum(heap_form_tuple(td, values, nulls)); });
	*isnull = false;
	return d;
}

Datum
txv8_exec_function(FunctionCallInfo fcinfo, MemoryContext retcxt, bool nonatomic)
{
	txv8_context *ctx = txv8_context_current();
	txv8_callsite *cs = txv8_callsite_get(fcinfo);
	txv8_proc  *proc = cs->proc;
	txv8_frame	frame;
	Datum		result = (Datum) 0;
	bool		isnull = true;

	if (proc->is_trigger)
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						errmsg("trigger functions can only be called as triggers")));

	memset(&frame, 0, sizeof(frame));
	frame.fcinfo = fcinfo;
	frame.proc = proc;
	frame.nonatomic = nonatomic;
	frame.read_only = proc->volatility != PROVOLATILE_VOLATILE;
	if (proc->prokind == PROKIND_WINDOW && fcinfo->context && IsA(fcinfo->context, WindowObjectData))
		frame.winobj = PG_WINDOW_OBJECT();
	if (proc->retset)
		txv8_srf_setup(&frame, cs);
	else if (cs->result_unknown_record)
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						errmsg("function returning record called in context that cannot accept type record")));

	txv8_execute(ctx, &frame, [&] {
		txv8_pin	pin(proc);
		v8::Local<v8::Context> context = txv8_isolate->GetCurrentContext();
		v8::Local<v8::Function> fn = txv8_procedure_function(proc, ctx);
		int			n = proc->njsargs;
		v8::Local<v8::Value> small[8];
		std::vector<v8::Local<v8::Value>> large(n > 8 ? n : 0);
		v8::Local<v8::Value> *argv = n > 8 ? large.data() : small;

		for (int i = 0; i < n; i++)
		{
			NullableDatum *a = &fcinfo->args[proc->jsarg_pos[i]];

			if (frame.winobj == nullptr)
				argv[i] = txv8_datum_to_value(&cs->args[i], a->value, a->isnull);
			else
			{
				/* a window function's arguments are not in fcinfo: evaluate them for this row */
				Datum volatile d = 0;
				bool volatile isnull = true;
				int			argno = proc->jsarg_pos[i];

				txv8_pg([&] {
					bool		nul;

					d = WinGetFuncArgCurrent(frame.winobj, argno, &nul);
					isnull = nul;
				});
				argv[i] = txv8_datum_to_value(&cs->args[i], d, isnull);
			}
		}

		v8::Local<v8::Value> r;

		if (!fn->Call(context, txv8_callsite_receiver(cs, ctx), n, argv).ToLocal(&r))
			throw txv8_js_thrown();
		if (frame.scope.failed != nullptr)
			return;				/* the call fails with its original error: convert nothing */
		if (proc->retset)
			txv8_srf_return(&frame, r);
		else if (cs->result != nullptr)
		{
			struct cxt_scope
			{
				MemoryContext old;
				cxt_scope(MemoryContext c):old(MemoryContextSwitchTo(c)) {}
				~cxt_scope()
				{
					MemoryContextSwitchTo(old);
				}
			}			scope(retcxt);

			if (proc->prokind == PROKIND_PROCEDURE && cs->result->fixed_tupdesc)
				result = txv8_procedure_result(&frame, cs, r, &isnull);
			else
				result = txv8_value_to_datum(cs->result, r, &isnull);
		}
	});
	if (proc->retset)
	{
		fcinfo->isnull = true;
		return (Datum) 0;
	}
	fcinfo->isnull = isnull && proc->rettype != VOIDOID;
	return result;
}

/* ---------- DO blocks and start_proc ---------- */

void
txv8_exec_inline(const char *source)
{
	txv8_context *ctx = txv8_context_current();
	txv8_frame	frame;
	char	   *wrapped = psprintf("(function () {\n%s\n})", source);

	memset(&frame, 0, sizeof(frame));
	txv8_execute(ctx, &frame, [&] {
		v8::Local<v8::Context> context = txv8_isolate->GetCurrentContext();
		v8::Local<v8::Function> fn = txv8_compile(nullptr, wrapped);
		v8::Local<v8::Value> r;

		if (!fn->Call(context, context->Global(), 0, nullptr).ToLocal(&r))
			throw txv8_js_thrown();
	});
}

/*
 * Run txv8.start_proc in a context just created, with `this` = the global object.
 * Lookup failures and missing privileges are WARNINGs; errors of the procedure itself
 * are errors. PostgreSQL-level.
 */
void
txv8_exec_start_proc(txv8_context *ctx)
{
	const char *name = txv8_start_proc;
	Oid volatile fnoid = InvalidOid;
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		Datum		d = CStringGetDatum(name);

		fnoid = DatumGetObjectId(strchr(name, '(') ? DirectFunctionCall1(regprocedurein, d)
								 : DirectFunctionCall1(regprocin, d));
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		ErrorData  *e = CopyErrorData();

		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		ereport(WARNING, (errmsg("failed to find js function %s", e->message)));
		FreeErrorData(e);
		fnoid = InvalidOid;
	}
	PG_END_TRY();
	if (!OidIsValid(fnoid))
		return;
	if (pg_proc_aclcheck(fnoid, GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
	{
		ereport(WARNING, (errmsg("no permission to execute js function %s", name)));
		return;
	}
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fnoid));

	if (!HeapTupleIsValid(tup))
		return;
	bool		ours = txv8_procedure_is_txv8(tup);

	ReleaseSysCache(tup);
	if (!ours)
		return;

	txv8_proc  *proc = txv8_procedure_get(fnoid);
	txv8_frame	frame;

	memset(&frame, 0, sizeof(frame));
	frame.proc = proc;
	txv8_execute(ctx, &frame, [&] {
		txv8_pin	pin(proc);
		v8::Local<v8::Context> context = txv8_isolate->GetCurrentContext();
		v8::Local<v8::Function> fn = txv8_procedure_function(proc, ctx);
		v8::Local<v8::Value> r;

		if (!fn->Call(context, context->Global(), 0, nullptr).ToLocal(&r))
			throw txv8_js_thrown();
	});
}
