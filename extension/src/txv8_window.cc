/* txv8_window.cc: plv8.get_window_object() and the WindowObject API for functions declared WINDOW. */
#include "txv8_exec.h"

#include "txv8_elog.h"
#include "txv8_spi.h"
#include "txv8_plv8.h"

/* Partition-local storage: capacity fixed by the first request, then a JSON text. */
struct txv8_window_local
{
	int32		capacity;
	int32		len;
	char		data[FLEXIBLE_ARRAY_MEMBER];
};

void
txv8_window_get_object(const v8::FunctionCallbackInfo<v8::Value> &info)
{
	txv8_callback([&] {
		txv8_frame *f = txv8_current_frame;

		if (f == nullptr || f->winobj == nullptr)
			txv8_throw_error("get_window_object called in wrong context");
		v8::Local<v8::Context> ctx = txv8_isolate->GetCurrentContext();
		v8::Local<v8::Object> obj;

		if (!txv8_template(TXV8_TEMPLATE_WINDOW)->InstanceTemplate()->NewInstance(ctx).ToLocal(&obj))
			throw txv8_js_thrown();
		obj->SetAlignedPointerInInternalField(0, f);
		txv8_discard(obj->CreateDataProperty(ctx, txv8_string_internal("SEEK_CURRENT"), v8::Integer::New(txv8_isolate, WINDOW_SEEK_CURRENT)));
		txv8_discard(obj->CreateDataProperty(ctx, txv8_string_internal("SEEK_HEAD"), v8::Integer::New(txv8_isolate, WINDOW_SEEK_HEAD)));
		txv8_discard(obj->CreateDataProperty(ctx, txv8_string_internal("SEEK_TAIL"), v8::Integer::New(txv8_isolate, WINDOW_SEEK_TAIL)));
		info.GetReturnValue().Set(obj);
	});
}

/* The frame of `this`, which must still be running (a kept WindowObject is refused later). */
static txv8_frame *
txv8_window_frame(const v8::FunctionCallbackInfo<v8::Value> &info)
{
	v8::Local<v8::Object> self = info.This();

	if (!txv8_template(TXV8_TEMPLATE_WINDOW)->HasInstance(self) || self->InternalFieldCount() < 1)
		txv8_throw_error("window function api called with wrong object");
	txv8_refuse_if_failed();	/* the window API runs the executor */
	txv8_frame *target = (txv8_frame *) self->GetAlignedPointerFromInternalField(0);

	for (txv8_frame *f = txv8_current_frame; f; f = f->prev)
		if (f == target && f->winobj != nullptr)
			return f;
	txv8_throw_error("window function api called with wrong object");
}

static int64
txv8_int_arg(const v8::FunctionCallbackInfo<v8::Value> &info, int i)
{
	int64		v = 0;

	if (i < info.Length() && !info[i]->IntegerValue(txv8_isolate->GetCurrentContext()).To(&v))
		throw txv8_js_thrown();
	return v;
}

static txv8_typeinfo *
txv8_window_arg_type(txv8_frame *f, int argno)
{
	txv8_callsite *cs = (txv8_callsite *) f->fcinfo->flinfo->fn_extra;

	if (argno < 0 || argno >= f->proc->njsargs)
		txv8_throw_error("argument number %d is out of range", argno);
	return &cs->args[argno];
}

static void
txv8_win_current_position(const v8::FunctionCallbackInfo<v8::Value> &info)
{
	txv8_callback([&] {
		txv8_frame *f = txv8_window_frame(info);
		int64 volatile r = 0;

		txv8_pg([&] { r = WinGetCurrentPosition(f->winobj); });
		info.GetReturnValue().Set((double) r);
	});
}

static void
txv8_win_partition_row_count(const v8::FunctionCallbackInfo<v8::Value> &info)
{
	txv8_callback([&] {
		txv8_frame *f = txv8_window_frame(info);
		int64 volatile r = 0;

		txv8_pg([&] { r = WinGetPartitionRowCount(f->winobj); });
		info.GetReturnValue().Set((double) r);
	});
}

static void
txv8_win_set_mark_position(const v8::FunctionCallbackInfo<v8::Value> &info)
{
	txv8_callback([&] {
		txv8_frame *f = txv8_window_frame(info);
		int64		pos = txv8_int_arg(info, 0);

		txv8_pg([&] { WinSetMarkPosition(f->winobj, pos); });
	});
}

static void
txv8_win_rows_are_peers(const v8::FunctionCallbackInfo<v8::Value> &info)
{
	txv8_callback([&] {
		txv8_frame *f = txv8_window_frame(info);
		int64		p1 = txv8_int_arg(info, 0),
					p2 = txv8_int_arg(info, 1);
		bool volatile r = false;

		txv8_pg([&] { r = WinRowsArePeers(f->winobj, p1, p2); });
		info.GetReturnValue().Set(r);
	});
}

/* get_func_arg_in_partition / _in_frame(argno, relpos, seektype, set_mark): out of range -> undefined. */
static void
txv8_win_func_arg(const v8::FunctionCallbackInfo<v8::Value> &info, bool in_frame)
{
	txv8_callback([&] {
		txv8_frame *f = txv8_window_frame(info);

		if (info.Length() < 4)
			txv8_throw_error("argument not enough");
		int			argno = (int) txv8_int_arg(info, 0);
		int			relpos = (int) txv8_int_arg(info, 1);
		int			seektype = (int) txv8_int_arg(info, 2);
		bool		set_mark = info[3]->BooleanValue(txv8_isolate);
		txv8_typeinfo *ti = txv8_window_arg_type(f, argno);
		bool		isnull = false,
					isout = false;
		Datum volatile d = 0;

		txv8_pg([&] {
			bool		n,
						o;

			d = in_frame ? WinGetFuncArgInFrame(f->winobj, argno, relpos, seektype, set_mark, &n, &o)
				: WinGetFuncArgInPartition(f->winobj, argno, relpos, seektype, set_mark, &n, &o);
			isnull = n;
			isout = o;
		});
		if (isout)
			return;
		info.GetReturnValue().Set(txv8_datum_to_value(ti, d, isnull));
	});
}

static void
txv8_win_arg_in_partition(const v8::FunctionCallbackInfo<v8::Value> &info)
{
	txv8_win_func_arg(info, false);
}

static void
txv8_win_arg_in_frame(const v8::FunctionCallbackInfo<v8::Value> &info)
{
	txv8_win_func_arg(info, true);
}

static void
txv8_win_arg_current(const v8::FunctionCallbackInfo<v8::Value> &info)
{
	txv8_callback([&] {
		txv8_frame *f = txv8_window_frame(info);
		int			argno = (int) txv8_int_arg(info, 0);
		txv8_typeinfo *ti = txv8_window_arg_type(f, argno);
		bool		isnull = false;
		Datum volatile d = 0;

		txv8_pg([&] {
			bool		n;

			d = WinGetFuncArgCurrent(f->winobj, argno, &n);
			isnull = n;
		});
		info.GetReturnValue().Set(txv8_datum_to_value(ti, d, isnull));
	});
}

static txv8_window_local *
txv8_window_local_get(txv8_frame *f, int64 size)
{
	txv8_window_local *volatile mem = nullptr;
	Size		sz = offsetof(txv8_window_local, data) + (Size) Max(size, 0);

	txv8_pg([&] { mem = (txv8_window_local *) WinGetPartitionLocalMemory(f->winobj, sz); });
	if (mem->capacity == 0)
		mem->capacity = (int32) Max(size, 0);
	return mem;
}

static void
txv8_win_get_partition_local(const v8::FunctionCallbackInfo<v8::Value> &info)
{
	txv8_callback([&] {
		txv8_frame *f = txv8_window_frame(info);
		int64		size = info.Length() > 0 ? txv8_int_arg(info, 0) : 1000;
		txv8_window_local *mem = txv8_window_local_get(f, size);

		if (mem->len == 0)
			return;
		v8::Local<v8::Value> v;

		if (!v8::JSON::Parse(txv8_isolate->GetCurrentContext(),
							 txv8_string_from_server(mem->data, mem->len)).ToLocal(&v))
			throw txv8_js_thrown();
		info.GetReturnValue().Set(v);
	});
}

static void
txv8_win_set_partition_local(const v8::FunctionCallbackInfo<v8::Value> &info)
{
	txv8_callback([&] {
		txv8_frame *f = txv8_window_frame(info);
		v8::Local<v8::String> json;

		if (info.Length() < 1 ||
			!v8::JSON::Stringify(txv8_isolate->GetCurrentContext(), info[0]).ToLocal(&json))
			throw txv8_js_thrown();
		txv8_scratch scratch;
		int			len;
		char	   *s = txv8_string_to_server(json, &len);
		txv8_window_local *mem = txv8_window_local_get(f, Max(len, 1000));

		if (len > mem->capacity)
			txv8_throw_error("window local memory overflow");
		memcpy(mem->data, s, len);
		mem->len = len;
	});
}

void
txv8_window_methods(v8::Local<v8::FunctionTemplate> tmpl)
{
	v8::Local<v8::ObjectTemplate> p = tmpl->PrototypeTemplate();
	auto		add = [&](const char *name, v8::FunctionCallback cb) {
		p->Set(txv8_string_internal(name), v8::FunctionTemplate::New(txv8_isolate, cb));
	};

	add("get_current_position", txv8_win_current_position);
	add("get_partition_row_count", txv8_win_partition_row_count);
	add("set_mark_position", txv8_win_set_mark_position);
	add("rows_are_peers", txv8_win_rows_are_peers);
	add("get_func_arg_in_partition", txv8_win_arg_in_partition);
	add("get_func_arg_in_frame", txv8_win_arg_in_frame);
	add("get_func_arg_current", txv8_win_arg_current);
	add("get_partition_local", txv8_win_get_partition_local);
	add("set_partition_local", txv8_win_set_partition_local);
}
