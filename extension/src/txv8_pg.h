/* txv8_pg.h: PostgreSQL headers for C++, and the guard that keeps PostgreSQL errors from longjmp-ing across V8 frames. */
#pragma once

#include "txv8_v8.h"

#include <cstdarg>
#include <new>

extern "C" {
#include "postgres.h"

#include "access/htup_details.h"
#include "access/tupdesc.h"
#include "access/xact.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
}

/*
 * The error discipline of txv8.
 *
 * A PostgreSQL error is a longjmp; V8 frames and C++ objects with destructors must
 * never be crossed by one. So while any V8 scope is live, every PostgreSQL call that
 * may raise goes through txv8_pg(), which catches the error and rethrows it as the C++
 * exception txv8_pg_error. C++ unwinding then runs destructors normally up to one of
 * two boundaries:
 *   - a JS callback (txv8_callback / txv8_subxact in txv8_spi.h), which turns it into a
 *     JS exception (catchable when a subtransaction was rolled back, else uncatchable);
 *   - the top of a JS execution (txv8_execute in txv8_engine.h), which re-raises it as a
 *     PostgreSQL ERROR once all V8 scopes are gone.
 * txv8_js_thrown means "a JS exception (or termination) is already pending in the
 * isolate": it only unwinds C++ frames back to V8 or to txv8_execute.
 * The lambda passed to txv8_pg() must itself hold no object with a destructor.
 */
struct txv8_pg_error
{
	ErrorData  *edata;			/* copied into txv8_error_context() */
};

/* Memory for in-flight errors (txv8_elog.cc); reset whenever no JS runs. */
MemoryContext txv8_error_context(void);

struct txv8_js_thrown
{
};

template <typename F>
inline void
txv8_pg(F &&f)
{
	MemoryContext volatile cxt = CurrentMemoryContext;
	ErrorData  *volatile edata = nullptr;

	PG_TRY();
	{
		f();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(txv8_error_context());
		edata = CopyErrorData();
		FlushErrorState();
		MemoryContextSwitchTo(cxt);
	}
	PG_END_TRY();
	if (edata != nullptr)
		throw txv8_pg_error{edata};
}

/* Raise a PostgreSQL error as txv8_pg_error (for use inside V8 scopes). */
[[noreturn]] void txv8_error(int sqlstate, const char *fmt, ...) pg_attribute_printf(2, 3);

/* palloc that reports failure as txv8_pg_error instead of longjmp-ing. */
void	   *txv8_palloc(Size size);

/* Database-encoding helpers: JS strings are UTF-8/UTF-16, the server may differ. */
extern bool txv8_server_is_utf8;

/* The backend's isolate (txv8_engine.cc); valid whenever a V8 scope is live. */
extern v8::Isolate *txv8_isolate;

/*
 * A scratch memory context for one plv8.* call: allocations made while converting
 * arguments and results go here and are freed when the scope ends. Nested scopes
 * (a callback reached again through JS getters or SQL) get their own context.
 */
struct txv8_scratch
{
	MemoryContext old;
	MemoryContext cxt;
	txv8_scratch();
	~txv8_scratch();
};

/* Explicitly ignore a V8 Maybe result (a failed property definition leaves an exception pending anyway). */
template <typename T>
inline void
txv8_discard(v8::Maybe<T> m)
{
	(void) m.IsNothing();
}
