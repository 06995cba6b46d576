/*
 * txv8_main.cc: module initialisation and the SQL-callable entry points (call handler,
 * inline handler, validator).
 *
 * First cut that proves the toolchain: scalar arguments and results go through the
 * types' text forms; json/jsonb through JSON.parse/stringify. The complete handler
 * (type conversion, SPI, errors, triggers, SRFs) replaces these pieces file by file.
 */
#include "txv8_v8.h"

#include <csignal>
#include <memory>
#include <string>
#include <vector>

extern "C" {
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

PG_MODULE_MAGIC;

void _PG_init(void);
PGDLLEXPORT Datum txv8_call_handler(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum txv8_inline_handler(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum txv8_call_validator(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(txv8_call_handler);
PG_FUNCTION_INFO_V1(txv8_inline_handler);
PG_FUNCTION_INFO_V1(txv8_call_validator);
}

static std::unique_ptr<v8::Platform> txv8_platform;
static v8::Isolate *txv8_isolate = nullptr;
static v8::Global<v8::Context> txv8_context;

/* Start V8 once per backend (never in the postmaster: threads do not survive fork). */
static void
txv8_engine_start(void)
{
	if (txv8_isolate != nullptr)
		return;

	/* The platform's worker threads must never receive PostgreSQL's signals. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	txv8_platform = v8::platform::NewDefaultPlatform();
	v8::V8::InitializePlatform(txv8_platform.get());
	v8::V8::Initialize();
	pthread_sigmask(SIG_SETMASK, &old, nullptr);

	v8::Isolate::CreateParams params;
	params.array_buffer_allocator = v8::ArrayBuffer::Allocator::NewDefaultAllocator();
	txv8_isolate = v8::Isolate::New(params);

	/* Leave V8 the same stack PostgreSQL allows itself (max_stack_depth, in kB). */
	char here;
	uintptr_t limit = reinterpret_cast<uintptr_t>(&here) - (uintptr_t) max_stack_depth * 1024;
	txv8_isolate->SetStackLimit(limit);

	v8::Isolate::Scope iscope(txv8_isolate);
	v8::HandleScope hscope(txv8_isolate);
	txv8_context.Reset(txv8_isolate, v8::Context::New(txv8_isolate));
}

void
_PG_init(void)
{
	/* Nothing that starts threads here: with shared_preload_libraries this runs in the postmaster. */
}

/* Result of running JS: either a text value (or NULL) or an error message. */
struct txv8_outcome
{
	bool is_null = true;
	std::string text;
	bool failed = false;
	std::string error;
};

static std::string
txv8_exception_text(v8::Isolate *isolate, v8::TryCatch &tc)
{
	v8::String::Utf8Value msg(isolate, tc.Exception());
	std::string s = *msg ? *msg : "unknown JavaScript exception";
	if (s.rfind("Error: ", 0) == 0)
		s = s.substr(7);
	return s;
}

/*
 * Compile "(function (<args>) {\n<body>\n})" and call it with the given arguments
 * (already in text form; json/jsonb are parsed). No PostgreSQL call happens while V8
 * scopes are live, so no longjmp can cross them.
 */
static txv8_outcome
txv8_run(const std::string &name, const std::vector<std::string> &argnames,
		 const std::string &body, const std::vector<std::pair<bool, std::string>> &args,
		 const std::vector<char> &argkinds, char retkind)
{
	txv8_outcome out;
	v8::Isolate *isolate = txv8_isolate;
	v8::Isolate::Scope iscope(isolate);
	v8::HandleScope hscope(isolate);
	v8::Local<v8::Context> context = txv8_context.Get(isolate);
	v8::Context::Scope cscope(context);
	v8::TryCatch tc(isolate);

	std::string src = "(function (";
	for (size_t i = 0; i < argnames.size(); i++)
		src += (i ? "," : "") + argnames[i];
	src += ") {\n" + body + "\n})";

	v8::Local<v8::String> source = v8::String::NewFromUtf8(isolate, src.c_str()).ToLocalChecked();
	v8::ScriptOrigin origin(isolate, v8::String::NewFromUtf8(isolate, name.c_str()).ToLocalChecked());
	v8::Local<v8::Script> script;
	v8::Local<v8::Value> fnval;
	if (!v8::Script::Compile(context, source, &origin).ToLocal(&script) ||
		!script->Run(context).ToLocal(&fnval) || !fnval->IsFunction())
	{
		out.failed = true;
		out.error = txv8_exception_text(isolate, tc);
		return out;
	}

	std::vector<v8::Local<v8::Value>> argv;
	for (size_t i = 0; i < args.size(); i++)
	{
		if (args[i].first)
		{
			argv.push_back(v8::Null(isolate));
			continue;
		}
		v8::Local<v8::String> s = v8::String::NewFromUtf8(isolate, args[i].second.c_str()).ToLocalChecked();
		v8::Local<v8::Value> v = s;
		switch (argkinds[i])
		{
			case 'n':
				v = v8::Number::New(isolate, strtod(args[i].second.c_str(), nullptr));
				break;
			case 'b':
				v = v8::Boolean::New(isolate, args[i].second == "t");
				break;
			case 'j':
				if (!v8::JSON::Parse(context, s).ToLocal(&v))
				{
					out.failed = true;
					out.error = txv8_exception_text(isolate, tc);
					return out;
				}
				break;
		}
		argv.push_back(v);
	}

	v8::Local<v8::Value> result;
	if (!fnval.As<v8::Function>()->Call(context, context->Global(), (int) argv.size(), argv.data()).ToLocal(&result))
	{
		out.failed = true;
		out.error = txv8_exception_text(isolate, tc);
		return out;
	}
	if (result->IsNullOrUndefined())
		return out;
	out.is_null = false;
	v8::Local<v8::Value> textual = result;
	if (retkind == 'j')
	{
		v8::Local<v8::String> json;
		if (!v8::JSON::Stringify(context, result).ToLocal(&json))
		{
			out.failed = true;
			out.error = txv8_exception_text(isolate, tc);
			return out;
		}
		textual = json;
	}
	else if (retkind == 'n' && result->IsNumber())
	{
		double d = result.As<v8::Number>()->Value();
		if (d == (double) (int64_t) d)
			textual = v8::BigInt::New(isolate, (int64_t) d);
	}
	v8::String::Utf8Value utf8(isolate, textual);
	out.text = *utf8 ? *utf8 : "";
	return out;
}

static char
txv8_type_kind(Oid typid)
{
	switch (typid)
	{
		case INT2OID: case INT4OID: case INT8OID: case FLOAT4OID: case FLOAT8OID: case NUMERICOID:
			return 'n';
		case BOOLOID:
			return 'b';
		case JSONOID: case JSONBOID:
			return 'j';
		default:
			return 's';
	}
}

Datum
txv8_call_handler(PG_FUNCTION_ARGS)
{
	Oid			fn_oid = fcinfo->flinfo->fn_oid;
	HeapTuple	proctup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));
	if (!HeapTupleIsValid(proctup))
		elog(ERROR, "cache lookup failed for function %u", fn_oid);
	Form_pg_proc procform = (Form_pg_proc) GETSTRUCT(proctup);

	bool		isnull;
	Datum		srcdatum = SysCacheGetAttr(PROCOID, proctup, Anum_pg_proc_prosrc, &isnull);
	std::string body = TextDatumGetCString(srcdatum);
	std::string name = NameStr(procform->proname);
	Oid			rettype = procform->prorettype;

	Oid		   *argtypes;
	char	  **argnamesc;
	char	   *argmodes;
	int			nargs = get_func_arg_info(proctup, &argtypes, &argnamesc, &argmodes);
	ReleaseSysCache(proctup);

	std::vector<std::string> argnames;
	std::vector<std::pair<bool, std::string>> args;
	std::vector<char> kinds;
	for (int i = 0; i < nargs; i++)
	{
		argnames.push_back(argnamesc && argnamesc[i] && argnamesc[i][0] ? argnamesc[i] : "$" + std::to_string(i + 1));
		if (fcinfo->args[i].isnull)
			args.emplace_back(true, "");
		else
		{
			Oid			outfn;
			bool		varlena;
			getTypeOutputInfo(argtypes[i], &outfn, &varlena);
			args.emplace_back(false, OidOutputFunctionCall(outfn, fcinfo->args[i].value));
		}
		kinds.push_back(txv8_type_kind(argtypes[i]));
	}

	txv8_engine_start();
	txv8_outcome out = txv8_run(name, argnames, body, args, kinds, txv8_type_kind(rettype));
	if (out.failed)
		ereport(ERROR, (errmsg("%s", out.error.c_str())));
	if (out.is_null || rettype == VOIDOID)
	{
		if (rettype == VOIDOID)
			PG_RETURN_VOID();
		PG_RETURN_NULL();
	}
	Oid			infn;
	Oid			ioparam;
	getTypeInputInfo(rettype, &infn, &ioparam);
	return OidInputFunctionCall(infn, (char *) out.text.c_str(), ioparam, -1);
}

Datum
txv8_inline_handler(PG_FUNCTION_ARGS)
{
	InlineCodeBlock *codeblock = (InlineCodeBlock *) DatumGetPointer(PG_GETARG_DATUM(0));
	txv8_engine_start();
	txv8_outcome out = txv8_run("", {}, codeblock->source_text, {}, {}, 's');
	if (out.failed)
		ereport(ERROR, (errmsg("%s", out.error.c_str())));
	PG_RETURN_VOID();
}

Datum
txv8_call_validator(PG_FUNCTION_ARGS)
{
	PG_RETURN_VOID();
}
