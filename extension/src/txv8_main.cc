/* txv8_main.cc: module load and the SQL-callable entry points (call, inline and validator handlers, txv8_reset, txv8_info, txv8_version). */
#include "txv8_exec.h"
#include "txv8_plv8.h"

extern "C" {
#include "nodes/parsenodes.h"
#include "utils/json.h"

PG_MODULE_MAGIC;

void		_PG_init(void);
PGDLLEXPORT Datum txv8_call_handler(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum txv8_inline_handler(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum txv8_call_validator(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum txv8_reset(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum txv8_info(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum txv8_version(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(txv8_call_handler);
PG_FUNCTION_INFO_V1(txv8_inline_handler);
PG_FUNCTION_INFO_V1(txv8_call_validator);
PG_FUNCTION_INFO_V1(txv8_reset);
PG_FUNCTION_INFO_V1(txv8_info);
PG_FUNCTION_INFO_V1(txv8_version);
}

/*
 * Nothing here starts threads: with shared_preload_libraries this runs in the
 * postmaster, and V8 starts lazily in each backend (txv8_engine.cc).
 */
void
_PG_init(void)
{
	txv8_engine_define_gucs();
}

/*
 * The call handler: dispatch (SPI is connected on first use, non-atomic for a CALL
 * that allows transaction control). The result is built in the caller's memory context.
 */
Datum
txv8_call_handler(PG_FUNCTION_ARGS)
{
	bool		nonatomic = fcinfo->context && IsA(fcinfo->context, CallContext) &&
		!castNode(CallContext, fcinfo->context)->atomic;
	MemoryContext retcxt = CurrentMemoryContext;
	Datum		result;

	CHECK_FOR_INTERRUPTS();
	if (CALLED_AS_TRIGGER(fcinfo))
		result = txv8_exec_trigger(fcinfo, retcxt);
	else if (CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						errmsg("txv8 functions cannot be event triggers")));
	else
		result = txv8_exec_function(fcinfo, retcxt, nonatomic);
	return result;
}

/* DO blocks: always atomic (plv8.commit() is refused), run as the current user. */
Datum
txv8_inline_handler(PG_FUNCTION_ARGS)
{
	InlineCodeBlock *codeblock = (InlineCodeBlock *) DatumGetPointer(PG_GETARG_DATUM(0));

	CHECK_FOR_INTERRUPTS();
	txv8_exec_inline(codeblock->source_text);
	PG_RETURN_VOID();
}

Datum
txv8_call_validator(PG_FUNCTION_ARGS)
{
	Oid			funcoid = PG_GETARG_OID(0);

	if (!CheckFunctionValidatorAccess(fcinfo->flinfo->fn_oid, funcoid))
		PG_RETURN_VOID();
	txv8_procedure_validate(funcoid);
	PG_RETURN_VOID();
}

/* txv8_reset(): forget the calling user's context; the next call starts with fresh globals. */
Datum
txv8_reset(PG_FUNCTION_ARGS)
{
	txv8_context_reset(GetUserId());
	PG_RETURN_VOID();
}

/* txv8_info(): one object per live context with the engine's heap figures; NULL when none. */
Datum
txv8_info(PG_FUNCTION_ARGS)
{
	StringInfoData buf;

	initStringInfo(&buf);
	txv8_context_info(&buf);
	if (strcmp(buf.data, "[]") == 0)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(buf.data));
}

/* txv8_version(): the loaded library's version, the same string as plv8.txv8_version (not the SQL script's version). */
Datum
txv8_version(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(TXV8_VERSION));
}
