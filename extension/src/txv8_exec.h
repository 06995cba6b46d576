/* txv8_exec.h: running txv8 functions, procedures, set-returning functions, triggers, DO blocks and start_proc. */
#pragma once

#include "txv8_procedure.h"

extern "C" {
#include "utils/tuplestore.h"
#include "windowapi.h"
}

/* Per FmgrInfo (fn_extra): resolved conversions and the `this` receiver of one call site. */
struct txv8_callsite
{
	txv8_proc  *proc;
	uint64		generation;		/* proc->generation these were resolved for */
	uint64		proc_checked;	/* txv8_proc_invals when proc was last found valid */
	MemoryContext mcxt;			/* child of fn_mcxt; reset on re-resolution */
	txv8_typeinfo *args;		/* one per JS argument */
	txv8_typeinfo *result;		/* NULL for void/trigger or an undeterminable record */
	bool		result_unknown_record;	/* RETURNS record without a column definition list */
	txv8_typeinfo *trigrow;		/* triggers: the relation's row type */
	Oid			trigrelid;
	uint64		recv_serial;	/* context the receiver belongs to */
	v8::Global<v8::Object> receiver;
	MemoryContextCallback cb;
};

/* One JS invocation in progress (stacked: JS -> SQL -> JS). */
struct txv8_frame
{
	txv8_scope	scope;			/* failed by a statement without a subtransaction (txv8_spi.h) */
	txv8_frame *prev;
	FunctionCallInfo fcinfo;
	txv8_proc  *proc;			/* NULL for DO blocks */
	bool		nonatomic;		/* plv8.commit()/rollback() allowed */
	bool		spi_connected;	/* SPI is connected on first use (txv8_spi_connect) */
	bool		read_only;		/* SPI read_only: non-volatile functions */
	/* set-returning functions */
	Tuplestorestate *tupstore;
	TupleDesc	tupdesc;
	txv8_typeinfo *rowinfo;
	bool		row_composite;
	MemoryContext rowcxt;
	/* window functions */
	WindowObject winobj;
};

extern txv8_frame *txv8_current_frame;

/* Connect SPI for the running invocation if not yet done (inside V8 scopes; guarded). */
void		txv8_spi_connect(void);

/* The call site of fcinfo's FmgrInfo, (re)resolved when the function changed. PostgreSQL-level. */
txv8_callsite *txv8_callsite_get(FunctionCallInfo fcinfo);

Datum		txv8_exec_function(FunctionCallInfo fcinfo, MemoryContext retcxt, bool nonatomic);
Datum		txv8_exec_trigger(FunctionCallInfo fcinfo, MemoryContext retcxt);
void		txv8_exec_inline(const char *source);
void		txv8_exec_start_proc(txv8_context *ctx);
void		txv8_exec_forget_all(void);

/* plv8.return_next(): one more row of the current set-returning function. */
void		txv8_exec_return_next(v8::Local<v8::Value> v);
