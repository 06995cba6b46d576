/* txv8_spi.h: plv8.execute, prepare and plans, subtransaction, commit/rollback, and the subtransaction protocol. */
#pragma once

#include <vector>

#include "txv8_elog.h"
#include "txv8_typeio.h"

/*
 * The subtransaction protocol. Every plv8.* call that runs SQL (or anything whose
 * failure JS may catch) does its PostgreSQL work like this:
 *
 *     txv8_subxact([&] {
 *         txv8_scratch scratch;                 // optional: per-call memory
 *         ... convert parameters; each PostgreSQL call inside txv8_pg(...) ...
 *         ... SPI call; convert the result to JS ...
 *     });
 *
 * It begins an internal subtransaction and runs the body with error_context_stack
 * cleared (so a caught error's context holds only what happened inside). If the body
 * returns, the subtransaction is released. If it throws txv8_pg_error, the
 * subtransaction is rolled back and the error becomes a catchable JS Error carrying
 * sqlerrcode, detail, hint, context, ... -- unless JS must not catch it (a cancel, a
 * termination: see txv8_error_is_uncatchable), in which case execution is terminated
 * and the error is raised again when the outermost JS call returns. If the body throws
 * txv8_js_thrown (a JS exception from a getter, a termination), the subtransaction is
 * rolled back and the JS exception keeps propagating. Memory context and resource
 * owner are restored on every path.
 */
struct txv8_subxact_state
{
	MemoryContext cxt;
	ResourceOwner owner;
	ErrorContextCallback *ectx;
};

void		txv8_subxact_begin(txv8_subxact_state *s, bool clear_context);
void		txv8_subxact_commit(txv8_subxact_state *s);
void		txv8_subxact_abort(txv8_subxact_state *s);

template <typename F>
inline void
txv8_subxact(F &&body)
{
	txv8_subxact_state s;

	txv8_subxact_begin(&s, true);
	try
	{
		body();
	}
	catch (txv8_pg_error &e)
	{
		txv8_subxact_abort(&s);
		txv8_throw_pg_error(e.edata);
	}
	catch (...)
	{
		txv8_subxact_abort(&s);
		throw;
	}
	txv8_subxact_commit(&s);
}

/* SPI result -> JS: an array of row objects, or the number of rows processed. */
v8::Local<v8::Value> txv8_spi_result(int rc, txv8_rowconv **cache, MemoryContext cache_cxt);

/* Prepare sql with parameter types deduced by the parser (unresolved ones as text). PostgreSQL-level. */
SPIPlanPtr	txv8_spi_prepare_deduced(const char *sql, int *nargs, Oid **types, MemoryContext cxt);

/* JS arguments -> SPI parameter arrays (nulls as ' '/'n'), allocated in the current context. */
void		txv8_spi_params(std::vector<v8::Local<v8::Value>> &args, txv8_typeinfo **infos,
							Datum **values, char **nulls);

/* The argument forms of execute / plan.execute / plan.cursor: (sql, a, b) or (sql, [a, b]). */
void		txv8_spi_collect_args(const v8::FunctionCallbackInfo<v8::Value> &info, int first,
								  std::vector<v8::Local<v8::Value>> &out);

/* SPI's read_only flag for the running function (true for STABLE and IMMUTABLE ones). */
bool		txv8_spi_read_only(void);

/* plv8.* functions */
void		txv8_spi_execute(const v8::FunctionCallbackInfo<v8::Value> &info);
void		txv8_spi_prepare(const v8::FunctionCallbackInfo<v8::Value> &info);
void		txv8_spi_subtransaction(const v8::FunctionCallbackInfo<v8::Value> &info);
void		txv8_spi_commit(const v8::FunctionCallbackInfo<v8::Value> &info);
void		txv8_spi_rollback(const v8::FunctionCallbackInfo<v8::Value> &info);

/* PreparedPlan methods */
void		txv8_plan_execute(const v8::FunctionCallbackInfo<v8::Value> &info);
void		txv8_plan_cursor(const v8::FunctionCallbackInfo<v8::Value> &info);
void		txv8_plan_free(const v8::FunctionCallbackInfo<v8::Value> &info);

/* Cursor (txv8_cursor.cc) */
v8::Local<v8::Object> txv8_cursor_new(Portal portal);
void		txv8_cursor_fetch(const v8::FunctionCallbackInfo<v8::Value> &info);
void		txv8_cursor_move(const v8::FunctionCallbackInfo<v8::Value> &info);
void		txv8_cursor_close(const v8::FunctionCallbackInfo<v8::Value> &info);

/* Plans whose JS object was collected are freed when no JS runs; all of them when the isolate goes. */
void		txv8_spi_release_unreachable(void);
void		txv8_spi_forget_all(void);
