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

/*
 * Statements without a subtransaction (plans prepared with { subtransaction: false }; a
 * txv8 extension of the plv8 API). They run directly under the current (sub)transaction,
 * like a PL/pgSQL statement outside an EXCEPTION block:
 *
 *     txv8_direct([&] { ... the same body as for txv8_subxact ... });
 *
 * If the body raises an SQL error, PostgreSQL's state is whatever the error left behind:
 * the executor abandoned mid-way, the SPI connection mid-call, an active snapshot pushed,
 * buffer pins, possibly LWLocks (an SSI conflict is raised with a buffer content lock
 * held), CurrentResourceOwner and CurrentMemoryContext of the failing code. Only a
 * rollback of the (sub)transaction the statement ran in may touch it. So:
 *   - the error is copied and flushed (txv8_pg), memory context, resource owner and
 *     error_context_stack are restored, and LWLockReleaseAll() is done at once (the first
 *     step of any abort: other backends must not wait on a buffer lock while JS runs);
 *   - the innermost scope (txv8_scope: a plv8.subtransaction() frame, else the call) is
 *     marked failed and JS gets a catchable Error carrying the original sqlerrcode, detail,
 *     hint, ... (a cancel or termination stays uncatchable, as everywhere);
 *   - while that scope is failed, every plv8.* call that would enter PostgreSQL throws
 *     25P02 at once, before touching it (txv8_refuse_if_failed: SPI connect, subtransaction
 *     begin, cursors, return_next, the window API; plan.free() is deferred);
 *   - a failed plv8.subtransaction() frame is rolled back when fn returns or throws, and
 *     throws the original Error (a normal return fails too);
 *   - a failed call raises the original error when it ends (txv8_failed_outcome), after all
 *     V8 scopes are gone, skipping everything that would touch PostgreSQL on the way out
 *     (result conversion, SPI_finish, freeing plans, unhandled-rejection warnings). The
 *     caller's rollback (an outer subtransaction, an EXCEPTION block, the transaction)
 *     then cleans up as it would after any error.
 * Between the error and the rollback only V8 runs (pure JS, GC, the watchdog), plus
 * elog() below ERROR and the quote_* helpers, which touch nothing that an error leaves
 * inconsistent (PostgreSQL itself reports errors in that state).
 */
struct txv8_direct_state
{
	MemoryContext cxt;
	ResourceOwner owner;
	ErrorContextCallback *ectx;
};

void		txv8_direct_begin(txv8_direct_state *s);
void		txv8_direct_end(txv8_direct_state *s);
[[noreturn]] void txv8_direct_fail(txv8_direct_state *s, ErrorData *edata);

template <typename F>
inline void
txv8_direct(F &&body)
{
	txv8_direct_state s;

	txv8_direct_begin(&s);
	try
	{
		body();
	}
	catch (txv8_pg_error &e)
	{
		txv8_direct_fail(&s, e.edata);
	}
	catch (...)
	{
		txv8_direct_end(&s);	/* a JS exception converting parameters or results: no SQL error */
		throw;
	}
	txv8_direct_end(&s);
}

/* A statement in its own subtransaction, or directly. */
template <typename F>
inline void
txv8_statement(bool direct, F &&body)
{
	if (direct)
		txv8_direct(body);
	else
		txv8_subxact(body);
}

/* Throws 25P02 (txv8_throw_failed) when the innermost scope is failed. */
static inline void
txv8_refuse_if_failed(void)
{
	if (unlikely(txv8_failed()))
		txv8_throw_failed(txv8_scope_top);
}

/* A statement's JS arguments: up to 8 held inline, so the common call allocates nothing. */
class txv8_values
{
  public:
	txv8_values() = default;
	txv8_values(const txv8_values &) = delete;
	txv8_values &operator=(const txv8_values &) = delete;
	size_t		size() const
	{
		return n_;
	}
	bool		empty() const
	{
		return n_ == 0;
	}
	v8::Local<v8::Value> &operator[](size_t i)
	{
		return data_[i];
	}
	void		resize(size_t n)
	{
		if (n > inline_size && data_ == inline_)
			heap_.assign(inline_, inline_ + n_);
		if (n > inline_size || data_ != inline_)
		{
			heap_.resize(n);
			data_ = heap_.data();
		}
		n_ = n;
	}
	void		push_back(v8::Local<v8::Value> v)
	{
		resize(n_ + 1);
		data_[n_ - 1] = v;
	}

  private:
	static const size_t inline_size = 8;
	v8::Local<v8::Value> inline_[inline_size];
	std::vector<v8::Local<v8::Value>> heap_;
	v8::Local<v8::Value> *data_ = inline_;
	size_t		n_ = 0;
};

/* SPI result -> JS: an array of row objects, or the number of rows processed. */
v8::Local<v8::Value> txv8_spi_result(int rc, txv8_rowconv **cache, MemoryContext cache_cxt);

/* Prepare sql with parameter types deduced by the parser (unresolved ones as text). PostgreSQL-level. */
SPIPlanPtr	txv8_spi_prepare_deduced(const char *sql, int *nargs, Oid **types, MemoryContext cxt);

/* A statement's SPI parameter arrays (nulls as ' '/'n'): up to 8 held inline, more in the current context. */
struct txv8_params
{
	static const int inline_size = 8;
	Datum	   *values;
	char	   *nulls;
	Datum		values_inline[inline_size];
	char		nulls_inline[inline_size];
};

/* JS arguments -> SPI parameters. */
void		txv8_spi_params(txv8_values &args, txv8_typeinfo **infos, txv8_params &out);

/* The argument forms of execute / plan.execute / plan.cursor: (sql, a, b) or (sql, [a, b]). */
void		txv8_spi_collect_args(const v8::FunctionCallbackInfo<v8::Value> &info, int first,
								  txv8_values &out);

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
v8::Local<v8::Object> txv8_cursor_new(Portal portal, bool direct);
void		txv8_cursor_fetch(const v8::FunctionCallbackInfo<v8::Value> &info);
void		txv8_cursor_move(const v8::FunctionCallbackInfo<v8::Value> &info);
void		txv8_cursor_close(const v8::FunctionCallbackInfo<v8::Value> &info);

/* Plans whose JS object was collected are freed when no JS runs; all of them when the isolate goes. */
void		txv8_spi_release_unreachable(void);
void		txv8_spi_forget_all(void);
