/* txv8_elog.cc: JS exception -> PostgreSQL ERROR (message, SQLSTATE, DETAIL, HINT, CONTEXT with the JS stack) and back. */
#include "txv8_elog.h"
#include "txv8_spi.h"
#include "txv8_typeio.h"

extern "C" {
#include "utils/timeout.h"
}

#include <string>
#include <unordered_map>
#include <vector>

static const struct
{
	const char *name;
	const char *sqlstate;
}			txv8_errcodes[] = {
#include "txv8_errcodes.h"
};

static MemoryContext txv8_errcxt = nullptr;
static ErrorData *txv8_pending = nullptr;	/* uncatchable error waiting to be re-raised */

MemoryContext
txv8_error_context(void)
{
	if (txv8_errcxt == nullptr)
		txv8_errcxt = AllocSetContextCreate(TopMemoryContext, "txv8 errors", ALLOCSET_SMALL_SIZES);
	return txv8_errcxt;
}

void
txv8_error_context_reset(void)
{
	if (txv8_errcxt != nullptr && txv8_pending == nullptr)
		MemoryContextReset(txv8_errcxt);
}

void
txv8_error(int sqlstate, const char *fmt, ...)
{
	char		buf[1024];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	txv8_pg([&] { ereport(ERROR, (errcode(sqlstate), errmsg_internal("%s", buf))); });
	pg_unreachable();
}

void *
txv8_palloc(Size size)
{
	void	   *p = size <= MaxAllocSize ? palloc_extended(size, MCXT_ALLOC_NO_OOM) : nullptr;

	if (p == nullptr)
		txv8_error(ERRCODE_OUT_OF_MEMORY, "out of memory (a request for %zu bytes failed)", (size_t) size);
	return p;
}

/* ---------- SQLSTATEs ---------- */

int
txv8_sqlstate_from_string(const char *s)
{
	if (s == nullptr)
		return 0;
	if (strlen(s) == 5 && strspn(s, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") == 5)
		return MAKE_SQLSTATE(s[0], s[1], s[2], s[3], s[4]);
	for (const auto &e : txv8_errcodes)
		if (strcmp(e.name, s) == 0)
			return MAKE_SQLSTATE(e.sqlstate[0], e.sqlstate[1], e.sqlstate[2], e.sqlstate[3], e.sqlstate[4]);
	return 0;
}

const char *
txv8_condition_name(int sqlerrcode)
{
	static std::unordered_map<int, const char *> *names;

	if (names == nullptr)
	{
		names = new std::unordered_map<int, const char *>();
		for (const auto &e : txv8_errcodes)
			names->emplace(MAKE_SQLSTATE(e.sqlstate[0], e.sqlstate[1], e.sqlstate[2], e.sqlstate[3], e.sqlstate[4]),
						   e.name);
	}
	auto		it = names->find(sqlerrcode);

	return it == names->end() ? nullptr : it->second;
}

static bool
txv8_sqlstate_is_valid(int code)
{
	for (int i = 0; i < 5; i++)
	{
		char		c = PGUNSIXBIT(code >> (6 * i));

		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z')))
			return false;
	}
	return (code >> 30) == 0;
}

static void txv8_frame_line(std::string *ctx, v8::Local<v8::Value> script, int line, v8::Local<v8::String> source_line);
static v8::Local<v8::String> txv8_script_line(v8::Local<v8::StackFrame> frame, int line);

/* ---------- PostgreSQL error -> JS ---------- */

static v8::Local<v8::Value>
txv8_string_or_null(const char *s)
{
	if (s == nullptr)
		return v8::Null(txv8_isolate);
	v8::Local<v8::String> r;

	if (txv8_server_is_utf8)
	{
		if (v8::String::NewFromUtf8(txv8_isolate, s).ToLocal(&r))
			return r;
		return v8::Null(txv8_isolate);
	}
	try
	{
		return txv8_string_from_server(s, (int) strlen(s));
	}
	catch (txv8_pg_error &)
	{
		return v8::String::NewFromUtf8(txv8_isolate, "(unconvertible text)").ToLocalChecked();
	}
}

v8::Local<v8::Value>
txv8_error_from_edata(ErrorData *edata)
{
	v8::Local<v8::Context> ctx = txv8_isolate->GetCurrentContext();
	v8::Local<v8::Value> msg = txv8_string_or_null(edata->message ? edata->message : "unknown error");
	v8::Local<v8::Object> err = v8::Exception::Error(msg.As<v8::String>()).As<v8::Object>();
	auto		set = [&](const char *k, v8::Local<v8::Value> v) {
		txv8_discard(err->CreateDataProperty(ctx, txv8_string_internal(k), v));
	};
	const char *cond = txv8_condition_name(edata->sqlerrcode);

	set("sqlerrcode", txv8_string_or_null(unpack_sql_state(edata->sqlerrcode)));
	set("code", v8::Integer::New(txv8_isolate, edata->sqlerrcode));
	set("condition_name", txv8_string_or_null(cond));
	set("schema_name", txv8_string_or_null(edata->schema_name));
	set("table_name", txv8_string_or_null(edata->table_name));
	set("column_name", txv8_string_or_null(edata->column_name));
	set("datatype_name", txv8_string_or_null(edata->datatype_name));
	set("constraint_name", txv8_string_or_null(edata->constraint_name));
	set("detail", txv8_string_or_null(edata->detail));
	set("hint", txv8_string_or_null(edata->hint));
	set("context", txv8_string_or_null(edata->context));
	set("internalquery", txv8_string_or_null(edata->internalquery));
	if (edata->internalpos > 0)
		set("internalpos", v8::Integer::New(txv8_isolate, edata->internalpos));
	return err;
}

bool
txv8_error_is_uncatchable(ErrorData *edata)
{
	return ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_OPERATOR_INTERVENTION ||
		edata->elevel >= FATAL || txv8_oom_hit || txv8_isolate->IsExecutionTerminating() ||
		ProcDiePending;
}

static ErrorData *
txv8_edata_copy(ErrorData *e, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	ErrorData  *c = (ErrorData *) palloc(sizeof(ErrorData));

	memcpy(c, e, sizeof(ErrorData));
#define TXV8_DUP(f) c->f = e->f ? pstrdup(e->f) : NULL
	TXV8_DUP(message);
	TXV8_DUP(detail);
	TXV8_DUP(detail_log);
	TXV8_DUP(hint);
	TXV8_DUP(context);
	TXV8_DUP(backtrace);
	TXV8_DUP(schema_name);
	TXV8_DUP(table_name);
	TXV8_DUP(column_name);
	TXV8_DUP(datatype_name);
	TXV8_DUP(constraint_name);
	TXV8_DUP(internalquery);
#undef TXV8_DUP
	c->assoc_context = cxt;
	MemoryContextSwitchTo(old);
	return c;
}

/* "name() LINE n: source" of the JS code running now (a callback's caller), or empty. */
static std::string
txv8_current_location(void)
{
	std::string ctx;

	if (txv8_isolate == nullptr || !txv8_isolate->InContext())
		return ctx;
	v8::HandleScope hs(txv8_isolate);
	v8::Local<v8::StackTrace> st = v8::StackTrace::CurrentStackTrace(txv8_isolate, 1);

	if (st->GetFrameCount() > 0)
	{
		v8::Local<v8::StackFrame> f = st->GetFrame(txv8_isolate, 0);

		txv8_frame_line(&ctx, f->GetScriptName(), f->GetLineNumber(), txv8_script_line(f, f->GetLineNumber()));
	}
	return ctx;
}

void
txv8_set_uncatchable(ErrorData *edata)
{
	if (txv8_pending == nullptr)
	{
		txv8_pending = txv8_edata_copy(edata, TopMemoryContext);
		if (!txv8_isolate->IsExecutionTerminating())
		{
			/* the JS line that made the failing call, as a CONTEXT line */
			std::string where = txv8_current_location();

			if (!where.empty())
			{
				MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
				char	   *c = txv8_pending->context ? psprintf("%s\n%s", txv8_pending->context, where.c_str())
					: pstrdup(where.c_str());

				MemoryContextSwitchTo(old);
				if (txv8_pending->context)
					pfree(txv8_pending->context);
				txv8_pending->context = c;
			}
		}
	}
	txv8_request_terminate();
}

ErrorData *
txv8_edata_copy_located(ErrorData *edata)
{
	ErrorData  *c = txv8_edata_copy(edata, TopMemoryContext);
	std::string where = txv8_current_location();

	c->elevel = ERROR;
	c->cursorpos = 0;			/* a position in the inner statement's text, not the caller's */
	if (!where.empty())
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
		char	   *ctx = c->context ? psprintf("%s\n%s", c->context, where.c_str()) : pstrdup(where.c_str());

		MemoryContextSwitchTo(old);
		if (c->context)
			pfree(c->context);
		c->context = ctx;
	}
	return c;
}

void
txv8_throw_failed(txv8_scope *scope)
{
	ErrorData  *orig = scope->failed;
	ErrorData	e;
	std::string msg = "current transaction is aborted, commands ignored until end of transaction block "
		"(an earlier statement failed: ";

	msg += orig->message ? orig->message : "unknown error";
	msg += ")";
	memset(&e, 0, sizeof(e));
	e.elevel = ERROR;
	e.sqlerrcode = ERRCODE_IN_FAILED_SQL_TRANSACTION;
	e.message = (char *) msg.c_str();
	e.detail = (char *) "It ran without a subtransaction, so only rolling back the enclosing "
		"plv8.subtransaction() (or the whole call) can undo it.";
	e.hint = (char *) "To catch an SQL error and go on, run the statement inside plv8.subtransaction(), "
		"like a PL/pgSQL block with an EXCEPTION clause.";

	v8::Local<v8::Value> err = txv8_error_from_edata(&e);

	if (scope->error != nullptr)
		txv8_discard(err.As<v8::Object>()->CreateDataProperty(txv8_isolate->GetCurrentContext(),
															  txv8_string_internal("cause"),
															  scope->error->Get(txv8_isolate)));
	txv8_throw_value(err);
}

void
txv8_throw_uncatchable(ErrorData *edata)
{
	txv8_set_uncatchable(edata);
	throw txv8_js_thrown();
}

void
txv8_throw_pg_error(ErrorData *edata)
{
	if (txv8_error_is_uncatchable(edata))
		txv8_throw_uncatchable(edata);
	txv8_isolate->ThrowException(txv8_error_from_edata(edata));
	throw txv8_js_thrown();
}

static void
txv8_throw_with(v8::Local<v8::Value> (*make) (v8::Local<v8::String>), const char *fmt, va_list ap)
{
	char		buf[1024];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	v8::Local<v8::String> msg = v8::String::NewFromUtf8(txv8_isolate, buf).ToLocalChecked();

	txv8_isolate->ThrowException(make(msg));
}

void
txv8_throw_error(const char *fmt, ...)
{
	va_list		ap;

	va_start(ap, fmt);
	txv8_throw_with(v8::Exception::Error, fmt, ap);
	va_end(ap);
	throw txv8_js_thrown();
}

void
txv8_throw_value(v8::Local<v8::Value> v)
{
	txv8_isolate->ThrowException(v);
	throw txv8_js_thrown();
}

/* ---------- JS exception -> txv8_js_error ---------- */

static char *
txv8_errstr(const std::string &s)
{
	return MemoryContextStrdup(txv8_error_context(), s.c_str());
}

/* String(v) in the server encoding; empty std::string if it cannot be had. */
static bool
txv8_to_std_string(v8::Local<v8::Value> v, std::string *out)
{
	v8::TryCatch tc(txv8_isolate);
	v8::Local<v8::String> s;

	if (!v->ToString(txv8_isolate->GetCurrentContext()).ToLocal(&s))
		return false;
	try
	{
		char	   *c = txv8_string_to_server(s, nullptr);

		*out = c;
		pfree(c);
		return true;
	}
	catch (txv8_pg_error &)
	{
		v8::String::Utf8Value u(txv8_isolate, s);

		*out = *u ? *u : "";
		return true;
	}
}

static char *
txv8_prop(v8::Local<v8::Object> obj, const char *name)
{
	v8::TryCatch tc(txv8_isolate);
	v8::Local<v8::Value> v;
	std::string s;

	if (!obj->Get(txv8_isolate->GetCurrentContext(), txv8_string_internal(name)).ToLocal(&v) ||
		v->IsNullOrUndefined() || !txv8_to_std_string(v, &s))
		return nullptr;
	return txv8_errstr(s);
}

static int
txv8_sqlstate_of(v8::Local<v8::Object> obj)
{
	char	   *s = txv8_prop(obj, "sqlerrcode");
	int			code = txv8_sqlstate_from_string(s);

	if (code != 0)
		return code;

	v8::TryCatch tc(txv8_isolate);
	v8::Local<v8::Value> v;

	if (!obj->Get(txv8_isolate->GetCurrentContext(), txv8_string_internal("code")).ToLocal(&v))
		return 0;
	if (v->IsInt32() && txv8_sqlstate_is_valid(v.As<v8::Int32>()->Value()))
		return v.As<v8::Int32>()->Value();	/* packed, as in caught errors */
	if (v->IsString())
		return txv8_sqlstate_from_string(txv8_prop(obj, "code"));	/* '23505' is a SQLSTATE */
	return 0;
}

/* "name() LINE n: source" for one location (names as plv8 prints them; DO blocks are "undefined"). */
static void
txv8_frame_line(std::string *ctx, v8::Local<v8::Value> script, int line, v8::Local<v8::String> source_line)
{
	std::string name,
				src;

	if (script.IsEmpty() || !txv8_to_std_string(script, &name))
		name = "undefined";
	if (!source_line.IsEmpty())
		txv8_to_std_string(source_line, &src);
	std::string entry = name + "() LINE " + std::to_string(line) + ": " + src;

	/* a frame repeated (deep recursion) is printed once */
	size_t		last = ctx->rfind('\n');

	if (ctx->compare(last == std::string::npos ? 0 : last + 1, std::string::npos, entry) == 0)
		return;
	if (!ctx->empty())
		*ctx += "\n";
	*ctx += entry;
}

/* The text of line `line` (as V8 numbers it for a script compiled with line offset -1). */
static v8::Local<v8::String>
txv8_script_line(v8::Local<v8::StackFrame> frame, int line)
{
	v8::Local<v8::String> src = frame->GetScriptSource();

	if (src.IsEmpty())
		return v8::Local<v8::String>();
	v8::String::Utf8Value u(txv8_isolate, src);

	if (*u == nullptr)
		return v8::Local<v8::String>();
	const char *p = *u;

	for (int l = 0; l < line && p; l++)	/* line 0 is the "(function (...) {" wrapper */
	{
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	if (p == nullptr)
		return v8::Local<v8::String>();
	const char *e = strchr(p, '\n');

	return v8::String::NewFromUtf8(txv8_isolate, p, v8::NewStringType::kNormal,
								   e ? (int) (e - p) : (int) strlen(p)).ToLocalChecked();
}

static txv8_js_error *
txv8_js_error_capture(v8::TryCatch &tc)
{
	v8::Local<v8::Context> ctx = txv8_isolate->GetCurrentContext();
	v8::Local<v8::Value> exc = tc.Exception();
	v8::Local<v8::Message> msg = tc.Message();
	txv8_js_error *e = (txv8_js_error *) MemoryContextAllocZero(txv8_error_context(), sizeof(txv8_js_error));
	std::string s;

	if (!txv8_to_std_string(exc, &s))
	{
		/* String(e) cannot run (e.g. at the stack limit): use V8's own text of the message */
		if (msg.IsEmpty() || !txv8_to_std_string(msg->Get(), &s))
			s = "unknown JavaScript exception";
		else if (s.compare(0, 9, "Uncaught ") == 0)
			s = s.substr(9);
	}
	else if (s == "[object Object]" && exc->IsObject())
	{
		/* a plain object thrown with a message property */
		char	   *m = txv8_prop(exc.As<v8::Object>(), "message");

		if (m)
			s = m;
	}
	if (s.compare(0, 7, "Error: ") == 0)
		s = s.substr(7);
	e->message = txv8_errstr(s);
	e->sqlerrcode = ERRCODE_INTERNAL_ERROR;

	std::string context;

	if (exc->IsObject())
	{
		v8::Local<v8::Object> obj = exc.As<v8::Object>();
		int			code = txv8_sqlstate_of(obj);

		if (code != 0)
			e->sqlerrcode = code;
		e->detail = txv8_prop(obj, "detail");
		e->hint = txv8_prop(obj, "hint");
		e->internalquery = txv8_prop(obj, "internalquery");
		e->schema_name = txv8_prop(obj, "schema_name");
		e->table_name = txv8_prop(obj, "table_name");
		e->column_name = txv8_prop(obj, "column_name");
		e->datatype_name = txv8_prop(obj, "datatype_name");
		e->constraint_name = txv8_prop(obj, "constraint_name");
		char	   *pos = txv8_prop(obj, "internalpos");

		e->internalpos = pos ? atoi(pos) : 0;
		char	   *own = txv8_prop(obj, "context");

		if (own)
			context = own;
	}
	if (!msg.IsEmpty())
	{
		int			line = msg->GetLineNumber(ctx).FromMaybe(0);
		v8::Local<v8::String> src;

		if (!msg->GetSourceLine(ctx).ToLocal(&src))
			src = v8::Local<v8::String>();
		v8::Local<v8::Value> script = msg->GetScriptResourceName();

		/* no line for exceptions raised outside any script (e.g. by a conversion) */
		if (line > 0 || !script->IsUndefined())
			txv8_frame_line(&context, script, line, src);

		/*
		 * The callers, from the stack captured with the error, down to where this
		 * execution began: frames still live now belong to outer executions (JS ->
		 * SQL -> JS) and are reported by their own CONTEXT lines.
		 */
		v8::Local<v8::StackTrace> st = msg->GetStackTrace();
		int			n = st.IsEmpty() ? 0 : st->GetFrameCount();
		v8::Local<v8::StackTrace> outer = v8::StackTrace::CurrentStackTrace(txv8_isolate, 1);
		v8::Local<v8::StackFrame> outer0;

		if (outer->GetFrameCount() > 0)
			outer0 = outer->GetFrame(txv8_isolate, 0);
		for (int i = 0; i < n; i++)
		{
			v8::Local<v8::StackFrame> f = st->GetFrame(txv8_isolate, i);
			v8::Local<v8::String> fname = f->GetScriptName();

			if (!outer0.IsEmpty() && f->GetScriptId() == outer0->GetScriptId() &&
				f->GetLineNumber() == outer0->GetLineNumber() && f->GetColumn() == outer0->GetColumn())
				break;

			if (fname.IsEmpty() || f->IsEval())
				continue;
			if (i == 0 && f->GetLineNumber() == line)
				continue;		/* the throw point, already printed */
			txv8_frame_line(&context, fname, f->GetLineNumber(), txv8_script_line(f, f->GetLineNumber()));
		}
	}
	if (!context.empty())
		e->context = txv8_errstr(context);
	return e;
}

void
txv8_capture(v8::TryCatch &tc, txv8_outcome *out)
{
	try
	{
		if (tc.HasTerminated() || txv8_isolate->IsExecutionTerminating() || !tc.HasCaught())
		{
			out->terminated = true;
			out->oom = txv8_oom_hit;
			return;
		}
		out->js = txv8_js_error_capture(tc);
	}
	catch (txv8_pg_error &e)
	{
		out->edata = e.edata;
	}
	catch (...)
	{
		out->terminated = true;
	}
}

/*
 * The call's scope was failed by a statement without a subtransaction, and nothing rolled
 * it back: the call must end with that original error, whatever JS did afterwards (caught
 * it and returned, threw something else). What a termination raises keeps precedence (an
 * uncatchable error caught from SQL, the heap limit; a cancel is reported as a cancel by
 * txv8_outcome_raise). When the JS let the very Error it was handed escape, the ordinary
 * JS path reports it (with its JS stack). Only V8 and memory are touched here.
 */
void
txv8_failed_outcome(txv8_scope *scope, v8::TryCatch &tc, txv8_outcome *out)
{
	ErrorData  *failed = scope->failed;
	bool		same = out->js != nullptr && scope->error != nullptr && tc.HasCaught() && !tc.HasTerminated() &&
		tc.Exception()->StrictEquals(scope->error->Get(txv8_isolate));

	scope->failed = nullptr;
	txv8_scope_forget(scope);
	txv8_raising_failed = true;
	if ((out->terminated && (txv8_pending != nullptr || out->oom)) || same)
	{
		FreeErrorData(failed);
		return;
	}
	out->edata = nullptr;
	out->js = nullptr;
	out->failed = failed;
}

/* ---------- raising, once no V8 scope is live ---------- */

/*
 * A failed call's original error; or, when a cancel terminated the JS meanwhile, the cancel.
 * ProcessInterrupts() is not called for it (it may do more than raise the cancel, and
 * PostgreSQL's state waits for the rollback): its cancel branch is repeated instead, minus
 * LockErrorCleanup(), which the rollback does.
 */
static void
txv8_raise_failed(txv8_outcome *out)
{
	ErrorData  *e = txv8_edata_copy(out->failed, CurrentMemoryContext);

	FreeErrorData(out->failed);
	out->failed = nullptr;
	if (out->terminated && QueryCancelPending)
	{
		bool		lock = get_timeout_indicator(LOCK_TIMEOUT, true);
		bool		stmt = get_timeout_indicator(STATEMENT_TIMEOUT, true);

		if (lock && stmt && get_timeout_finish_time(STATEMENT_TIMEOUT) < get_timeout_finish_time(LOCK_TIMEOUT))
			lock = false;
		QueryCancelPending = false;
		ereport(ERROR,
				(errcode(lock ? ERRCODE_LOCK_NOT_AVAILABLE : ERRCODE_QUERY_CANCELED),
				 errmsg(lock ? "canceling statement due to lock timeout" :
						stmt ? "canceling statement due to statement timeout" :
						"canceling statement due to user request"),
				 errdetail_internal("The function had already failed: %s", e->message ? e->message : "unknown error")));
	}
	ThrowErrorData(e);
	pg_unreachable();
}

void
txv8_outcome_raise(txv8_outcome *out)
{
	txv8_raising_failed = false;
	if (out->failed != nullptr)
		txv8_raise_failed(out);
	if (out->terminated)
	{
		if (txv8_pending != nullptr)
		{
			ErrorData  *e = txv8_edata_copy(txv8_pending, CurrentMemoryContext);

			FreeErrorData(txv8_pending);
			txv8_pending = nullptr;
			ReThrowError(e);
		}
		CHECK_FOR_INTERRUPTS();
		if (out->oom)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY),
							errmsg("Out of memory error"),
							errdetail("The JavaScript heap reached txv8.memory_limit (%d MB); the engine was reset.",
									  txv8_memory_limit)));
		ereport(ERROR, (errcode(ERRCODE_QUERY_CANCELED),
						errmsg("JavaScript execution was terminated")));
	}
	if (out->edata != nullptr)
		ReThrowError(out->edata);
	if (out->js != nullptr)
	{
		txv8_js_error *e = out->js;

		ereport(ERROR,
				(errcode(e->sqlerrcode),
				 errmsg_internal("%s", e->message),
				 e->detail ? errdetail_internal("%s", e->detail) : 0,
				 e->hint ? errhint("%s", e->hint) : 0,
				 e->context ? errcontext("%s", e->context) : 0,
				 e->internalquery ? internalerrquery(e->internalquery) : 0,
				 e->internalpos > 0 ? internalerrposition(e->internalpos) : 0,
				 e->schema_name ? err_generic_string(PG_DIAG_SCHEMA_NAME, e->schema_name) : 0,
				 e->table_name ? err_generic_string(PG_DIAG_TABLE_NAME, e->table_name) : 0,
				 e->column_name ? err_generic_string(PG_DIAG_COLUMN_NAME, e->column_name) : 0,
				 e->datatype_name ? err_generic_string(PG_DIAG_DATATYPE_NAME, e->datatype_name) : 0,
				 e->constraint_name ? err_generic_string(PG_DIAG_CONSTRAINT_NAME, e->constraint_name) : 0));
	}
}

/* ---------- scratch memory ---------- */

static std::vector<MemoryContext> txv8_scratch_pool;
static size_t txv8_scratch_level = 0;

txv8_scratch::txv8_scratch()
{
	if (txv8_scratch_level == txv8_scratch_pool.size())
	{
		MemoryContext volatile c = nullptr;

		txv8_pg([&] { c = AllocSetContextCreate(TopMemoryContext, "txv8 scratch", ALLOCSET_DEFAULT_SIZES); });
		txv8_scratch_pool.push_back((MemoryContext) c);
	}
	MemoryContext c = txv8_scratch_pool[txv8_scratch_level];

	txv8_scratch_level++;
	cxt = c;
	old = MemoryContextSwitchTo(cxt);
}

txv8_scratch::~txv8_scratch()
{
	MemoryContextSwitchTo(old);
	MemoryContextReset(cxt);
	txv8_scratch_level--;
}
