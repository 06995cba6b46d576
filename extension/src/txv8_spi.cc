/* txv8_spi.cc: plv8.execute (with a plan cache), prepare and PreparedPlan, subtransaction, commit and rollback. */
#include "txv8_spi.h"

#include <list>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "txv8_exec.h"
#include "txv8_plv8.h"

extern "C" {
#include "storage/lwlock.h"
#include "parser/analyze.h"
#include "parser/parse_param.h"
#include "parser/parse_type.h"
#include "tcop/tcopprot.h"
#include "utils/snapmgr.h"
}

/* ---------- the subtransaction protocol (see txv8_spi.h) ---------- */

void
txv8_subxact_begin(txv8_subxact_state *s, bool clear_context)
{
	if (!IsTransactionOrTransactionBlock())
		txv8_throw_error("out of transaction");
	txv8_spi_connect();			/* never inside the subtransaction: its end would pop the connection */
	s->cxt = CurrentMemoryContext;
	s->owner = CurrentResourceOwner;
	s->ectx = error_context_stack;
	txv8_pg([] { BeginInternalSubTransaction(NULL); });
	MemoryContextSwitchTo(s->cxt);
	if (clear_context)
		error_context_stack = NULL;
}

void
txv8_subxact_commit(txv8_subxact_state *s)
{
	error_context_stack = s->ectx;
	txv8_pg([] { ReleaseCurrentSubTransaction(); });
	MemoryContextSwitchTo(s->cxt);
	CurrentResourceOwner = s->owner;
}

void
txv8_subxact_abort(txv8_subxact_state *s)
{
	error_context_stack = s->ectx;
	MemoryContextSwitchTo(s->cxt);
	try
	{
		txv8_pg([] { RollbackAndReleaseCurrentSubTransaction(); });
	}
	catch (txv8_pg_error &e)
	{
		txv8_set_uncatchable(e.edata);	/* cannot happen in practice; never let JS go on then */
	}
	MemoryContextSwitchTo(s->cxt);
	CurrentResourceOwner = s->owner;
}

/* ---------- statements without a subtransaction (see txv8_spi.h) ---------- */

void
txv8_direct_begin(txv8_direct_state *s)
{
	txv8_spi_connect();			/* refuses while the innermost scope is failed */
	s->cxt = CurrentMemoryContext;
	s->owner = CurrentResourceOwner;
	s->ectx = error_context_stack;
	error_context_stack = NULL; /* the error's context: only what happened inside */
}

void
txv8_direct_end(txv8_direct_state *s)
{
	error_context_stack = s->ectx;
	MemoryContextSwitchTo(s->cxt);
	CurrentResourceOwner = s->owner;
}

void
txv8_direct_fail(txv8_direct_state *s, ErrorData *edata)
{
	txv8_scope *scope = txv8_scope_top;

	txv8_direct_end(s);
	LWLockReleaseAll();			/* idempotent; the rollback would do it first too */
	if (scope != nullptr && scope->failed == nullptr)
		scope->failed = txv8_edata_copy_located(edata);
	if (scope == nullptr || txv8_error_is_uncatchable(edata))
		txv8_throw_uncatchable(edata);

	v8::Local<v8::Value> err = txv8_error_from_edata(edata);

	scope->error = new v8::Global<v8::Value>(txv8_isolate, err);
	txv8_isolate->ThrowException(err);
	throw txv8_js_thrown();
}

void
txv8_scope_forget(txv8_scope *s)
{
	if (s->error != nullptr)
	{
		s->error->Reset();
		delete s->error;
		s->error = nullptr;
	}
	if (s->failed != nullptr)
	{
		FreeErrorData(s->failed);
		s->failed = nullptr;
	}
}

/* ---------- shared pieces ---------- */

bool
txv8_spi_read_only(void)
{
	return txv8_current_frame != nullptr && txv8_current_frame->read_only;
}

void
txv8_spi_collect_args(const v8::FunctionCallbackInfo<v8::Value> &info, int first,
					  txv8_values &out)
{
	if (info.Length() == first + 1 && info[first]->IsArray())
	{
		v8::Local<v8::Array> a = info[first].As<v8::Array>();
		v8::Local<v8::Context> ctx = txv8_isolate->GetCurrentContext();
		uint32		n = a->Length();

		out.resize(n);
		for (uint32 i = 0; i < n; i++)
			if (!a->Get(ctx, i).ToLocal(&out[i]))
				throw txv8_js_thrown();
		return;
	}
	for (int i = first; i < info.Length(); i++)
		out.push_back(info[i]);
}

void
txv8_spi_params(txv8_values &args, txv8_typeinfo **infos, txv8_params &out)
{
	size_t		n = args.size();

	if (n <= (size_t) txv8_params::inline_size)
	{
		out.values = out.values_inline;
		out.nulls = out.nulls_inline;
	}
	else
	{
		out.values = (Datum *) txv8_palloc(sizeof(Datum) * n);
		out.nulls = (char *) txv8_palloc(n);
	}
	for (size_t i = 0; i < n; i++)
	{
		bool		isnull;

		out.values[i] = txv8_value_to_datum(infos[i], args[i], &isnull);
		out.nulls[i] = isnull ? 'n' : ' ';
	}
}

static txv8_typeinfo **
txv8_param_infos(int n, Oid *types, MemoryContext cxt)
{
	txv8_typeinfo **infos = (txv8_typeinfo **) MemoryContextAllocZero(cxt, sizeof(txv8_typeinfo *) * Max(n, 1));

	for (int i = 0; i < n; i++)
		infos[i] = txv8_typeinfo_get(types[i], -1, cxt);
	return infos;
}

/* Variable parameters as PREPARE deduces them, minus its refusal of undetermined ones. */
struct txv8_param_hook_arg
{
	Oid		   *types;
	int			n;
};

static void
txv8_param_hook(ParseState *pstate, void *arg)
{
	txv8_param_hook_arg *a = (txv8_param_hook_arg *) arg;

	setup_parse_variable_parameters(pstate, &a->types, &a->n);
}

SPIPlanPtr
txv8_spi_prepare_deduced(const char *sql, int *nargs, Oid **types, MemoryContext cxt)
{
	bool		pushed = false;

	if (!ActiveSnapshotSet())
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		pushed = true;
	}
	List	   *raw = pg_parse_query(sql);
	txv8_param_hook_arg arg = {NULL, 0};
	ListCell   *lc;

	foreach(lc, raw)
		(void) parse_analyze_withcb(lfirst_node(RawStmt, lc), sql, txv8_param_hook, &arg, NULL);
	Oid		   *ptypes = arg.types;
	int			n = arg.n;
	if (pushed)
		PopActiveSnapshot();

	Oid		   *t = (Oid *) MemoryContextAlloc(cxt, sizeof(Oid) * Max(n, 1));

	for (int i = 0; i < n; i++)
		t[i] = (ptypes[i] == InvalidOid || ptypes[i] == UNKNOWNOID) ? TEXTOID : ptypes[i];
	SPIPlanPtr	plan = SPI_prepare(sql, n, t);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	*nargs = n;
	*types = t;
	return plan;
}

v8::Local<v8::Value>
txv8_spi_result(int rc, txv8_rowconv **cache, MemoryContext cache_cxt)
{
	if (rc == SPI_ERROR_TRANSACTION)
		txv8_error(ERRCODE_INVALID_TRANSACTION_TERMINATION,
				   "transaction control statements cannot run through plv8.execute(); "
				   "use plv8.commit() or plv8.rollback() in a procedure");
	if (rc < 0)
		txv8_error(ERRCODE_INTERNAL_ERROR, "SPI failed: %s", SPI_result_code_string(rc));

	SPITupleTable *tt = SPI_tuptable;
	uint64		n = SPI_processed;
	bool		rows = tt != NULL &&
		(rc == SPI_OK_SELECT || rc == SPI_OK_INSERT_RETURNING || rc == SPI_OK_DELETE_RETURNING ||
		 rc == SPI_OK_UPDATE_RETURNING || rc == SPI_OK_UTILITY || rc == SPI_OK_REWRITTEN);

	if (!rows)
	{
		if (tt)
			SPI_freetuptable(tt);
		return v8::Number::New(txv8_isolate, (double) n);
	}
	txv8_rowconv *volatile rconv = cache ? *cache : nullptr;

	if (rconv == nullptr || !txv8_rowconv_matches(rconv, tt->tupdesc))
	{
		MemoryContext cxt = cache ? cache_cxt : CurrentMemoryContext;

		txv8_pg([&] { rconv = txv8_rowconv_build(tt->tupdesc, cxt); });
		if (cache)
			*cache = rconv;
	}
	v8::Local<v8::Array> a = txv8_rowconv_rows(rconv, tt, n);

	SPI_freetuptable(tt);
	return a;
}

/* ---------- plv8.execute and its plan cache ---------- */

/*
 * Statements with parameters are prepared once (types deduced by the parser) and kept,
 * least recently used first out; the plan cache of PostgreSQL revalidates them after
 * DDL or a search_path change.
 */
struct txv8_cached_plan
{
	std::string sql;
	v8::Global<v8::String> jsql;	/* the JS string last found to hold sql (txv8_plan_by_js) */
	SPIPlanPtr	plan;
	int			nargs;
	txv8_typeinfo **params;
	txv8_rowconv *rowconv;
	MemoryContext mcxt;
	int			pins;
	std::list<txv8_cached_plan *>::iterator lru;
};

static const size_t txv8_plan_cache_size = 256;
static std::unordered_map<std::string, txv8_cached_plan *> *txv8_plan_cache;
static std::list<txv8_cached_plan *> txv8_plan_lru;

/*
 * The common case passes the same JS string (a literal) on every call: a small table
 * indexed by the string's hash finds its plan by identity (or equal content) without
 * converting it to the server encoding and hashing it again (~1.3 k instructions).
 */
static const int txv8_plan_by_js_size = 64;
static txv8_cached_plan *txv8_plan_by_js[txv8_plan_by_js_size];

static inline int
txv8_plan_by_js_slot(v8::Local<v8::String> s)
{
	return s->GetIdentityHash() & (txv8_plan_by_js_size - 1);
}

/* The cached plan of the statement in s, if s (or an equal string) was seen with it last; nullptr otherwise. */
static txv8_cached_plan *
txv8_cached_plan_find_js(v8::Local<v8::String> s)
{
	txv8_cached_plan *cp = txv8_plan_by_js[txv8_plan_by_js_slot(s)];

	if (cp == nullptr || cp->jsql.IsEmpty())
		return nullptr;
	if (cp->jsql != s && !cp->jsql.Get(txv8_isolate)->StringEquals(s))
		return nullptr;
	txv8_plan_lru.splice(txv8_plan_lru.begin(), txv8_plan_lru, cp->lru);
	return cp;
}

static void
txv8_cached_plan_remember_js(txv8_cached_plan *cp, v8::Local<v8::String> s)
{
	int			slot = txv8_plan_by_js_slot(s);
	txv8_cached_plan *old = txv8_plan_by_js[slot];

	if (old != nullptr && old != cp)
		old->jsql.Reset();
	for (int i = 0; i < txv8_plan_by_js_size; i++)	/* one slot per plan */
		if (txv8_plan_by_js[i] == cp)
			txv8_plan_by_js[i] = nullptr;
	cp->jsql.Reset(txv8_isolate, s);
	txv8_plan_by_js[slot] = cp;
}

/* The isolate goes: forget its strings (the plans stay, they are PostgreSQL's). */
static void
txv8_plan_by_js_forget(void)
{
	for (int i = 0; i < txv8_plan_by_js_size; i++)
		if (txv8_plan_by_js[i] != nullptr)
		{
			txv8_plan_by_js[i]->jsql.Reset();
			txv8_plan_by_js[i] = nullptr;
		}
}

static void
txv8_cached_plan_free(txv8_cached_plan *cp)
{
	for (int i = 0; i < txv8_plan_by_js_size; i++)
		if (txv8_plan_by_js[i] == cp)
			txv8_plan_by_js[i] = nullptr;
	cp->jsql.Reset();
	txv8_plan_cache->erase(cp->sql);
	txv8_plan_lru.erase(cp->lru);
	SPI_freeplan(cp->plan);
	MemoryContextDelete(cp->mcxt);
	delete cp;
}

/* Find or prepare; call inside txv8_subxact (preparing may fail). */
static txv8_cached_plan *
txv8_cached_plan_get(const char *sql)
{
	if (txv8_plan_cache == nullptr)
		txv8_plan_cache = new std::unordered_map<std::string, txv8_cached_plan *>();
	std::string key(sql);
	auto		it = txv8_plan_cache->find(key);

	if (it != txv8_plan_cache->end())
	{
		txv8_cached_plan *cp = it->second;

		txv8_plan_lru.splice(txv8_plan_lru.begin(), txv8_plan_lru, cp->lru);
		return cp;
	}

	MemoryContext volatile mcxt = nullptr;
	SPIPlanPtr volatile plan = nullptr;
	int volatile nargs = 0;
	txv8_typeinfo **volatile params = nullptr;

	try
	{
		txv8_pg([&] {
			mcxt = AllocSetContextCreate(TopMemoryContext, "txv8 cached plan", ALLOCSET_SMALL_SIZES);
			int			n;
			Oid		   *types;

			plan = txv8_spi_prepare_deduced(sql, &n, &types, mcxt);
			SPI_keepplan(plan);
			nargs = n;
			params = txv8_param_infos(n, types, mcxt);
		});
	}
	catch (txv8_pg_error &)
	{
		if (plan)
			SPI_freeplan(plan);
		if (mcxt)
			MemoryContextDelete(mcxt);
		throw;
	}

	txv8_cached_plan *cp = new txv8_cached_plan();

	cp->sql = std::move(key);
	cp->plan = plan;
	cp->nargs = nargs;
	cp->params = params;
	cp->mcxt = mcxt;
	txv8_plan_lru.push_front(cp);
	cp->lru = txv8_plan_lru.begin();
	(*txv8_plan_cache)[cp->sql] = cp;

	while (txv8_plan_lru.size() > txv8_plan_cache_size)
	{
		txv8_cached_plan *old = nullptr;

		for (auto r = txv8_plan_lru.rbegin(); r != txv8_plan_lru.rend(); ++r)
			if ((*r)->pins == 0 && *r != cp)
			{
				old = *r;
				break;
			}
		if (old == nullptr)
			break;
		txv8_cached_plan_free(old);
	}
	return cp;
}

void
txv8_spi_execute(const v8::FunctionCallbackInfo<v8::Value> &info)
{
	txv8_callback([&] {
		if (info.Length() < 1)
			return;
		txv8_values args;

		txv8_spi_connect();
		txv8_spi_collect_args(info, 1, args);
		bool		ro = txv8_spi_read_only();
		v8::Local<v8::Value> result;

		txv8_subxact([&] {
			txv8_scratch scratch;
			int volatile rc = 0;
			bool		str = info[0]->IsString();
			txv8_cached_plan *cp = nullptr;

			if (str && !args.empty())
				cp = txv8_cached_plan_find_js(info[0].As<v8::String>());
			if (cp == nullptr)
			{
				char	   *sql = txv8_string_to_server(info[0], nullptr);

				if (args.empty())
				{
					txv8_pg([&] {
						rc = SPI_execute(sql, ro, 0);
						MemoryContextSwitchTo(scratch.cxt);
					});
					result = txv8_spi_result(rc, nullptr, nullptr);
					return;
				}
				cp = txv8_cached_plan_get(sql);
				if (str)
					txv8_cached_plan_remember_js(cp, info[0].As<v8::String>());
			}
			struct pin
			{
				txv8_cached_plan *p;
				~pin()
				{
					p->pins--;
				}
			}			pinned{cp};

			cp->pins++;
			if ((size_t) cp->nargs != args.size())
				txv8_error(ERRCODE_INTERNAL_ERROR, "parameter numbers mismatch: %d != %d", cp->nargs, (int) args.size());
			txv8_params params;

			txv8_spi_params(args, cp->params, params);
			txv8_pg([&] {
				rc = SPI_execute_plan(cp->plan, params.values, params.nulls, ro, 0);
				MemoryContextSwitchTo(scratch.cxt);
			});
			result = txv8_spi_result(rc, &cp->rowconv, cp->mcxt);
		});
		info.GetReturnValue().Set(result);
	});
}

/* ---------- plv8.prepare and PreparedPlan ---------- */

struct txv8_plan
{
	SPIPlanPtr	plan;			/* NULL after free() */
	int			nargs;			/* -1 after free(), as plv8 reports it */
	bool		direct;			/* { subtransaction: false }: statements run without one */
	bool		counted;		/* its external memory was reported to the current isolate */
	txv8_typeinfo **params;
	txv8_rowconv *rowconv;
	MemoryContext mcxt;
	v8::Global<v8::Object> self;	/* weak: a collected plan is freed later */
};

static std::unordered_set<txv8_plan *> *txv8_plans;
static std::vector<txv8_plan *> txv8_unreachable;
static std::vector<SPIPlanPtr> txv8_deferred_frees;	/* free() while a scope was failed */

/* PostgreSQL's state waits for a rollback: plans must not be freed now (SPI_freeplan touches the plan cache). */
static bool
txv8_must_defer(void)
{
	return txv8_failed() || txv8_raising_failed;
}

/*
 * What a saved plan costs outside the JS heap, told to V8 so that a script preparing
 * plans without free() gets them collected (and freed) before they pile up.
 */
static const int64 txv8_plan_external_bytes = 32 * 1024;

static void
txv8_plan_destroy(txv8_plan *p)
{
	if (p->plan)
	{
		SPI_freeplan(p->plan);
		if (txv8_isolate && p->counted)
			txv8_isolate->AdjustAmountOfExternalAllocatedMemory(-txv8_plan_external_bytes);
	}
	MemoryContextDelete(p->mcxt);
	txv8_plans->erase(p);
	delete p;
}

static void
txv8_plan_weak(const v8::WeakCallbackInfo<txv8_plan> &data)
{
	txv8_plan  *p = data.GetParameter();

	p->self.Reset();
	txv8_unreachable.push_back(p);	/* freed when no JS runs: not from inside the GC */
}

void
txv8_spi_release_unreachable(void)
{
	if (txv8_must_defer())
		return;
	for (txv8_plan *p : txv8_unreachable)
		txv8_plan_destroy(p);
	txv8_unreachable.clear();
	for (SPIPlanPtr plan : txv8_deferred_frees)
		SPI_freeplan(plan);
	txv8_deferred_frees.clear();
}

/* The isolate goes: every plan is freed, or queued for freeing once PostgreSQL's state allows. */
void
txv8_spi_forget_all(void)
{
	txv8_plan_by_js_forget();
	if (txv8_plans == nullptr)
		return;
	std::vector<txv8_plan *> all(txv8_plans->begin(), txv8_plans->end());
	std::unordered_set<txv8_plan *> queued(txv8_unreachable.begin(), txv8_unreachable.end());

	for (txv8_plan *p : all)
	{
		p->self.Reset();
		p->counted = false;
		if (!queued.count(p))
			txv8_unreachable.push_back(p);
	}
	txv8_spi_release_unreachable();
}

/*
 * The options object of prepare (a txv8 extension; plv8 ignores it): { subtransaction:
 * false } makes the plan's execute() and cursor() (and that cursor's fetch/move) run
 * without a subtransaction of their own. Returns whether they do.
 */
static bool
txv8_prepare_direct(v8::Local<v8::Object> opts)
{
	v8::Local<v8::Context> ctx = txv8_isolate->GetCurrentContext();
	v8::Local<v8::Array> keys;
	bool		direct = false;

	if (!opts->GetOwnPropertyNames(ctx).ToLocal(&keys))
		throw txv8_js_thrown();
	for (uint32 i = 0; i < keys->Length(); i++)
	{
		v8::Local<v8::Value> k,
					v;

		if (!keys->Get(ctx, i).ToLocal(&k) || !opts->Get(ctx, k).ToLocal(&v))
			throw txv8_js_thrown();
		v8::String::Utf8Value name(txv8_isolate, k);

		if (*name == nullptr || strcmp(*name, "subtransaction") != 0)
			txv8_throw_error("plv8.prepare: unknown option \"%s\" (known: subtransaction)", *name ? *name : "?");
		if (v->IsUndefined())
			continue;
		if (!v->IsBoolean())
			txv8_throw_error("plv8.prepare: option subtransaction must be a boolean");
		direct = !v->IsTrue();
	}
	return direct;
}

void
txv8_spi_prepare(const v8::FunctionCallbackInfo<v8::Value> &info)
{
	txv8_callback([&] {
		if (info.Length() < 1)
			return;
		std::vector<v8::Local<v8::Value>> typenames;
		int			last = info.Length();
		bool		direct = false;

		/*
		 * prepare(sql, ['int', 'text']) or prepare(sql, 'int', 'text'), optionally followed by
		 * an options object: prepare(sql, types, { subtransaction: false }), where types may
		 * also be [], null or undefined (parameter types deduced).
		 */
		txv8_spi_connect();
		txv8_spi_release_unreachable();	/* plans collected meanwhile: nothing can be using them */
		if (last >= 2 && info[last - 1]->IsObject() && !info[last - 1]->IsArray() &&
			!info[last - 1]->IsStringObject())
		{
			direct = txv8_prepare_direct(info[last - 1].As<v8::Object>());
			last--;
		}
		if (last == 2 && info[1]->IsArray())
		{
			v8::Local<v8::Array> a = info[1].As<v8::Array>();
			v8::Local<v8::Context> ctx = txv8_isolate->GetCurrentContext();

			typenames.resize(a->Length());
			for (uint32 i = 0; i < a->Length(); i++)
				if (!a->Get(ctx, i).ToLocal(&typenames[i]))
					throw txv8_js_thrown();
		}
		else if (!(last == 2 && info[1]->IsNullOrUndefined()))
			for (int i = 1; i < last; i++)
				typenames.push_back(info[i]);

		MemoryContext volatile mcxt = nullptr;

		txv8_pg([&] { mcxt = AllocSetContextCreate(TopMemoryContext, "txv8 plan", ALLOCSET_SMALL_SIZES); });
		txv8_plan  *p = new txv8_plan();

		p->mcxt = mcxt;
		p->direct = direct;
		if (txv8_plans == nullptr)
			txv8_plans = new std::unordered_set<txv8_plan *>();
		txv8_plans->insert(p);
		try
		{
			txv8_subxact([&] {
				txv8_scratch scratch;
				char	   *sql = txv8_string_to_server(info[0], nullptr);
				int			n = (int) typenames.size();
				Oid		   *types = (Oid *) txv8_palloc(sizeof(Oid) * Max(n, 1));
				std::vector<char *> names(n);

				for (int i = 0; i < n; i++)
					names[i] = txv8_string_to_server(typenames[i], nullptr);
				txv8_pg([&] {
					SPIPlanPtr	plan;
					Oid		   *ptypes = types;

					if (n > 0)
					{
						for (int i = 0; i < n; i++)
						{
							int32		typmod;

							parseTypeString(names[i], &types[i], &typmod, false);
						}
						plan = SPI_prepare(sql, n, types);
						if (plan == NULL)
							elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
						p->nargs = n;
					}
					else
					{
						int			nn;

						plan = txv8_spi_prepare_deduced(sql, &nn, &ptypes, p->mcxt);
						p->nargs = nn;
					}
					SPI_keepplan(plan);
					p->plan = plan;
					p->params = txv8_param_infos(p->nargs, ptypes, p->mcxt);
				});
			});
		}
		catch (...)
		{
			txv8_plan_destroy(p);
			throw;
		}

		v8::Local<v8::Context> ctx = txv8_isolate->GetCurrentContext();
		v8::Local<v8::Object> obj;

		if (!txv8_template(TXV8_TEMPLATE_PLAN)->InstanceTemplate()->NewInstance(ctx).ToLocal(&obj))
		{
			txv8_plan_destroy(p);
			throw txv8_js_thrown();
		}
		obj->SetAlignedPointerInInternalField(0, p);
		txv8_isolate->AdjustAmountOfExternalAllocatedMemory(txv8_plan_external_bytes);
		p->counted = true;
		p->self.Reset(txv8_isolate, obj);
		p->self.SetWeak(p, txv8_plan_weak, v8::WeakCallbackType::kParameter);
		info.GetReturnValue().Set(obj);
	});
}

static txv8_plan *
txv8_plan_of(const v8::FunctionCallbackInfo<v8::Value> &info)
{
	v8::Local<v8::Object> self = info.This();

	if (!txv8_template(TXV8_TEMPLATE_PLAN)->HasInstance(self) || self->InternalFieldCount() < 1)
		txv8_throw_error("plan unexpectedly null");
	return (txv8_plan *) self->GetAlignedPointerFromInternalField(0);
}

/* Convert the plan's arguments; the count must match (plv8's message). */
static void
txv8_plan_args(const v8::FunctionCallbackInfo<v8::Value> &info, txv8_plan *p,
			   txv8_values &args)
{
	txv8_spi_collect_args(info, 0, args);
	if ((int) args.size() != p->nargs)
		txv8_throw_error("plan expected %d argument(s), given is %d", p->nargs, (int) args.size());
}

void
txv8_plan_execute(const v8::FunctionCallbackInfo<v8::Value> &info)
{
	txv8_callback([&] {
		txv8_plan  *p = txv8_plan_of(info);
		txv8_values args;

		txv8_spi_connect();
		txv8_plan_args(info, p, args);
		bool		ro = txv8_spi_read_only();
		v8::Local<v8::Value> result;

		txv8_statement(p->direct, [&] {
			txv8_scratch scratch;
			txv8_params params;
			int volatile rc = 0;

			txv8_spi_params(args, p->params, params);
			txv8_pg([&] {
				rc = SPI_execute_plan(p->plan, params.values, params.nulls, ro, 0);
				MemoryContextSwitchTo(scratch.cxt);
			});
			result = txv8_spi_result(rc, &p->rowconv, p->mcxt);
		});
		info.GetReturnValue().Set(result);
	});
}

void
txv8_plan_cursor(const v8::FunctionCallbackInfo<v8::Value> &info)
{
	txv8_callback([&] {
		txv8_plan  *p = txv8_plan_of(info);
		txv8_values args;

		txv8_spi_connect();
		txv8_plan_args(info, p, args);
		bool		ro = txv8_spi_read_only();
		Portal volatile portal = nullptr;

		txv8_statement(p->direct, [&] {
			txv8_scratch scratch;
			txv8_params params;

			txv8_spi_params(args, p->params, params);
			txv8_pg([&] {
				portal = SPI_cursor_open(NULL, p->plan, params.values, params.nulls, ro);
				MemoryContextSwitchTo(scratch.cxt);
			});
		});
		info.GetReturnValue().Set(txv8_cursor_new(portal, p->direct));
	});
}

void
txv8_plan_free(const v8::FunctionCallbackInfo<v8::Value> &info)
{
	txv8_callback([&] {
		txv8_plan  *p = txv8_plan_of(info);

		if (p->plan)
		{
			if (txv8_must_defer())
				txv8_deferred_frees.push_back(p->plan);
			else
				SPI_freeplan(p->plan);
			p->plan = nullptr;
			if (p->counted)
				txv8_isolate->AdjustAmountOfExternalAllocatedMemory(-txv8_plan_external_bytes);
			p->counted = false;
		}
		p->nargs = -1;
		info.GetReturnValue().Set(0);
	});
}

/* ---------- plv8.subtransaction, commit, rollback ---------- */

/*
 * fn() in a subtransaction: committed if it returns, rolled back if it throws (the exception
 * is rethrown unchanged). It is also a scope for statements without a subtransaction: one
 * that failed inside fails the frame, which is then rolled back however fn ends and throws
 * that statement's original Error.
 */
void
txv8_spi_subtransaction(const v8::FunctionCallbackInfo<v8::Value> &info)
{
	txv8_callback([&] {
		if (info.Length() < 1 || !info[0]->IsFunction())
			return;
		txv8_subxact_state s;
		txv8_scope	scope = {};
		v8::Local<v8::Value> r;
		v8::Local<v8::Value> failed_error;
		bool		ok,
					terminated = false;

		txv8_subxact_begin(&s, false);
		struct pushed
		{
			txv8_scope *s;
			pushed(txv8_scope *sc):s(sc)
			{
				s->prev = txv8_scope_top;
				txv8_scope_top = s;
			}
			~pushed()
			{
				txv8_scope_top = s->prev;
				txv8_scope_forget(s);
			}
		}			push(&scope);
		{
			v8::TryCatch tc(txv8_isolate);

			ok = info[0].As<v8::Function>()->Call(txv8_isolate->GetCurrentContext(),
												  v8::Undefined(txv8_isolate), 0, nullptr).ToLocal(&r);
			terminated = tc.HasTerminated() || txv8_isolate->IsExecutionTerminating();
			if (scope.failed != nullptr && !terminated)	/* tc cancels fn's own exception */
				failed_error = scope.error != nullptr ? scope.error->Get(txv8_isolate)
					: txv8_error_from_edata(scope.failed);
			else if (!ok && !terminated)
				tc.ReThrow();
		}
		if (!ok || scope.failed != nullptr)
		{
			txv8_subxact_abort(&s);
			if (!failed_error.IsEmpty())
				txv8_throw_value(failed_error);
			throw txv8_js_thrown();
		}
		txv8_subxact_commit(&s);
		info.GetReturnValue().Set(r);
	});
}

static void
txv8_transaction_end(bool commit)
{
	txv8_frame *f = txv8_current_frame;

	if (f == nullptr || !f->nonatomic)
	{
		v8::Local<v8::Object> err = v8::Exception::Error(
			txv8_string_internal("invalid transaction termination")).As<v8::Object>();
		v8::Local<v8::Context> ctx = txv8_isolate->GetCurrentContext();

		txv8_discard(err->CreateDataProperty(ctx, txv8_string_internal("sqlerrcode"), txv8_string_internal("2D000")));
		txv8_discard(err->CreateDataProperty(ctx, txv8_string_internal("code"),
									   v8::Integer::New(txv8_isolate, ERRCODE_INVALID_TRANSACTION_TERMINATION)));
		txv8_throw_value(err);
	}
	/* no subtransaction can wrap a commit: a failure here ends the call, uncatchable */
	txv8_spi_connect();
	txv8_pg([&] {
		if (commit)
			SPI_commit();
		else
			SPI_rollback();
	});
}

void
txv8_spi_commit(const v8::FunctionCallbackInfo<v8::Value> &info)
{
	txv8_callback([&] { txv8_transaction_end(true); });
}

void
txv8_spi_rollback(const v8::FunctionCallbackInfo<v8::Value> &info)
{
	txv8_callback([&] { txv8_transaction_end(false); });
}
