/* txv8_engine.cc: V8 start-up per backend, per-user contexts, memory limit, stack limit and the cancel watchdog. */
#include "txv8_engine.h"

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <pthread.h>
#include <unordered_map>
#include <vector>

#include "txv8_elog.h"
#include "txv8_exec.h"
#include "txv8_plv8.h"
#include "txv8_procedure.h"
#include "txv8_spi.h"

extern "C" {
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/json.h"
}

void		txv8_promise_reject(v8::PromiseRejectMessage m);
void		txv8_rejections_forget(void);

v8::Isolate *txv8_isolate = nullptr;
int			txv8_depth = 0;
txv8_context *txv8_running_context = nullptr;
char	   *txv8_start_proc = nullptr;
int			txv8_memory_limit = 256;
char	   *txv8_v8_flags = nullptr;
volatile bool txv8_oom_hit = false;
bool		txv8_raising_failed = false;

static v8::Platform *txv8_platform = nullptr;	/* never freed: threads must outlive exit() */
static pthread_t txv8_main_thread;
static char *txv8_stack_base = nullptr;
static int	txv8_stack_limit_for = -1;

static std::unordered_map<Oid, txv8_context *> *txv8_contexts;
static std::vector<txv8_context *> *txv8_graveyard;	/* reset while JS was running in them */
static txv8_context *txv8_last_context;
static uint64 txv8_context_serial = 0;

/* ---------- GUCs ---------- */

void
txv8_engine_define_gucs(void)
{
	DefineCustomStringVariable("txv8.start_proc",
							   "txv8 function run once whenever a user's JS context is created.",
							   "Superuser-only: it runs with the privileges of whichever user's context is being created.",
							   &txv8_start_proc, NULL, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("txv8.memory_limit",
							"Heap limit of the backend's JS engine, in MB (applies when the engine starts).",
							NULL, &txv8_memory_limit, 256, 16, 4096, PGC_SUSET, GUC_UNIT_MB, NULL, NULL, NULL);
	DefineCustomStringVariable("txv8.v8_flags",
							   "V8 flags applied when the backend's JS engine starts.",
							   NULL, &txv8_v8_flags, NULL, PGC_SUSET, 0, NULL, NULL, NULL);
	MarkGUCPrefixReserved("txv8");
}

/* ---------- watchdog: turns a pending cancel / die into TerminateExecution ---------- */

static std::atomic<bool> wd_active{false};
static std::atomic<bool> wd_sleeping{false};
static std::atomic<bool> txv8_terminate_pending{false};
static pthread_mutex_t wd_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wd_cond = PTHREAD_COND_INITIALIZER;

void
txv8_request_terminate(void)
{
	txv8_terminate_pending.store(true);
	if (txv8_isolate)
		txv8_isolate->TerminateExecution();
}

bool
txv8_termination_requested(void)
{
	return txv8_terminate_pending.load(std::memory_order_relaxed);
}

/*
 * Make a requested termination take effect now, from inside a callback. V8 only acts
 * on it at a stack check, and optimised code drops the loop check of a loop that makes
 * a call, trusting the callee to check: an API callback does not. So enter JS once.
 */
void
txv8_terminate_now(void)
{
	v8::Isolate *iso = txv8_isolate;

	txv8_request_terminate();
	if (iso->IsExecutionTerminating())
		return;
	v8::HandleScope hs(iso);
	v8::Local<v8::Context> ctx = iso->GetCurrentContext();
	v8::Local<v8::Script> s;
	v8::Local<v8::Value> r;

	if (v8::Script::Compile(ctx, v8::String::NewFromUtf8Literal(iso, "0")).ToLocal(&s))
		if (!s->Run(ctx).ToLocal(&r))
			return;
}

/* Runs on the main thread, inside JS: terminate only if the cancel is still pending now. */
static void
txv8_interrupt_check(v8::Isolate *, void *)
{
	if (txv8_cancel_pending())
		txv8_request_terminate();
}

/*
 * While JS runs, poll PostgreSQL's interrupt flags every 10 ms (they are set by signal
 * handlers in the main thread; reading them here is a benign race). The watchdog never
 * terminates by itself: it asks V8 to run txv8_interrupt_check on the main thread, so a
 * request that arrives late (the statement it was meant for already over) does nothing.
 * When idle, sleep on a condition variable so idle backends cost nothing. The isolate
 * is only touched under wd_mutex, which the main thread also holds while disposing of it.
 */
static void *
txv8_watchdog_main(void *)
{
	for (;;)
	{
		pthread_mutex_lock(&wd_mutex);
		if (!wd_active.load())
		{
			wd_sleeping.store(true);
			while (!wd_active.load())
				pthread_cond_wait(&wd_cond, &wd_mutex);
			wd_sleeping.store(false);
		}
		pthread_mutex_unlock(&wd_mutex);

		struct timespec ts = {0, 10 * 1000 * 1000};

		nanosleep(&ts, nullptr);

		pthread_mutex_lock(&wd_mutex);
		if (wd_active.load() && txv8_cancel_pending() && txv8_isolate)
			txv8_isolate->RequestInterrupt(txv8_interrupt_check, nullptr);
		pthread_mutex_unlock(&wd_mutex);
	}
	return nullptr;
}

static void
txv8_watchdog_wake(void)
{
	wd_active.store(true);
	if (wd_sleeping.load())
	{
		pthread_mutex_lock(&wd_mutex);
		pthread_cond_signal(&wd_cond);
		pthread_mutex_unlock(&wd_mutex);
	}
}

/* ---------- memory ---------- */

/* ArrayBuffer memory counts against txv8.memory_limit too: over budget, allocation fails with a RangeError. */
class txv8_buffer_allocator:public v8::ArrayBuffer::Allocator
{
  public:
	explicit txv8_buffer_allocator(size_t limit):limit_(limit)
	{
	}
	void	   *Allocate(size_t n) override
	{
		if (!Reserve(n))
			return nullptr;
		void	   *p = calloc(n ? n : 1, 1);

		if (!p)
			used_ -= n;
		return p;
	}
	void	   *AllocateUninitialized(size_t n) override
	{
		if (!Reserve(n))
			return nullptr;
		void	   *p = malloc(n ? n : 1);

		if (!p)
			used_ -= n;
		return p;
	}
	void		Free(void *p, size_t n) override
	{
		free(p);
		used_ -= n;
	}
	size_t		used() const
	{
		return used_.load();
	}
  private:
	bool		Reserve(size_t n)
	{
		size_t		now = used_.fetch_add(n) + n;

		if (now > limit_)
		{
			used_ -= n;
			return false;
		}
		return true;
	}
	size_t		limit_;
	std::atomic<size_t> used_{0};
};

static txv8_buffer_allocator *txv8_allocator = nullptr;

/* Near the heap limit: stop the JS, give V8 room to unwind; the isolate is disposed afterwards. */
static size_t
txv8_near_heap_limit(void *, size_t current, size_t initial)
{
	txv8_oom_hit = true;
	txv8_request_terminate();
	if (current >= initial * 4)
		return current;
	return current + Max(initial / 2, (size_t) 32 * 1024 * 1024);
}

/* V8 cannot continue: end this backend cleanly (FATAL), never abort() the whole cluster. */
static void
txv8_fatal_error(const char *location, const char *message)
{
	if (!pthread_equal(pthread_self(), txv8_main_thread))
		abort();
	ereport(FATAL, (errcode(ERRCODE_INTERNAL_ERROR),
					errmsg("JavaScript engine fatal error: %s", message ? message : "unknown"),
					errdetail_internal("at %s", location ? location : "unknown location")));
}

static void
txv8_oom_error(const char *location, bool is_heap_oom)
{
	if (!pthread_equal(pthread_self(), txv8_main_thread))
		abort();
	ereport(FATAL, (errcode(ERRCODE_OUT_OF_MEMORY),
					errmsg("JavaScript engine out of memory"),
					errdetail_internal("at %s", location ? location : "unknown location")));
}

/* ---------- start-up ---------- */

static void
txv8_isolate_create(void)
{
	sigset_t	all,
				old;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	if (txv8_platform == nullptr)
	{
		txv8_main_thread = pthread_self();
		if (txv8_v8_flags && *txv8_v8_flags)
			v8::V8::SetFlagsFromString(txv8_v8_flags);
		txv8_platform = v8::platform::NewDefaultPlatform(1).release();
		v8::V8::InitializePlatform(txv8_platform);
		v8::V8::Initialize();

		pthread_t	wd;

		pthread_create(&wd, nullptr, txv8_watchdog_main, nullptr);
		pthread_detach(wd);

		pg_stack_base_t base = set_stack_base();

		restore_stack_base(base);
		txv8_stack_base = (char *) base;
		if (txv8_stack_base == nullptr)
		{
			char		here;		/* no base recorded (single-user mode): start from here */

			txv8_stack_base = &here;
		}
		txv8_server_is_utf8 = GetDatabaseEncoding() == PG_UTF8;
		txv8_contexts = new std::unordered_map<Oid, txv8_context *>();
		txv8_graveyard = new std::vector<txv8_context *>();
	}

	size_t		limit = (size_t) txv8_memory_limit * 1024 * 1024;
	v8::Isolate::CreateParams params;

	txv8_allocator = new txv8_buffer_allocator(limit);
	params.array_buffer_allocator = txv8_allocator;
	params.constraints.ConfigureDefaultsFromHeapSize(0, limit);
	v8::Isolate *isolate = v8::Isolate::New(params);

	pthread_sigmask(SIG_SETMASK, &old, nullptr);
	isolate->Enter();			/* only this thread runs JS: stay entered until disposal */

	isolate->SetMicrotasksPolicy(v8::MicrotasksPolicy::kAuto);	/* run when the outermost call returns */
	isolate->AddNearHeapLimitCallback(txv8_near_heap_limit, nullptr);
	isolate->SetFatalErrorHandler(txv8_fatal_error);
	isolate->SetOOMErrorHandler(txv8_oom_error);
	isolate->SetCaptureStackTraceForUncaughtExceptions(true, 10, v8::StackTrace::kDetailed);
	isolate->SetPromiseRejectCallback(txv8_promise_reject);
	txv8_stack_limit_for = -1;
	txv8_oom_hit = false;
	txv8_terminate_pending.store(false);

	pthread_mutex_lock(&wd_mutex);
	txv8_isolate = isolate;
	pthread_mutex_unlock(&wd_mutex);
}

static void
txv8_context_free(txv8_context *ctx)
{
	txv8_procedure_forget_context(ctx->serial);
	ctx->row_factories.clear();
	ctx->context.Reset();
	delete ctx;
}

/* After the heap limit was hit: drop every handle, then the isolate; the next call starts afresh. */
static void
txv8_isolate_dispose(void)
{
	/* no catalog lookup while a failed call's state waits for its rollback */
	if (txv8_raising_failed)
		elog(LOG_SERVER_ONLY, "Disposing of a dead isolate for user %u", GetUserId());
	else
		elog(LOG_SERVER_ONLY, "Disposing of a dead isolate for: %s", GetUserNameFromId(GetUserId(), true));
	txv8_procedure_forget_all();
	txv8_exec_forget_all();
	txv8_spi_forget_all();
	txv8_rejections_forget();
	txv8_plv8_templates_reset();
	for (auto &it : *txv8_contexts)
		txv8_context_free(it.second);
	txv8_contexts->clear();
	for (txv8_context *c : *txv8_graveyard)
		txv8_context_free(c);
	txv8_graveyard->clear();
	txv8_last_context = nullptr;

	pthread_mutex_lock(&wd_mutex);
	v8::Isolate *isolate = txv8_isolate;

	txv8_isolate = nullptr;
	pthread_mutex_unlock(&wd_mutex);
	isolate->Exit();
	isolate->Dispose();
	delete txv8_allocator;
	txv8_allocator = nullptr;
	txv8_oom_hit = false;
	txv8_terminate_pending.store(false);
}

/* ---------- entering and leaving JS ---------- */

txv8_entry::txv8_entry()
{
	if (txv8_depth++ > 0)
		return;
	txv8_error_context_reset();
	if (txv8_terminate_pending.exchange(false))
		txv8_isolate->CancelTerminateExecution();	/* stale: fired after the previous call ended */
	if (txv8_stack_limit_for != max_stack_depth)
	{
		/* V8 may use the same stack PostgreSQL allows itself (max_stack_depth, kB). */
		txv8_isolate->SetStackLimit((uintptr_t) txv8_stack_base - (uintptr_t) max_stack_depth * 1024);
		txv8_stack_limit_for = max_stack_depth;
	}
	txv8_watchdog_wake();
}

txv8_entry::~txv8_entry()
{
	if (--txv8_depth > 0)
		return;
	wd_active.store(false);
	if (txv8_terminate_pending.exchange(false))
		txv8_isolate->CancelTerminateExecution();
	if (txv8_oom_hit)
	{
		txv8_isolate_dispose();
		return;
	}
	for (txv8_context *c : *txv8_graveyard)
		txv8_context_free(c);
	txv8_graveyard->clear();
	txv8_spi_release_unreachable();
}

/* ---------- contexts ---------- */

static txv8_context *
txv8_context_create(Oid user)
{
	txv8_context *ctx = new txv8_context();

	ctx->user = user;
	ctx->serial = ++txv8_context_serial;
	{
		v8::HandleScope hscope(txv8_isolate);
		v8::Local<v8::Context> context = v8::Context::New(txv8_isolate);
		v8::Context::Scope cscope(context);

		txv8_plv8_install(context);
		ctx->context.Reset(txv8_isolate, context);
	}
	(*txv8_contexts)[user] = ctx;
	return ctx;
}

txv8_context *
txv8_context_current(void)
{
	Oid			user = GetUserId();

	if (txv8_last_context != nullptr && txv8_last_context->user == user)
		return txv8_last_context;
	if (txv8_isolate == nullptr)
		txv8_isolate_create();

	auto		it = txv8_contexts->find(user);

	if (it != txv8_contexts->end())
		return txv8_last_context = it->second;

	txv8_context *ctx = txv8_context_create(user);

	txv8_last_context = ctx;
	if (txv8_start_proc != nullptr && txv8_start_proc[0] != '\0')
	{
		/* a failed start-up procedure leaves no half-initialised context behind */
		PG_TRY();
		{
			txv8_exec_start_proc(ctx);
		}
		PG_CATCH();
		{
			txv8_context_reset(user);
			PG_RE_THROW();
		}
		PG_END_TRY();
	}
	return ctx;
}

void
txv8_context_reset(Oid user)
{
	if (txv8_contexts == nullptr)
		return;
	auto		it = txv8_contexts->find(user);

	if (it == txv8_contexts->end())
		return;
	txv8_context *ctx = it->second;

	txv8_contexts->erase(it);
	if (txv8_last_context == ctx)
		txv8_last_context = nullptr;
	if (txv8_depth > 0)
		txv8_graveyard->push_back(ctx);
	else
		txv8_context_free(ctx);
}

void
txv8_context_info(StringInfo buf)
{
	v8::HeapStatistics hs;

	if (txv8_isolate)
		txv8_isolate->GetHeapStatistics(&hs);
	appendStringInfoChar(buf, '[');
	bool		first = true;

	if (txv8_contexts)
		for (auto &it : *txv8_contexts)
		{
			const char *name = GetUserNameFromId(it.first, true);

			if (!first)
				appendStringInfoChar(buf, ',');
			first = false;
			appendStringInfo(buf, "{\"user\":");
			escape_json(buf, name ? name : "");
			appendStringInfo(buf, ",\"total_heap_size\":%zu,\"used_heap_size\":%zu,\"external_memory\":%zu}",
							 hs.total_heap_size(), hs.used_heap_size(), hs.external_memory());
		}
	appendStringInfoChar(buf, ']');
}

/* ---------- after the outermost call: microtasks and unhandled rejections ---------- */

struct txv8_rejection
{
	v8::Global<v8::Promise> promise;
	v8::Global<v8::Value> reason;
};

static std::vector<txv8_rejection *> txv8_rejections;

void
txv8_promise_reject(v8::PromiseRejectMessage m)
{
	v8::Local<v8::Promise> p = m.GetPromise();

	if (m.GetEvent() == v8::kPromiseRejectWithNoHandler)
	{
		txv8_rejection *r = new txv8_rejection();

		r->promise.Reset(txv8_isolate, p);
		r->reason.Reset(txv8_isolate, m.GetValue());
		txv8_rejections.push_back(r);
	}
	else if (m.GetEvent() == v8::kPromiseHandlerAddedAfterReject)
	{
		for (size_t i = 0; i < txv8_rejections.size(); i++)
			if (txv8_rejections[i]->promise.Get(txv8_isolate) == p)
			{
				delete txv8_rejections[i];
				txv8_rejections.erase(txv8_rejections.begin() + i);
				break;
			}
	}
}

void
txv8_rejections_forget(void)
{
	for (txv8_rejection *r : txv8_rejections)
		delete r;
	txv8_rejections.clear();
}

void
txv8_after_call(void)
{
	if (txv8_isolate->IsExecutionTerminating())
		throw txv8_js_thrown();
	while (!txv8_rejections.empty())
	{
		txv8_rejection *r = txv8_rejections.front();
		v8::Local<v8::Value> reason = r->reason.Get(txv8_isolate);

		txv8_rejections.erase(txv8_rejections.begin());
		delete r;

		v8::TryCatch tc(txv8_isolate);
		v8::Local<v8::String> s;
		char	   *msg = nullptr;

		if (reason->ToString(txv8_isolate->GetCurrentContext()).ToLocal(&s))
			msg = txv8_string_to_server(s, nullptr);
		const char *text = msg ? msg : "(unprintable value)";

		txv8_pg([&] { ereport(WARNING, (errmsg_internal("Unhandled Promise rejection: %s", text))); });
	}
}
