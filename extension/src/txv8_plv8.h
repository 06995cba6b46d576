/* txv8_plv8.h: the global plv8 object and the object templates (PreparedPlan, Cursor, WindowObject). */
#pragma once

#include "txv8_pg.h"

enum txv8_template_kind
{
	TXV8_TEMPLATE_PLAN,
	TXV8_TEMPLATE_CURSOR,
	TXV8_TEMPLATE_WINDOW,
	TXV8_TEMPLATE_COUNT
};

/* The isolate's template of kind k (built on first use; inside V8 scopes). */
v8::Local<v8::FunctionTemplate> txv8_template(txv8_template_kind k);
void		txv8_plv8_templates_reset(void);

/* Put `plv8` and the elog level constants into a new context's global object. */
void		txv8_plv8_install(v8::Local<v8::Context> context);

/* Window API (txv8_window.cc) */
void		txv8_window_get_object(const v8::FunctionCallbackInfo<v8::Value> &info);
void		txv8_window_methods(v8::Local<v8::FunctionTemplate> tmpl);

#define TXV8_PLV8_VERSION "3.2.2"		/* the plv8 release whose API txv8 implements */
#define TXV8_VERSION "1.1"		/* 1.1: plv8.prepare(sql, types, { subtransaction: false }) */
