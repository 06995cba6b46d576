/*
 * capture_context.c: the attribution columns of a change — xid, invocation_id, role,
 * application_name, tx_time — computed as the column defaults of txfn.provenance compute them
 * (migrations/system/…_txfn-provenance.sql), so the writer can forge none of them.
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

#include "capture.h"

/* current_user's name, kept until pg_authid changes (a rename) or the user does */
static Oid	role_cached_id = InvalidOid;
static char *role_cached_name = NULL;

static void
role_cache_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	role_cached_id = InvalidOid;
}

void
capture_context_init(void)
{
	CacheRegisterSyscacheCallback(AUTHOID, role_cache_invalidate, (Datum) 0);
}

/* current_user (as text: the column is text, current_user is a name) */
static Datum
current_role_text(void)
{
	Oid			user = GetUserId();

	if (user != role_cached_id || role_cached_name == NULL)
	{
		char	   *name = GetUserNameFromId(user, false);

		if (role_cached_name != NULL)
			pfree(role_cached_name);
		role_cached_name = NULL;
		role_cached_name = MemoryContextStrdup(TopMemoryContext, name);
		role_cached_id = user;
	}
	return PointerGetDatum(cstring_to_text(role_cached_name));
}

void
capture_context_get(CaptureContext *context)
{
	static CaptureGuc setting = {.name = "txfn.invocation_id"};
	const char *invocation = capture_guc_get(&setting);

	/* pg_current_xact_id() */
	context->xid = FullTransactionIdGetDatum(GetTopFullTransactionId());

	/* nullif(current_setting('txfn.invocation_id', true), '')::bigint */
	context->invocation_id_null = invocation == NULL || invocation[0] == '\0';
	context->invocation_id = context->invocation_id_null ? (Datum) 0 :
		DirectFunctionCall1(int8in, CStringGetDatum(invocation));

	/* current_user */
	context->role = current_role_text();

	/* nullif(current_setting('application_name'), '') */
	context->application_name_null = application_name == NULL || application_name[0] == '\0';
	context->application_name = context->application_name_null ? (Datum) 0 :
		PointerGetDatum(cstring_to_text(application_name));

	/* now() */
	context->tx_time = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
}
