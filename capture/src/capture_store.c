/*
 * capture_store.c: storing a change in txfn.provenance without the executor's per-statement
 * start-up — heap insert plus index maintenance, as ExecInsert does them for
 * INSERT … VALUES, through one state built once and kept while the table does not change.
 *
 * The state (its own memory context under CacheMemoryContext): txfn.provenance's oid, a
 * ResultRelInfo with the IndexInfos of its indexes, a minimal EState, a virtual slot, and where
 * each column is. A relcache invalidation of the table or one of its indexes (an index added
 * or dropped, columns changed, the table dropped), or any change of a schema, marks it stale:
 * it is built again, from the name, before the next insert.
 *
 * Locks: at a transaction's first change the table and its indexes are locked
 * (RowExclusiveLock, as the INSERT would) under the top-level resource owner, so the locks
 * outlive a rolled-back subtransaction; taking them processes pending invalidations, so a state
 * that is still not stale afterwards is current for the whole transaction (whatever would change
 * it needs a lock that conflicts, or — CREATE/DROP INDEX CONCURRENTLY — waits for this
 * transaction before the index takes or stops taking inserts). Relcache references are not kept
 * between changes — each insert takes and drops them — so DDL later in the transaction (ALTER,
 * DROP, TRUNCATE of txfn.provenance, which refuse tables "in use") works as after the PL/pgSQL
 * INSERT, and there is nothing to release at the transaction's end.
 *
 * Permissions: none are checked, deliberately. The trigger writes as trusted code, like a
 * SECURITY DEFINER function: it forms every column itself (xid, role, time from the server's
 * own state, capture_context.c), so nothing can be forged through it, and whoever may write a
 * captured table gets its change recorded whatever grants txfn.provenance carries. The user is
 * not switched: nothing run during the insert depends on it (built-in index support functions
 * only), and errors keep showing only what the writing role may see.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "storage/lmgr.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/resowner.h"
#include "utils/syscache.h"

#include "capture.h"

/* The columns of txfn.provenance (migrations/system/…_txfn-provenance.sql). */
typedef enum StoreColumn
{
	COL_XID,
	COL_SEQ,
	COL_TABLE_ID,
	COL_OP,
	COL_KEY,
	COL_OLD_KEY,
	COL_OLD_ROW,
	COL_NEW_ROW,
	COL_INVOCATION_ID,
	COL_ROLE,
	COL_APPLICATION_NAME,
	COL_TX_TIME,
	NUM_COLUMNS
} StoreColumn;

static const struct
{
	const char *name;
	Oid			type;
}			store_columns[NUM_COLUMNS] = {
	[COL_XID] = {"xid", XID8OID},
	[COL_SEQ] = {"seq", INT4OID},
	[COL_TABLE_ID] = {"table_id", INT4OID},
	[COL_OP] = {"op", CHAROID},
	[COL_KEY] = {"key", JSONBOID},
	[COL_OLD_KEY] = {"old_key", JSONBOID},
	[COL_OLD_ROW] = {"old_row", JSONBOID},
	[COL_NEW_ROW] = {"new_row", JSONBOID},
	[COL_INVOCATION_ID] = {"invocation_id", INT8OID},
	[COL_ROLE] = {"role", TEXTOID},
	[COL_APPLICATION_NAME] = {"application_name", TEXTOID},
	[COL_TX_TIME] = {"tx_time", TIMESTAMPTZOID},
};

typedef struct Store
{
	MemoryContext cxt;			/* NULL: no state */
	bool		ready;			/* fully built */
	bool		stale;			/* invalidated since built */
	bool		locked;			/* the locks are held by the current top-level transaction */
	Oid			relid;
	Oid		   *index_oids;		/* ri_NumIndices of them, for the invalidation callback */
	ResultRelInfo *rri;
	EState	   *estate;
	TupleTableSlot *slot;
	AttrNumber	attno[NUM_COLUMNS]; /* 0-based attribute index of each column */
} Store;

static Store store;

static void
store_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			/* the transaction's locks are gone (or the prepared transaction's) */
			store.locked = false;
			break;
		default:
			break;
	}
}

static void
store_relcache_callback(Datum arg, Oid relid)
{
	if (store.cxt == NULL)
		return;
	if (relid == InvalidOid || relid == store.relid)
		store.stale = true;
	else if (store.rri != NULL)
	{
		for (int i = 0; i < store.rri->ri_NumIndices; i++)
			if (store.index_oids[i] == relid)
				store.stale = true;
	}
}

/* a schema renamed or dropped: txfn.provenance may now be another table, or none */
static void
store_namespace_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	store.stale = true;
}

void
capture_store_init(void)
{
	RegisterXactCallback(store_xact_callback, NULL);
	CacheRegisterRelcacheCallback(store_relcache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, store_namespace_callback, (Datum) 0);
}

/*
 * txfn.provenance must be what this library writes: a plain table with exactly these columns
 * (dropped ones aside), and nothing the executor would run on an INSERT that this path does
 * not (triggers, rules, row-level security, generated columns).
 */
static void
store_check_table(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	bool		found[NUM_COLUMNS] = {0};
	const char *problem = NULL;

	if (rel->rd_rel->relkind != RELKIND_RELATION)
		problem = "it is not a plain table";
	else if (rel->trigdesc != NULL)
		problem = "it has triggers";
	else if (rel->rd_rules != NULL)
		problem = "it has rules";
	else if (rel->rd_rel->relrowsecurity)
		problem = "it has row-level security";
	else if (desc->constr != NULL && desc->constr->has_generated_stored)
		problem = "it has generated columns";
	if (problem != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("txfn_capture cannot write txfn.provenance: %s", problem),
				 errhint("Remove it, or use the PL/pgSQL capture trigger: DROP EXTENSION txfn_capture CASCADE (capture is re-synced to it).")));

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		int			c;

		if (att->attisdropped)
			continue;
		for (c = 0; c < NUM_COLUMNS; c++)
			if (strcmp(NameStr(att->attname), store_columns[c].name) == 0)
				break;
		if (c == NUM_COLUMNS || att->atttypid != store_columns[c].type)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("txfn_capture cannot write txfn.provenance: column \"%s\" %s",
							NameStr(att->attname),
							c == NUM_COLUMNS ? "is unknown to it" : "has another type than it writes"),
					 errhint("Install the txfn_capture that goes with this txfn (make -C capture install), or DROP EXTENSION txfn_capture CASCADE.")));
		found[c] = true;
		store.attno[c] = i;
	}
	for (int c = 0; c < NUM_COLUMNS; c++)
		if (!found[c])
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("txfn_capture cannot write txfn.provenance: it has no column \"%s\"", store_columns[c].name),
					 errhint("Install the txfn_capture that goes with this txfn (make -C capture install), or DROP EXTENSION txfn_capture CASCADE.")));
}

/* Locks a relation (RowExclusiveLock, as an INSERT does) until the top-level transaction ends. */
static void
store_lock(Oid relid)
{
	ResourceOwner save_owner = CurrentResourceOwner;

	CurrentResourceOwner = TopTransactionResourceOwner;
	PG_TRY();
	{
		LockRelationOid(relid, RowExclusiveLock);
	}
	PG_FINALLY();
	{
		CurrentResourceOwner = save_owner;
	}
	PG_END_TRY();
}

/*
 * Builds the state (and takes the transaction's locks). Relcache references are taken under
 * the current resource owner and dropped again before this returns — on an error its abort
 * drops them — and the partial state, not ready, is freed by the next attempt.
 */
static void
store_build(void)
{
	MemoryContext save_cxt;
	ResourceOwner save_owner = CurrentResourceOwner;
	Relation	rel;
	List	   *index_oids;
	ListCell   *lc;
	int			n;
	int			i = 0;

	if (store.cxt != NULL)
		MemoryContextDelete(store.cxt);
	memset(&store, 0, sizeof(store));
	store.cxt = AllocSetContextCreate(CacheMemoryContext, "txfn_capture store", ALLOCSET_SMALL_SIZES);
	save_cxt = MemoryContextSwitchTo(store.cxt);

	CurrentResourceOwner = TopTransactionResourceOwner;
	PG_TRY();
	{
		store.relid = RangeVarGetRelid(makeRangeVar("txfn", "provenance", -1), RowExclusiveLock, false);
	}
	PG_FINALLY();
	{
		CurrentResourceOwner = save_owner;
	}
	PG_END_TRY();
	rel = table_open(store.relid, NoLock);
	store_check_table(rel);

	store.estate = CreateExecutorState();
	store.rri = makeNode(ResultRelInfo);
	InitResultRelInfo(store.rri, rel, 0, NULL, 0);

	/* ExecOpenIndices, keeping the locks and IndexInfos but not the references */
	index_oids = RelationGetIndexList(rel);
	n = list_length(index_oids);
	store.index_oids = palloc0(sizeof(Oid) * Max(n, 1));
	store.rri->ri_IndexRelationDescs = palloc0(sizeof(Relation) * Max(n, 1));
	store.rri->ri_IndexRelationInfo = palloc0(sizeof(IndexInfo *) * Max(n, 1));
	foreach(lc, index_oids)
	{
		Oid			index_oid = lfirst_oid(lc);
		Relation	index;

		store_lock(index_oid);
		index = index_open(index_oid, NoLock);
		store.rri->ri_IndexRelationInfo[i] = BuildIndexInfo(index);
		store.index_oids[i] = index_oid;
		index_close(index, NoLock);
		i++;
	}
	store.rri->ri_NumIndices = n;

	/* a private copy of the row type: the slot pins nothing */
	store.slot = MakeSingleTupleTableSlot(CreateTupleDescCopy(RelationGetDescr(rel)), &TTSOpsVirtual);

	store.rri->ri_RelationDesc = NULL;
	table_close(rel, NoLock);
	MemoryContextSwitchTo(save_cxt);
	store.ready = true;
	store.locked = true;
}

/* The transaction's first change with a built state: its locks, then is the state still current? */
static void
store_lock_all(void)
{
	store_lock(store.relid);
	for (int i = 0; i < store.rri->ri_NumIndices; i++)
		store_lock(store.index_oids[i]);
	store.locked = true;
}

void
capture_store_insert(const CaptureChange *change, const CaptureContext *context)
{
	TupleTableSlot *slot;
	ResultRelInfo *rri;
	Datum	   *values;
	bool	   *isnull;

	if (store.ready && !store.stale && !store.locked)
		store_lock_all();
	if (!store.ready || store.stale)
		store_build();
	slot = store.slot;
	rri = store.rri;
	ResetPerTupleExprContext(store.estate);

	/* this change's references (the locks are held since store_build) */
	rri->ri_RelationDesc = RelationIdGetRelation(store.relid);
	if (!RelationIsValid(rri->ri_RelationDesc))
		elog(ERROR, "could not open relation with OID %u", store.relid);
	for (int i = 0; i < rri->ri_NumIndices; i++)
	{
		rri->ri_IndexRelationDescs[i] = RelationIdGetRelation(store.index_oids[i]);
		if (!RelationIsValid(rri->ri_IndexRelationDescs[i]))
			elog(ERROR, "could not open relation with OID %u", store.index_oids[i]);
	}

	ExecClearTuple(slot);
	values = slot->tts_values;
	isnull = slot->tts_isnull;
	memset(isnull, true, sizeof(bool) * slot->tts_tupleDescriptor->natts);
#define SET(col, datum) (values[store.attno[col]] = (datum), isnull[store.attno[col]] = false)
	SET(COL_XID, context->xid);
	SET(COL_SEQ, Int32GetDatum(change->seq));
	SET(COL_TABLE_ID, Int32GetDatum(change->table_id));
	SET(COL_OP, CharGetDatum(change->op));
	SET(COL_KEY, JsonbPGetDatum(change->key));
	if (change->old_key != NULL)
		SET(COL_OLD_KEY, JsonbPGetDatum(change->old_key));
	if (change->old_row != NULL)
		SET(COL_OLD_ROW, JsonbPGetDatum(change->old_row));
	if (change->new_row != NULL)
		SET(COL_NEW_ROW, JsonbPGetDatum(change->new_row));
	if (!context->invocation_id_null)
		SET(COL_INVOCATION_ID, context->invocation_id);
	SET(COL_ROLE, context->role);
	if (!context->application_name_null)
		SET(COL_APPLICATION_NAME, context->application_name);
	SET(COL_TX_TIME, context->tx_time);
#undef SET
	ExecStoreVirtualTuple(slot);

	/* what ExecInsert does for a plain table */
	if (RelationGetDescr(rri->ri_RelationDesc)->constr != NULL)
		ExecConstraints(rri, slot, store.estate);
	table_tuple_insert(rri->ri_RelationDesc, slot, GetCurrentCommandId(true), 0, NULL);
	if (rri->ri_NumIndices > 0)
		list_free(ExecInsertIndexTuples(rri, slot, store.estate, false, false, NULL, NIL));

	ResetPerTupleExprContext(store.estate);
	ExecClearTuple(slot);
	for (int i = 0; i < rri->ri_NumIndices; i++)
	{
		RelationClose(rri->ri_IndexRelationDescs[i]);
		rri->ri_IndexRelationDescs[i] = NULL;
	}
	RelationClose(rri->ri_RelationDesc);
	rri->ri_RelationDesc = NULL;
}
