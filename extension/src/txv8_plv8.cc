/* txv8_plv8.cc: the plv8 object: elog and its levels, quoting, find_function, return_next, memory_usage, versions. */
#include "txv8_plv8.h"

#include <string>

#include "txv8_exec.h"
#include "txv8_spi.h"

extern "C" {
#include "utils/acl.h"
#include "utils/regproc.h"
}

static v8::Global<v8::FunctionTemplate> txv8_templates[TXV8_TEMPLATE_COUNT];
static v8::Global<v8::ObjectTemplate> txv8_plv8_template;

/* ---------- plv8.elog ---------- */

static const struct
{
	const char *name;
	int			level;
}			txv8_levels[] = {
	{"DEBUG5", DEBUG5}, {"DEBUG4", DEBUG4}, {"DEBUG3", DEBUG3}, {"DEBUG2", DEBUG2},
	{"DEBUG1", DEBUG1}, {"DEBUG", DEBUG5}, {"LOG", LOG}, {"INFO", INFO},
	{"NOTICE", NOTICE}, {"WARNING", WARNING}, {"ERROR", ERROR},
};

/* elog(level, ...args): args as String(x) joined by spaces; ERROR throws a catchable Error. */
static void
txv8_elog_cb(const v8::FunctionCallbackInfo<v8::Value> &info)
{
	txv8_callback([&] {
		v8::Local<v8::Context> ctx = txv8_isolate->GetCurrentContext();

		if (info.Length() < 2)
			txv8_throw_value(txv8_string_internal("usage: plv8.elog(elevel, ...)"));
		int			level = info[0]->Int32Value(ctx).FromMaybe(0);
		bool		known = false;

		for (const auto &l : txv8_levels)
			known |= l.level == level;
		if (!known)
			txv8_throw_value(txv8_string_internal("invalid error level"));

		txv8_scratch scratch;
		StringInfoData msg;

		initStringInfo(&msg);
		for (int i = 1; i < info.Length(); i++)
		{
			if (i > 1)
				appendStringInfoChar(&msg, ' ');
			appendStringInfoString(&msg, txv8_string_to_server(info[i], nullptr));
		}
		if (level == ERROR)
			txv8_throw_value(v8::Exception::Error(txv8_string_from_server(msg.data, msg.len)));
		txv8_pg([&] { ereport(level, (errmsg_internal("%s", msg.data))); });
	});
}

/* ---------- quoting ---------- */

static void
txv8_quote(const v8::FunctionCallbackInfo<v8::Value> &info, char kind)
{
	txv8_callback([&] {
		if (info.Length() < 1)
			return;
		if (kind == 'n' && info[0]->IsNullOrUndefined())
		{
			info.GetReturnValue().Set(txv8_string_internal("NULL"));
			return;
		}
		txv8_scratch scratch;
		char	   *s = txv8_string_to_server(info[0], nullptr);
		const char *volatile q = nullptr;

		txv8_pg([&] { q = kind == 'i' ? quote_identifier(s) : quote_literal_cstr(s); });
		info.GetReturnValue().Set(txv8_string_from_server(q, (int) strlen(q)));
	});
}

static void
txv8_quote_literal_cb(const v8::FunctionCallbackInfo<v8::Value> &info)
{
	txv8_quote(info, 'l');
}

static void
txv8_quote_nullable_cb(const v8::FunctionCallbackInfo<v8::Value> &info)
{
	txv8_quote(info, 'n');
}

static void
txv8_quote_ident_cb(const v8::FunctionCallbackInfo<v8::Value> &info)
{
	txv8_quote(info, 'i');
}

/* ---------- plv8.find_function ---------- */

/*
 * The compiled JS function of a txv8 function, called directly: no conversion, no SPI
 * frame, no STRICT. Missing function: a catchable error; no EXECUTE privilege: a
 * WARNING and undefined; another language: an Error.
 */
static void
txv8_find_function_cb(const v8::FunctionCallbackInfo<v8::Value> &info)
{
	txv8_callback([&] {
		if (info.Length() < 1)
			return;
		txv8_scratch scratch;
		char	   *sig = txv8_string_to_server(info[0], nullptr);
		Oid volatile fnoid = InvalidOid;

		txv8_subxact([&] {
			txv8_pg([&] {
				Datum		d = CStringGetDatum(sig);

				fnoid = DatumGetObjectId(strchr(sig, '(') ? DirectFunctionCall1(regprocedurein, d)
										 : DirectFunctionCall1(regprocin, d));
			});
		});

		bool volatile allowed = false,
					ours = false;

		txv8_pg([&] {
			allowed = pg_proc_aclcheck(fnoid, GetUserId(), ACL_EXECUTE) == ACLCHECK_OK;
			if (!allowed)
				ereport(WARNING, (errmsg("failed to find or no permission for js function %s", sig)));
			HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fnoid));

			if (HeapTupleIsValid(tup))
			{
				ours = txv8_procedure_is_txv8(tup);
				ReleaseSysCache(tup);
			}
		});
		if (!allowed)
			return;
		if (!ours)
			txv8_throw_error("javascript function is not found for \"%s\"", sig);

		txv8_proc  *volatile proc = nullptr;

		txv8_subxact([&] { txv8_pg([&] { proc = txv8_procedure_get(fnoid); }); });
		info.GetReturnValue().Set(txv8_procedure_function(proc, txv8_running_context));
	});
}

/* ---------- misc ---------- */

static void
txv8_return_next_cb(const v8::FunctionCallbackInfo<v8::Value> &info)
{
	txv8_callback([&] {
		txv8_exec_return_next(info.Length() > 0 ? info[0] : v8::Undefined(txv8_isolate).As<v8::Value>());
	});
}

static void
txv8_memory_usage_cb(const v8::FunctionCallbackInfo<v8::Value> &info)
{
	txv8_callback([&] {
		v8::HeapStatistics hs;
		v8::Local<v8::Context> ctx = txv8_isolate->GetCurrentContext();
		v8::Local<v8::Object> o = v8::Object::New(txv8_isolate);

		txv8_isolate->GetHeapStatistics(&hs);
		txv8_discard(o->CreateDataProperty(ctx, txv8_string_internal("total_heap_size"),
									 v8::Number::New(txv8_isolate, (double) hs.total_heap_size())));
		txv8_discard(o->CreateDataProperty(ctx, txv8_string_internal("used_heap_size"),
									 v8::Number::New(txv8_isolate, (double) hs.used_heap_size())));
		txv8_discard(o->CreateDataProperty(ctx, txv8_string_internal("external_memory"),
									 v8::Number::New(txv8_isolate, (double) hs.external_memory())));
		info.GetReturnValue().Set(o);
	});
}

/* ---------- templates ---------- */

static void
txv8_method(v8::Local<v8::Template> t, const char *name, v8::FunctionCallback cb)
{
	t->Set(txv8_string_internal(name), v8::FunctionTemplate::New(txv8_isolate, cb));
}

static v8::Local<v8::FunctionTemplate>
txv8_class(const char *name, int fields)
{
	v8::Local<v8::FunctionTemplate> t = v8::FunctionTemplate::New(txv8_isolate);

	t->SetClassName(txv8_string_internal(name));
	t->InstanceTemplate()->SetInternalFieldCount(fields);
	t->PrototypeTemplate()->Set(v8::Symbol::GetToStringTag(txv8_isolate), txv8_string_internal(name),
								static_cast<v8::PropertyAttribute>(v8::ReadOnly | v8::DontEnum));
	return t;
}

static void
txv8_templates_init(void)
{
	v8::Local<v8::FunctionTemplate> plan = txv8_class("PreparedPlan", 1);

	txv8_method(plan->PrototypeTemplate(), "execute", txv8_plan_execute);
	txv8_method(plan->PrototypeTemplate(), "cursor", txv8_plan_cursor);
	txv8_method(plan->PrototypeTemplate(), "free", txv8_plan_free);
	txv8_templates[TXV8_TEMPLATE_PLAN].Reset(txv8_isolate, plan);

	v8::Local<v8::FunctionTemplate> cursor = txv8_class("Cursor", 2);

	txv8_method(cursor->PrototypeTemplate(), "fetch", txv8_cursor_fetch);
	txv8_method(cursor->PrototypeTemplate(), "move", txv8_cursor_move);
	txv8_method(cursor->PrototypeTemplate(), "close", txv8_cursor_close);
	txv8_templates[TXV8_TEMPLATE_CURSOR].Reset(txv8_isolate, cursor);

	v8::Local<v8::FunctionTemplate> window = txv8_class("WindowObject", 1);

	txv8_window_methods(window);
	txv8_templates[TXV8_TEMPLATE_WINDOW].Reset(txv8_isolate, window);

	v8::Local<v8::ObjectTemplate> p = v8::ObjectTemplate::New(txv8_isolate);

	txv8_method(p, "execute", txv8_spi_execute);
	txv8_method(p, "prepare", txv8_spi_prepare);
	txv8_method(p, "subtransaction", txv8_spi_subtransaction);
	txv8_method(p, "commit", txv8_spi_commit);
	txv8_method(p, "rollback", txv8_spi_rollback);
	txv8_method(p, "elog", txv8_elog_cb);
	txv8_method(p, "quote_literal", txv8_quote_literal_cb);
	txv8_method(p, "quote_nullable", txv8_quote_nullable_cb);
	txv8_method(p, "quote_ident", txv8_quote_ident_cb);
	txv8_method(p, "find_function", txv8_find_function_cb);
	txv8_method(p, "return_next", txv8_return_next_cb);
	txv8_method(p, "get_window_object", txv8_window_get_object);
	txv8_method(p, "memory_usage", txv8_memory_usage_cb);
	p->Set(txv8_string_internal("version"), txv8_string_internal(TXV8_PLV8_VERSION));
	p->Set(txv8_string_internal("v8_version"), txv8_string_internal(v8::V8::GetVersion()));
	p->Set(txv8_string_internal("txv8_version"), txv8_string_internal(TXV8_VERSION), v8::DontEnum);
	txv8_plv8_template.Reset(txv8_isolate, p);
}

v8::Local<v8::FunctionTemplate>
txv8_template(txv8_template_kind k)
{
	if (txv8_templates[k].IsEmpty())
		txv8_templates_init();
	return txv8_templates[k].Get(txv8_isolate);
}

void
txv8_plv8_templates_reset(void)
{
	for (auto &t : txv8_templates)
		t.Reset();
	txv8_plv8_template.Reset();
}

void
txv8_plv8_install(v8::Local<v8::Context> context)
{
	if (txv8_plv8_template.IsEmpty())
		txv8_templates_init();
	v8::Local<v8::Object> global = context->Global();
	v8::Local<v8::Object> plv8 = txv8_plv8_template.Get(txv8_isolate)->NewInstance(context).ToLocalChecked();

	txv8_discard(global->Set(context, txv8_string_internal("plv8"), plv8));
	for (const auto &l : txv8_levels)
		txv8_discard(global->Set(context, txv8_string_internal(l.name), v8::Integer::New(txv8_isolate, l.level)));
}
