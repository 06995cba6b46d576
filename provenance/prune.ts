/**
 * Removing old provenance, never what the retention window or a hold (an unfinished replay, a
 * follower) still needs; and the holds themselves.
 *
 * Prune deletes in batches, each its own short transaction holding the transaction-level
 * advisory lock 'txfn: provenance holds' while it reads the holds and deletes. Registering a
 * hold (txfn.provenance_hold) takes the same lock, so a batch either sees the hold or finished
 * before it; the hold function then refuses a range prune has already removed (it compares with
 * the pruned_max_xid / pruned_max_time watermarks prune keeps in txfn.provenance_config).
 */
import pg from "pg";
import { ProvenanceError } from "./changes.ts";

export interface PruneOptions {
  /** Remove changes of transactions started before this time (at most: see the result). */
  before: Date;
  /** Count what would go, delete nothing. */
  dryRun?: boolean;
  /** Rows per delete transaction. Default 10,000. */
  batchSize?: number;
}

export interface PruneResult {
  /** Changes removed (or, with dryRun, that would be). */
  deleted: number;
  /** Read-provenance rows removed. */
  deletedReads: number;
  /**
   * The cutoff applied: the oldest changes (in xid order) of transactions started before it, and
   * with xid below `keepFromXid`, were removed, up to the first one that is not.
   */
  cutoff: Date;
  /** Set when a hold keeps transactions from this xid on. */
  keepFromXid: string | null;
  /** What moved the cutoff earlier than `before`: "retention 30 days", "hold replay:7". */
  limitedBy: string[];
}

/**
 * Prunes provenance (and read provenance) older than `options.before`, keeping the retention
 * window and every active hold.
 * @throws ProvenanceError for a `before` in the future.
 */
export async function prune(url: string, options: PruneOptions): Promise<PruneResult> {
  if (!(options.before instanceof Date) || Number.isNaN(options.before.getTime())) throw new ProvenanceError("prune: before must be a valid time");
  const batch = options.batchSize ?? 10_000;
  if (!Number.isInteger(batch) || batch <= 0) throw new ProvenanceError(`prune: batchSize must be a positive integer, got ${batch}`);
  const c = new pg.Client({ connectionString: url, application_name: "txfn-prune" });
  await c.connect();
  try {
    const result: PruneResult = { deleted: 0, deletedReads: 0, cutoff: options.before, keepFromXid: null, limitedBy: [] };
    for (;;) {
      await c.query("BEGIN");
      try {
        await c.query("SELECT pg_advisory_xact_lock(hashtext('txfn: provenance holds'))");
        const lim = await limits(c, options.before);
        Object.assign(result, { cutoff: lim.cutoff, keepFromXid: lim.keepFromXid, limitedBy: lim.limitedBy });
        if (options.dryRun) {
          const n = await c.query<{ n: string; r: string }>(
            `SELECT (${prefixCount("txfn.provenance")}) AS n, (${prefixCount("txfn.provenance_reads")}) AS r`,
            [lim.cutoff, lim.keepFromXid],
          );
          await c.query("ROLLBACK");
          result.deleted = Number(n.rows[0]!.n);
          result.deletedReads = Number(n.rows[0]!.r);
          return result;
        }
        const d = await deletePrefix(c, "txfn.provenance", batch, lim.cutoff, lim.keepFromXid);
        const reads = await deletePrefix(c, "txfn.provenance_reads", batch, lim.cutoff, lim.keepFromXid);
        for (const w of [d, reads]) {
          if (w.maxXid === null) continue;
          await c.query(
            "UPDATE txfn.provenance_config SET pruned_max_xid = greatest(pruned_max_xid, $1::xid8), pruned_max_time = greatest(pruned_max_time, $2)",
            [w.maxXid, w.maxTime],
          );
        }
        await c.query("COMMIT");
        result.deleted += d.deleted;
        result.deletedReads += reads.deleted;
        if (d.done && reads.done) return result;
      } catch (err) {
        await c.query("ROLLBACK").catch(() => {});
        throw err;
      }
    }
  } finally {
    await c.end();
  }
}

/**
 * Deletes up to `batch` of the oldest rows of `table` in primary-key order (xid, seq), stopping
 * at the first row of a transaction started at or after `cutoff` or with xid ≥ `keepFromXid`:
 * prune only ever removes a prefix, which needs no index on time and keeps the watermark exact
 * (everything up to pruned_max_xid is gone, everything after it is there, except transactions
 * still running while prune ran, which a later prune removes). A transaction that started long
 * before its first write can hold the prefix back until the cutoff passes newer ones: prune
 * removes less, never more.
 */
async function deletePrefix(
  c: pg.ClientBase,
  table: string,
  batch: number,
  cutoff: Date,
  keepFromXid: string | null,
): Promise<{ deleted: number; maxXid: string | null; maxTime: Date | null; done: boolean }> {
  const r = await c.query<{ n: string; max_xid: string | null; max_time: Date | null; stopped: boolean; scanned: string }>(
    `WITH batch AS MATERIALIZED (SELECT ctid, xid, seq, tx_time FROM ${table} ORDER BY xid, seq LIMIT ${batch}), ` +
      "stop AS (SELECT xid, seq FROM batch WHERE tx_time >= $1 OR ($2::xid8 IS NOT NULL AND xid >= $2::xid8) ORDER BY xid, seq LIMIT 1), " +
      `gone AS (DELETE FROM ${table} p WHERE p.ctid IN (SELECT b.ctid FROM batch b LEFT JOIN stop s ON true ` +
      "WHERE s.xid IS NULL OR (b.xid, b.seq) < (s.xid, s.seq)) RETURNING p.xid, p.tx_time) " +
      "SELECT (SELECT count(*) FROM gone) AS n, (SELECT max(xid)::text FROM gone) AS max_xid, (SELECT max(tx_time) FROM gone) AS max_time, " +
      "EXISTS (SELECT 1 FROM stop) AS stopped, (SELECT count(*) FROM batch) AS scanned",
    [cutoff, keepFromXid],
  );
  const row = r.rows[0]!;
  return { deleted: Number(row.n), maxXid: row.max_xid, maxTime: row.max_time, done: row.stopped || Number(row.scanned) < batch };
}

/** SELECT counting the rows deletePrefix would remove (all batches), parameters $1 cutoff, $2 keepFromXid. */
function prefixCount(table: string): string {
  return (
    `SELECT count(*) FROM (SELECT bool_or(tx_time >= $1 OR ($2::xid8 IS NOT NULL AND xid >= $2::xid8)) ` +
    `OVER (ORDER BY xid, seq) AS stopped FROM ${table}) x WHERE NOT stopped`
  );
}

async function limits(c: pg.ClientBase, before: Date): Promise<{ cutoff: Date; keepFromXid: string | null; limitedBy: string[] }> {
  const r = await c.query<{ retention_cut: Date | null; retention: string | null }>(
    "SELECT now() - retention AS retention_cut, retention::text AS retention FROM txfn.provenance_config",
  );
  const holds = await c.query<{ name: string; from_xid: string | null; from_time: Date | null }>(
    "SELECT name, from_xid::text AS from_xid, from_time FROM txfn.provenance_holds WHERE expires_at IS NULL OR expires_at > now()",
  );
  let cutoff = before;
  const limitedBy: string[] = [];
  const cfg = r.rows[0];
  if (cfg?.retention_cut && cfg.retention_cut < cutoff) {
    cutoff = cfg.retention_cut;
    limitedBy.push(`retention ${cfg.retention}`);
  }
  let keepFromXid: string | null = null;
  for (const h of holds.rows) {
    if (h.from_time && h.from_time < cutoff) {
      cutoff = h.from_time;
      limitedBy.push(`hold ${h.name}`);
    }
    if (h.from_xid && (keepFromXid === null || BigInt(h.from_xid) < BigInt(keepFromXid))) {
      keepFromXid = h.from_xid;
      limitedBy.push(`hold ${h.name}`);
    }
  }
  return { cutoff, keepFromXid, limitedBy: [...new Set(limitedBy)] };
}

export interface Hold {
  name: string;
  /** Keep changes of transactions with xid ≥ this (xid8 decimal text). */
  fromXid: string | null;
  /** Keep changes of transactions started at or after this time. */
  fromTime: Date | null;
  reason: string | null;
  createdAt: Date;
  expiresAt: Date | null;
}

/**
 * Registers (or moves) hold `name`: prune keeps every change from `fromXid` / `fromTime` on.
 * @throws ProvenanceError when neither bound is given, or prune already removed part of the range (TXF22).
 */
export async function setHold(
  url: string,
  hold: { name: string; fromXid?: string; fromTime?: Date; reason?: string; expiresAt?: Date },
): Promise<void> {
  if (!hold.name) throw new ProvenanceError("a hold needs a name");
  if (hold.fromXid === undefined && hold.fromTime === undefined) throw new ProvenanceError("a hold needs --from-xid or --from-time");
  if (hold.fromXid !== undefined && !/^\d+$/.test(hold.fromXid)) throw new ProvenanceError(`--from-xid must be a transaction id (digits), got ${hold.fromXid}`);
  await withClient(url, async (c) => {
    try {
      await c.query("SELECT txfn.provenance_hold($1, $2::xid8, $3, $4, $5)", [
        hold.name,
        hold.fromXid ?? null,
        hold.fromTime ?? null,
        hold.reason ?? null,
        hold.expiresAt ?? null,
      ]);
    } catch (err) {
      const e = err as { code?: string; message: string; hint?: string };
      if (e.code === "TXF22") throw new ProvenanceError(e.message, e.hint);
      throw err;
    }
  });
}

/** Removes hold `name`. @returns false when there was none. */
export async function releaseHold(url: string, name: string): Promise<boolean> {
  return withClient(url, async (c) => (await c.query<{ r: boolean }>("SELECT txfn.provenance_release($1) AS r", [name])).rows[0]!.r);
}

/** Every hold, expired ones included (they no longer limit prune). */
export async function listHolds(url: string): Promise<Hold[]> {
  return withClient(url, async (c) => {
    const r = await c.query(
      "SELECT name, from_xid::text AS from_xid, from_time, reason, created_at, expires_at FROM txfn.provenance_holds ORDER BY created_at",
    );
    return r.rows.map((h) => ({
      name: h.name,
      fromXid: h.from_xid,
      fromTime: h.from_time,
      reason: h.reason,
      createdAt: h.created_at,
      expiresAt: h.expires_at,
    }));
  });
}

async function withClient<T>(url: string, body: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url, application_name: "txfn-provenance" });
  await c.connect();
  try {
    return await body(c);
  } finally {
    await c.end();
  }
}
