/* txv8_procedure.cc: building txv8_proc from pg_proc, compiling per context, the validator. */
#include "txv8_procedure.h"

#include <string>
#include <unordered_map>

#include "txv8_elog.h"
#include "txv8_exec.h"

extern "C" {
#include "utils/fmgroids.h"
}

static std::unordered_map<Oid, txv8_proc *> *txv8_procs;
static uint64 txv8_generation = 0;

/* The one rule for the compiled-function cache: the pg_proc row is the very same version. */
bool
txv8_procedure_is_valid(txv8_proc *proc, HeapTuple proctup)
{
	return proc->fn_xmin == HeapTupleHeaderGetRawXmin(proctup->t_data) &&
		ItemPointerEquals(&proc->fn_tid, &proctup->t_self);
}

/* Is this function's language handled by txv8_call_handler? */
bool
txv8_procedure_is_txv8(HeapTuple proctup)
{
	Oid			lang = ((Form_pg_proc) GETSTRUCT(proctup))->prolang;
	HeapTuple	langtup = SearchSysCache1(LANGOID, ObjectIdGetDatum(lang));

	if (!HeapTupleIsValid(langtup))
		return false;
	Oid			handler = ((Form_pg_language) GETSTRUCT(langtup))->lanplcallfoid;

	ReleaseSysCache(langtup);
	if (!OidIsValid(handler))
		return false;
	HeapTuple	htup = SearchSysCache1(PROCOID, ObjectIdGetDatum(handler));

	if (!HeapTupleIsValid(htup))
		return false;
	bool		isnull;
	Datum		src = SysCacheGetAttr(PROCOID, htup, Anum_pg_proc_prosrc, &isnull);
	bool		ours = !isnull && strcmp(TextDatumGetCString(src), "txv8_call_handler") == 0;

	ReleaseSysCache(htup);
	return ours;
}

static void
txv8_procedure_free(txv8_proc *proc)
{
	proc->compiled.clear();
	MemoryContextDelete(proc->mcxt);
	delete proc;
}

txv8_pin::txv8_pin(txv8_proc *p):proc(p)
{
	p->use_count++;
}

txv8_pin::~txv8_pin()
{
	if (--proc->use_count == 0 && proc->orphan)
		txv8_procedure_free(proc);
}

static void
txv8_procedure_fill(txv8_proc *proc, Oid fn_oid, HeapTuple tup)
{
	Form_pg_proc pf = (Form_pg_proc) GETSTRUCT(tup);
	MemoryContext old = MemoryContextSwitchTo(proc->mcxt);

	proc->oid = fn_oid;
	proc->fn_xmin = HeapTupleHeaderGetRawXmin(tup->t_data);
	proc->fn_tid = tup->t_self;
	proc->generation = ++txv8_generation;
	proc->name = pstrdup(NameStr(pf->proname));
	proc->prokind = pf->prokind;
	proc->volatility = pf->provolatile;
	proc->retset = pf->proretset;
	proc->rettype = pf->prorettype;
	proc->is_trigger = pf->prorettype == TRIGGEROID;
	proc->polymorphic = IsPolymorphicType(pf->prorettype);

	Oid		   *types;
	char	  **names;
	char	   *modes;
	int			nall = get_func_arg_info(tup, &types, &names, &modes);
	bool		procedure = pf->prokind == PROKIND_PROCEDURE;
	StringInfoData argnames;

	initStringInfo(&argnames);
	proc->jsarg_pos = (int *) palloc0(sizeof(int) * Max(nall, 1));
	proc->jsarg_types = (Oid *) palloc0(sizeof(Oid) * Max(nall, 1));
	proc->out_pos = (int *) palloc0(sizeof(int) * Max(nall, 1));
	int			fcpos = 0;

	for (int i = 0; i < nall; i++)
	{
		char		mode = modes ? modes[i] : PROARGMODE_IN;
		bool		out = mode == PROARGMODE_OUT || mode == PROARGMODE_TABLE;

		if (out || mode == PROARGMODE_INOUT)
			proc->out_pos[proc->nout++] = fcpos;
		if (!out)
		{
			int			j = proc->njsargs++;

			proc->jsarg_pos[j] = fcpos;
			proc->jsarg_types[j] = types[i];
			if (IsPolymorphicType(types[i]))
				proc->polymorphic = true;
			if (j > 0)
				appendStringInfoString(&argnames, ", ");
			/* unnamed parameters are $1, $2, ... among the JS-visible ones (plv8 broke on a mix) */
			if (names && names[i] && names[i][0])
				appendStringInfoString(&argnames, names[i]);
			else
				appendStringInfo(&argnames, "$%d", j + 1);
		}
		if (!out || procedure)
			fcpos++;
	}

	if (proc->is_trigger)
	{
		if (proc->njsargs > 0)
			ereport(ERROR, (errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
							errmsg("trigger function cannot have arguments")));
		resetStringInfo(&argnames);
		appendStringInfoString(&argnames, "NEW, OLD, TG_NAME, TG_WHEN, TG_LEVEL, TG_OP, TG_RELID, "
							   "TG_TABLE_NAME, TG_TABLE_SCHEMA, TG_ARGV");
	}
	else if (!proc->polymorphic)
	{
		proc->args = (txv8_typeinfo *) palloc0(sizeof(txv8_typeinfo) * Max(proc->njsargs, 1));
		for (int i = 0; i < proc->njsargs; i++)
			txv8_typeinfo_init(&proc->args[i], proc->jsarg_types[i], -1, proc->mcxt);
	}
	proc->result_record = pf->prorettype == RECORDOID;
	if (!proc->polymorphic && !proc->result_record && pf->prorettype != VOIDOID && !proc->is_trigger)
	{
		proc->result = (txv8_typeinfo *) palloc0(sizeof(txv8_typeinfo));
		txv8_typeinfo_init(proc->result, pf->prorettype, -1, proc->mcxt);
	}

	bool		isnull;
	Datum		src = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_prosrc, &isnull);

	if (isnull)
		elog(ERROR, "null prosrc for function %u", fn_oid);
	proc->source = psprintf("(function (%s) {\n%s\n})", argnames.data, TextDatumGetCString(src));
	pfree(argnames.data);
	MemoryContextSwitchTo(old);
}

txv8_proc *
txv8_procedure_get(Oid fn_oid)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for function %u", fn_oid);
	if (txv8_procs == nullptr)
		txv8_procs = new std::unordered_map<Oid, txv8_proc *>();

	auto		it = txv8_procs->find(fn_oid);

	if (it != txv8_procs->end())
	{
		txv8_proc  *proc = it->second;

		if (txv8_procedure_is_valid(proc, tup))
		{
			ReleaseSysCache(tup);
			return proc;
		}
		txv8_procs->erase(it);
		if (proc->use_count > 0)
			proc->orphan = true;
		else
			txv8_procedure_free(proc);
	}

	txv8_proc  *volatile proc = new txv8_proc();

	proc->mcxt = AllocSetContextCreate(TopMemoryContext, "txv8 function", ALLOCSET_SMALL_SIZES);
	PG_TRY();
	{
		txv8_procedure_fill(proc, fn_oid, tup);
	}
	PG_CATCH();
	{
		MemoryContextDelete(proc->mcxt);
		delete proc;
		PG_RE_THROW();
	}
	PG_END_TRY();
	MemoryContextSetIdentifier(proc->mcxt, proc->name);
	ReleaseSysCache(tup);
	(*txv8_procs)[fn_oid] = proc;
	return proc;
}

v8::Local<v8::Function>
txv8_compile(const char *name, const char *source)
{
	v8::Isolate *iso = txv8_isolate;
	v8::Local<v8::Context> ctx = iso->GetCurrentContext();
	v8::Local<v8::String> src = txv8_string_from_server(source, (int) strlen(source));
	v8::Local<v8::Value> rname = name ? txv8_string_from_server(name, (int) strlen(name)).As<v8::Value>()
		: v8::Undefined(iso).As<v8::Value>();
	v8::ScriptOrigin origin(iso, rname, -1);	/* line numbers relative to the body */
	v8::Local<v8::Script> script;
	v8::Local<v8::Value> fn;

	if (!v8::Script::Compile(ctx, src, &origin).ToLocal(&script) || !script->Run(ctx).ToLocal(&fn))
		throw txv8_js_thrown();
	if (!fn->IsFunction())
		txv8_throw_error("the body of %s does not compile to a function", name ? name : "the DO block");
	return fn.As<v8::Function>();
}

v8::Local<v8::Function>
txv8_procedure_function(txv8_proc *proc, txv8_context *ctx)
{
	for (txv8_compiled &c : proc->compiled)
		if (c.ctx_serial == ctx->serial)
			return c.fn.Get(txv8_isolate);

	v8::Local<v8::Function> fn = txv8_compile(proc->name, proc->source);

	proc->compiled.emplace_back();
	proc->compiled.back().ctx_serial = ctx->serial;
	proc->compiled.back().fn.Reset(txv8_isolate, fn);
	return fn;
}

void
txv8_procedure_forget_context(uint64 serial)
{
	if (txv8_procs == nullptr)
		return;
	for (auto &it : *txv8_procs)
	{
		std::vector<txv8_compiled> &v = it.second->compiled;

		for (size_t i = 0; i < v.size();)
			if (v[i].ctx_serial == serial)
				v.erase(v.begin() + i);
			else
				i++;
	}
}

void
txv8_procedure_forget_all(void)
{
	if (txv8_procs == nullptr)
		return;
	for (auto &it : *txv8_procs)
		it.second->compiled.clear();
}

/* ---------- validator ---------- */

void
txv8_procedure_validate(Oid fn_oid)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for function %u", fn_oid);
	Form_pg_proc pf = (Form_pg_proc) GETSTRUCT(tup);
	Oid			rettype = pf->prorettype;

	if (get_typtype(rettype) == TYPTYPE_PSEUDO && rettype != TRIGGEROID && rettype != RECORDOID &&
		rettype != VOIDOID && rettype != INTERNALOID && !IsPolymorphicType(rettype))
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						errmsg("PL/v8 functions cannot return type %s", format_type_be(rettype))));

	Oid		   *types;
	char	  **names;
	char	   *modes;
	int			nall = get_func_arg_info(tup, &types, &names, &modes);

	for (int i = 0; i < nall; i++)
		if (get_typtype(types[i]) == TYPTYPE_PSEUDO && types[i] != INTERNALOID && !IsPolymorphicType(types[i]))
			ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
							errmsg("PL/v8 functions cannot accept type %s", format_type_be(types[i]))));
	ReleaseSysCache(tup);

	if (!check_function_bodies)
		return;
	txv8_proc  *proc = txv8_procedure_get(fn_oid);
	txv8_context *ctx = txv8_context_current();
	txv8_frame	frame;

	memset(&frame, 0, sizeof(frame));
	txv8_execute(ctx, &frame, [&] {
		txv8_pin	pin(proc);

		txv8_procedure_function(proc, ctx);
	});
}
