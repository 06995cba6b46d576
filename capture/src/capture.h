/*
 * capture.h: what the files of txfn_capture share — one captured change and the functions that
 * form it (capture_change.c, with capture_row.c's cached row encoding), number it (capture_seq.c), attribute it (capture_context.c) and
 * store it (capture_store.c); capture_guc.c reads the settings they use. The row trigger itself is in capture_main.c.
 */
#ifndef TXFN_CAPTURE_H
#define TXFN_CAPTURE_H

#include "postgres.h"

#include "commands/trigger.h"
#include "utils/jsonb.h"

/* One row of txfn.provenance, as the trigger forms it (the columns the writer may set). */
typedef struct CaptureChange
{
	int32		seq;			/* number in the transaction's sequence */
	int32		table_id;		/* txfn.provenance_tables.id (trigger argument 0) */
	char		op;				/* 'I', 'U' or 'D' */
	Jsonb	   *key;			/* never NULL */
	Jsonb	   *old_key;		/* U that changed the key, else NULL */
	Jsonb	   *old_row;		/* U, D */
	Jsonb	   *new_row;		/* I, U */
} CaptureChange;

/* The attribution columns, filled as their defaults in txfn.provenance would fill them. */
typedef struct CaptureContext
{
	Datum		xid;			/* xid8: the top-level transaction */
	Datum		invocation_id;	/* int8, valid unless invocation_id_null */
	bool		invocation_id_null;
	Datum		role;			/* text: current_user */
	Datum		application_name;	/* text, valid unless application_name_null */
	bool		application_name_null;
	Datum		tx_time;		/* timestamptz: the transaction's start */
} CaptureContext;

/* One row as capture_row.c encodes it: its jsonb and the pairs it was built from (jsonb key order). */
typedef struct CaptureRow
{
	Jsonb	   *jsonb;
	JsonbPair  *pairs;
	int			npairs;
} CaptureRow;

typedef struct CaptureEncoder CaptureEncoder;

/* A custom string setting read through capture_guc.c; initialise with only the name set. */
typedef struct CaptureGuc
{
	const char *name;
	struct config_generic **vars;	/* the settings array it was looked up in */
	int			nvars;			/* and its length then */
	int			slot;			/* its index there, -1: absent (looked for again) */
	struct config_generic *record;
} CaptureGuc;

/* capture_guc.c */
extern const char *capture_guc_get(CaptureGuc *guc);

/* capture_row.c */
extern void capture_row_init(void);
extern CaptureEncoder *capture_row_encoder(Relation rel);
extern void capture_row_encode(CaptureEncoder *encoder, Relation rel, HeapTuple tuple, CaptureRow *row);
extern Jsonb *capture_row_key(CaptureEncoder *encoder, Trigger *trigger, const CaptureRow *row);
extern bool capture_row_key_same(CaptureEncoder *encoder, const CaptureRow *a, const CaptureRow *b);

/* capture_jsonb.c */
extern Jsonb *capture_jsonb_object(const JsonbPair *pairs, int n);

/* capture_change.c */
extern void capture_change_form(TriggerData *trigdata, CaptureChange *change);

/* capture_seq.c */
extern int32 capture_seq_next(void);

/* capture_context.c */
extern void capture_context_init(void);
extern void capture_context_get(CaptureContext *context);

/* capture_store.c */
extern void capture_store_init(void);
extern void capture_store_insert(const CaptureChange *change, const CaptureContext *context);

#endif							/* TXFN_CAPTURE_H */
