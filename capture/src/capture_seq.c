/*
 * capture_seq.c: the next number of the transaction's change sequence — the transaction-local
 * setting txfn.provenance_seq, exactly as the PL/pgSQL functions keep it.
 */
#include "postgres.h"

#include "common/int.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "capture.h"

#define SEQ_SETTING "txfn.provenance_seq"

/*
 * set_config('txfn.provenance_seq', (coalesce(nullif(current_setting('txfn.provenance_seq',
 * true), ''), '0')::integer + 1)::text, true)::integer
 */
int32
capture_seq_next(void)
{
	static CaptureGuc setting = {.name = SEQ_SETTING};
	const char *cur = capture_guc_get(&setting);
	int32		s = 0;
	char		buf[12];

	if (cur != NULL && cur[0] != '\0')
		s = DatumGetInt32(DirectFunctionCall1(int4in, CStringGetDatum(cur)));
	if (pg_add_s32_overflow(s, 1, &s))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("integer out of range")));
	pg_ltoa(s, buf);
	(void) set_config_option(SEQ_SETTING, buf, superuser() ? PGC_SUSET : PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	return s;
}
