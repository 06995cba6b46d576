/*
 * capture_guc.c: reading a custom string setting (txfn.provenance_seq, txfn.invocation_id) per
 * change without GetConfigOption's lookup by name — a binary search with case-insensitive name
 * comparisons over every setting, ~600 instructions, twice per change (~1.2 k of ~45 k).
 *
 * The setting's record is remembered with where it was found: the settings array, its length
 * and the slot. PostgreSQL only ever adds a setting by growing the array (length changes, and it
 * is sorted again), removes one by shrinking it (MarkGUCPrefixReserved), and replaces a
 * placeholder by a real definition in its slot (define_custom_variable, which frees the
 * placeholder) — so while array, length and slot's record are all as remembered, the record is
 * the live one for that name and its value is what GetConfigOption(name, true, false) returns.
 * A setting that does not exist is looked for again at every read: its placeholder could appear
 * (the array grows) while another placeholder goes (it shrinks) between two reads, leaving the
 * length as it was. Anything else (another type, superuser-only) goes through GetConfigOption.
 */
#include "postgres.h"

#include "utils/guc.h"
#include "utils/guc_tables.h"

#include "capture.h"

/* Finds the setting's record (or its absence) and remembers where. */
static void
guc_lookup(CaptureGuc *guc)
{
	struct config_generic **vars = get_guc_variables();
	int			n = GetNumConfigOptions();

	guc->vars = vars;
	guc->nvars = n;
	guc->slot = -1;
	guc->record = NULL;
	for (int i = 0; i < n; i++)
		if (pg_strcasecmp(vars[i]->name, guc->name) == 0)
		{
			guc->slot = i;
			guc->record = vars[i];
			break;
		}
}

/* The value as GetConfigOption(name, true, false) gives it: NULL when the setting does not exist. */
const char *
capture_guc_get(CaptureGuc *guc)
{
	struct config_generic *record;

	if (guc->record == NULL || guc->vars != get_guc_variables() || guc->nvars != GetNumConfigOptions() ||
		guc->vars[guc->slot] != guc->record)
		guc_lookup(guc);
	record = guc->record;
	if (record == NULL)
		return NULL;
	if (record->vartype != PGC_STRING || (record->flags & GUC_SUPERUSER_ONLY) != 0)
		return GetConfigOption(guc->name, true, false);
	return *((struct config_string *) record)->variable;
}
