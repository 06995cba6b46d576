/* txv8_v8.h: the only header that includes V8; include it before any PostgreSQL header. */
#pragma once

#include <v8.h>
#include <libplatform/libplatform.h>
