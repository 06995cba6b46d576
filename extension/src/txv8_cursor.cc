/* txv8_cursor.cc: the Cursor object of plan.cursor(): fetch, move, close (found by portal name, so never dangling). */
#include "txv8_spi.h"

#include "txv8_exec.h"
#include "txv8_plv8.h"

extern "C" {
#include "utils/portal.h"
}

/* direct: opened by a plan prepared with { subtransaction: false }; fetch and move run without one too. */
v8::Local<v8::Object>
txv8_cursor_new(Portal portal, bool direct)
{
	v8::Local<v8::Context> ctx = txv8_isolate->GetCurrentContext();
	v8::Local<v8::Object> obj;

	if (!txv8_template(TXV8_TEMPLATE_CURSOR)->InstanceTemplate()->NewInstance(ctx).ToLocal(&obj))
		throw txv8_js_thrown();
	obj->SetInternalField(0, txv8_string_from_server(portal->name, (int) strlen(portal->name)));
	obj->SetInternalField(1, v8::Boolean::New(txv8_isolate, direct));
	return obj;
}

/* The portal behind `this`; a foreign receiver, a closed cursor or a finished transaction: "cannot find cursor". */
static Portal
txv8_cursor_portal(const v8::FunctionCallbackInfo<v8::Value> &info, bool *direct = nullptr)
{
	v8::Local<v8::Object> self = info.This();

	if (!txv8_template(TXV8_TEMPLATE_CURSOR)->HasInstance(self) || self->InternalFieldCount() < 2)
		txv8_throw_error("cannot find cursor");
	txv8_refuse_if_failed();
	if (direct != nullptr)
		*direct = self->GetInternalField(1)->IsTrue();
	v8::Local<v8::Value> name = self->GetInternalField(0);

	if (!name->IsString())
		txv8_throw_error("cannot find cursor");
	txv8_scratch scratch;
	char	   *cname = txv8_string_to_server(name, nullptr);
	Portal		portal = SPI_cursor_find(cname);

	if (portal == NULL)
		txv8_throw_error("cannot find cursor");
	txv8_spi_connect();
	return portal;
}

/* fetch() -> the next row or undefined; fetch(n) -> up to |n| rows (backward when n < 0), [] at the end. */
void
txv8_cursor_fetch(const v8::FunctionCallbackInfo<v8::Value> &info)
{
	txv8_callback([&] {
		bool		direct;
		Portal		portal = txv8_cursor_portal(info, &direct);
		bool		single = info.Length() < 1 || info[0]->IsUndefined();
		int64		n = 1;

		if (!single)
		{
			v8::Local<v8::Context> ctx = txv8_isolate->GetCurrentContext();

			if (!info[0]->IntegerValue(ctx).To(&n))
				throw txv8_js_thrown();
		}
		bool		forward = n >= 0;
		long		count = (long) (n < 0 ? -n : n);
		v8::Local<v8::Value> result;

		txv8_statement(direct, [&] {
			txv8_scratch scratch;

			txv8_pg([&] {
				SPI_cursor_fetch(portal, forward, count);
				MemoryContextSwitchTo(scratch.cxt);
			});
			v8::Local<v8::Value> rows = txv8_spi_result(SPI_OK_SELECT, nullptr, nullptr);

			if (!single)
				result = rows;
			else if (rows->IsArray() && rows.As<v8::Array>()->Length() > 0)
			{
				if (!rows.As<v8::Array>()->Get(txv8_isolate->GetCurrentContext(), 0).ToLocal(&result))
					throw txv8_js_thrown();
			}
			else
				result = v8::Undefined(txv8_isolate);
		});
		info.GetReturnValue().Set(result);
	});
}

/* move(n): skip |n| rows (backward when n < 0); move() does nothing. */
void
txv8_cursor_move(const v8::FunctionCallbackInfo<v8::Value> &info)
{
	txv8_callback([&] {
		bool		direct;
		Portal		portal = txv8_cursor_portal(info, &direct);

		if (info.Length() < 1)
			return;
		int64		n;

		if (!info[0]->IntegerValue(txv8_isolate->GetCurrentContext()).To(&n))
			throw txv8_js_thrown();
		txv8_statement(direct, [&] {
			txv8_pg([&] { SPI_cursor_move(portal, n >= 0, (long) (n < 0 ? -n : n)); });
		});
	});
}

void
txv8_cursor_close(const v8::FunctionCallbackInfo<v8::Value> &info)
{
	txv8_callback([&] {
		Portal		portal = txv8_cursor_portal(info);

		txv8_pg([&] { SPI_cursor_close(portal); });
		info.GetReturnValue().Set(1);
	});
}
