/* txv8_elog.h: errors in both directions (JS exception -> PostgreSQL ERROR, PostgreSQL error -> JS Error) and uncatchable errors. */
#pragma once

#include "txv8_engine.h"

/* A JS exception captured while V8 scopes were live, raised by txv8_outcome_raise() after. */
struct txv8_js_error
{
	char	   *message;
	int			sqlerrcode;
	char	   *detail;
	char	   *hint;
	char	   *context;		/* the error's own context, then one line per JS frame */
	char	   *internalquery;
	int			internalpos;
	char	   *schema_name;
	char	   *table_name;
	char	   *column_name;
	char	   *datatype_name;
	char	   *constraint_name;
};

void		txv8_error_context_reset(void);

/* A JS Error carrying sqlerrcode, code, condition_name, detail, hint, context, ... (null when absent). */
v8::Local<v8::Value> txv8_error_from_edata(ErrorData *edata);

/* Errors JS must not catch: cancels, terminations, errors while execution is terminating. */
bool		txv8_error_is_uncatchable(ErrorData *edata);

/*
 * Hand a PostgreSQL error to JS after its subtransaction was rolled back: a catchable
 * Error, or (txv8_error_is_uncatchable) termination with the error kept for re-raising.
 * Always throws txv8_js_thrown.
 */
[[noreturn]] void txv8_throw_pg_error(ErrorData *edata);

/* Terminate JS and re-raise edata when the outermost affected call returns. */
void		txv8_set_uncatchable(ErrorData *edata);
[[noreturn]] void txv8_throw_uncatchable(ErrorData *edata);

/*
 * A copy of edata (ERROR level, in TopMemoryContext) with the JS line that made the failing
 * call appended to its CONTEXT: what a failed scope keeps until it is rolled back.
 */
ErrorData  *txv8_edata_copy_located(ErrorData *edata);

/*
 * The error every SPI-touching plv8.* call throws while the innermost scope is failed
 * (SQLSTATE 25P02, naming the original error; `cause` is the original JS Error). Catchable.
 */
[[noreturn]] void txv8_throw_failed(txv8_scope *scope);

/* Plain JS exceptions raised by txv8 itself (always catchable). */
[[noreturn]] void txv8_throw_error(const char *fmt, ...) pg_attribute_printf(1, 2);
[[noreturn]] void txv8_throw_value(v8::Local<v8::Value> v);

/* SQLSTATEs and their condition names (table generated from errcodes.txt). */
int			txv8_sqlstate_from_string(const char *s);	/* "22012" or "division_by_zero"; 0 if neither */
const char *txv8_condition_name(int sqlerrcode);

/*
 * Boundary of a JS callback (a plv8.* function): C++ exceptions never reach V8. A
 * PostgreSQL error that gets here was raised outside any subtransaction, so JS may not
 * catch it: execution is terminated and the error re-raised by txv8_execute.
 */
template <typename F>
inline void
txv8_callback(F &&body)
{
	MemoryContext cxt = CurrentMemoryContext;

	/* loops that only call plv8.* never reach a V8 stack check: act on a cancel here */
	if (unlikely(txv8_termination_requested() || txv8_cancel_pending()))
	{
		txv8_terminate_now();
		return;
	}
	try
	{
		body();
	}
	catch (txv8_js_thrown &)
	{
		MemoryContextSwitchTo(cxt);
	}
	catch (txv8_pg_error &e)
	{
		MemoryContextSwitchTo(cxt);
		txv8_set_uncatchable(e.edata);
	}
	catch (std::bad_alloc &)
	{
		MemoryContextSwitchTo(cxt);
		txv8_oom_hit = true;
		txv8_request_terminate();
	}
	if (unlikely(txv8_termination_requested()))
		txv8_terminate_now();
}
