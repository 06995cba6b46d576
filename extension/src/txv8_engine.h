/* txv8_engine.h: the V8 platform and isolate, one JS context per user, and the single way into JS (txv8_execute). */
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "txv8_pg.h"

/* How one column list's query-result rows are built in one context (txv8_typeio_rows.cc). */
struct txv8_row_factory
{
	v8::Global<v8::Function> builder;	/* compiled JS building one row or many, on first use */
};

/* A JS context (globals, plv8 object) belonging to one effective user id. */
struct txv8_context
{
	Oid			user;
	uint64		serial;			/* unique for the backend's life; compiled functions are keyed by it */
	v8::Global<v8::Context> context;
	/* query-result row factories, one per column list */
	std::unordered_map<std::string, txv8_row_factory> row_factories;
};

extern int	txv8_depth;			/* nesting of JS executions (JS -> SQL -> JS ...) */
extern txv8_context *txv8_running_context;	/* the context the innermost execution runs in */
extern char *txv8_start_proc;
extern int	txv8_memory_limit;
extern char *txv8_v8_flags;

void		txv8_engine_define_gucs(void);

/*
 * The context of the current effective user (GetUserId()), created on first use (which
 * runs txv8.start_proc). PostgreSQL-level: call with no V8 scope live.
 */
txv8_context *txv8_context_current(void);
void		txv8_context_reset(Oid user);
void		txv8_context_info(StringInfo buf);	/* txv8_info(): one JSON object per context */

/* Ask V8 to stop running JS (thread-safe); the reason is recorded by the caller. */
void		txv8_request_terminate(void);

/* A cancel or die request PostgreSQL has not processed yet (reads its signal-set flags). */
static inline bool
txv8_cancel_pending(void)
{
	return InterruptPending && (QueryCancelPending || ProcDiePending);
}

bool		txv8_termination_requested(void);
void		txv8_terminate_now(void);	/* from a callback: terminate before returning to JS */
extern volatile bool txv8_oom_hit;

/*
 * What a statement run without a subtransaction fails when it raises an SQL error (see
 * "Statements without a subtransaction" in txv8_spi.h): the innermost plv8.subtransaction()
 * frame, or the whole call (txv8_frame) when there is none. Scopes are stacked across
 * nested calls (JS -> SQL -> JS); txv8_scope_top is the innermost.
 */
struct txv8_scope
{
	txv8_scope *prev;
	ErrorData  *failed;			/* the error that failed it (TopMemoryContext), or NULL */
	v8::Global<v8::Value> *error;	/* the JS Error handed to JS for it (while failed) */
};

extern txv8_scope *txv8_scope_top;

void		txv8_scope_forget(txv8_scope *s);	/* drop what a failed scope kept (txv8_spi.cc) */

/* Is the innermost scope failed? Then PostgreSQL's state waits for a rollback: touch nothing. */
static inline bool
txv8_failed(void)
{
	return txv8_scope_top != nullptr && txv8_scope_top->failed != nullptr;
}

/*
 * Set from the moment a failed call's scope is left until its error is raised: PostgreSQL's
 * state still waits for the rollback that raising the error leads to.
 */
extern bool txv8_raising_failed;

/* The invocation record of txv8_exec.h; txv8_execute pushes it for the duration of the body. */
struct txv8_frame;
void		txv8_frame_enter(txv8_frame *f);
void		txv8_frame_leave(txv8_frame *f);
void		txv8_frame_finish(txv8_frame *f);	/* after success: disconnect SPI if it was used */
txv8_scope *txv8_frame_scope(txv8_frame *f);

/* How a JS execution ended; raised as a PostgreSQL ERROR by txv8_outcome_raise(). */
struct txv8_js_error;
struct txv8_outcome
{
	ErrorData  *edata;			/* a PostgreSQL error caught by a guard */
	txv8_js_error *js;			/* a captured JS exception */
	ErrorData  *failed;			/* the original error of a failed call (TopMemoryContext) */
	bool		terminated;		/* execution was terminated (cancel, timeout, memory, ...) */
	bool		oom;			/* the heap limit was hit */
};

/* Depth bookkeeping around every JS execution: watchdog, stack limit, termination cleanup. */
class txv8_entry
{
  public:
	txv8_entry();
	~txv8_entry();
};

void		txv8_capture(v8::TryCatch &tc, txv8_outcome *out);	/* txv8_elog.cc; never throws */
/* The call's scope failed: decide what to raise (txv8_elog.cc; inside the scopes; never throws). */
void		txv8_failed_outcome(txv8_scope *scope, v8::TryCatch &tc, txv8_outcome *out);
void		txv8_outcome_raise(txv8_outcome *out);	/* txv8_elog.cc; returns only if nothing failed */
void		txv8_after_call(void);	/* microtasks, unhandled rejections (outermost call only) */

/*
 * Run body() with frame pushed, inside a HandleScope, ctx's context and a TryCatch
 * (the isolate itself stays entered for the backend's life). body signals failure by
 * throwing txv8_pg_error or txv8_js_thrown (see txv8_pg.h). Any failure is raised as a
 * PostgreSQL ERROR only after every V8 scope is gone, so no longjmp crosses V8.
 * Callers must hold no C++ object with a destructor across this call, and must not
 * use ctx afterwards (an out-of-memory isolate is disposed here).
 */
template <typename F>
void
txv8_execute(txv8_context *ctx, txv8_frame *frame, F &&body)
{
	txv8_outcome out = {};

	{
		txv8_entry	entry;
		v8::HandleScope hscope(txv8_isolate);
		v8::Local<v8::Context> context = v8::Local<v8::Context>::New(txv8_isolate, ctx->context);
		v8::Context::Scope cscope(context);
		v8::TryCatch tc(txv8_isolate);
		MemoryContext cxt = CurrentMemoryContext;
		struct running
		{
			txv8_context *saved;
			running(txv8_context *c):saved(txv8_running_context)
			{
				txv8_running_context = c;
			}
			~running()
			{
				txv8_running_context = saved;
			}
		}			run(ctx);
		struct pushed
		{
			txv8_frame *f;
			pushed(txv8_frame *frame):f(frame)
			{
				txv8_frame_enter(f);
			}
			~pushed()
			{
				txv8_frame_leave(f);
			}
		}			push(frame);

		try
		{
			body();
			if (txv8_depth == 1 && !txv8_failed())
				txv8_after_call();
		}
		catch (txv8_pg_error &e)
		{
			MemoryContextSwitchTo(cxt);
			out.edata = e.edata;
		}
		catch (txv8_js_thrown &)
		{
			MemoryContextSwitchTo(cxt);
			txv8_capture(tc, &out);
		}
		catch (std::bad_alloc &)
		{
			MemoryContextSwitchTo(cxt);
			out.oom = true;
			out.terminated = true;
		}
		txv8_scope *scope = txv8_frame_scope(frame);

		if (unlikely(scope->failed != nullptr))
			txv8_failed_outcome(scope, tc, &out);
	}
	if (out.edata == nullptr && out.js == nullptr && out.failed == nullptr && !out.terminated)
		txv8_frame_finish(frame);
	txv8_outcome_raise(&out);
}
