/* txv8_procedure.h: looking up, compiling and caching txv8 functions (valid while pg_proc's xmin and tid are unchanged). */
#pragma once

#include <vector>

#include "txv8_engine.h"
#include "txv8_typeio.h"

struct txv8_compiled
{
	uint64		ctx_serial;		/* the txv8_context it was compiled in */
	v8::Global<v8::Function> fn;
};

/* One txv8 function as pg_proc describes it; shared by every user's context. */
struct txv8_proc
{
	Oid			oid;
	TransactionId fn_xmin;
	ItemPointerData fn_tid;
	uint64		generation;		/* unique per build, so call sites notice a rebuild */
	int			use_count;		/* executions in progress */
	bool		orphan;			/* replaced while in use: freed when use_count drops to 0 */
	MemoryContext mcxt;

	char	   *name;
	char	   *source;			/* "(function (args) {\n<prosrc>\n})" */
	char		prokind;
	char		volatility;
	bool		retset;
	bool		is_trigger;
	Oid			rettype;
	bool		polymorphic;	/* argument or result types are resolved per call site */

	int			njsargs;		/* IN, INOUT and VARIADIC parameters, in order */
	int		   *jsarg_pos;		/* their positions in fcinfo->args */
	Oid		   *jsarg_types;
	txv8_typeinfo *args;		/* conversions (NULL when polymorphic) */
	txv8_typeinfo *result;		/* scalar or named composite result (NULL when void/record/polymorphic) */
	bool		result_record;	/* RECORD result: tuple descriptor from the call */
	int			nout;			/* OUT and INOUT parameters */
	int		   *out_pos;		/* procedures: fcinfo position of each OUT/INOUT parameter */

	std::vector<txv8_compiled> compiled;
};

/* The cached, valid txv8_proc of fn_oid (rebuilt when pg_proc changed). PostgreSQL-level. */
txv8_proc  *txv8_procedure_get(Oid fn_oid);
bool		txv8_procedure_is_valid(txv8_proc *proc, HeapTuple proctup);
bool		txv8_procedure_is_txv8(HeapTuple proctup);

/* The JS function of proc in ctx, compiled on first use. Inside V8 scopes; throws txv8_js_thrown on a SyntaxError. */
v8::Local<v8::Function> txv8_procedure_function(txv8_proc *proc, txv8_context *ctx);

/* Compile "(function (...) {...})" source in the current context; name NULL for DO blocks. */
v8::Local<v8::Function> txv8_compile(const char *name, const char *source);

/* Keep proc alive while it runs (it may be replaced by CREATE OR REPLACE meanwhile). */
struct txv8_pin
{
	txv8_proc  *proc;
	explicit	txv8_pin(txv8_proc *p);
	~txv8_pin();
};

void		txv8_procedure_validate(Oid fn_oid);	/* the validator's work. PostgreSQL-level */
void		txv8_procedure_forget_context(uint64 serial);
void		txv8_procedure_forget_all(void);
