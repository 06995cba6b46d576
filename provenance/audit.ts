/**
 * The audit trail: recent changes, and `follow`, a live stream of changes as their transactions
 * commit that neither misses nor repeats one across reconnects.
 *
 * Why not a cursor on (xid, seq): transaction ids are assigned at the first write but become
 * visible at commit, in another order; a change with a lower xid can commit after one with a
 * higher xid was already reported. `follow` instead moves from snapshot to snapshot: each step
 * reports the changes of exactly the transactions visible in the new snapshot `next` and not in
 * the previous one `prev` (`pg_visible_in_snapshot`). A transaction's changes become visible
 * all at once, so each is reported in exactly one step. Not visible in `prev` means its xid is
 * in prev's in-progress list or ≥ prev's xmax, which two index range scans find.
 *
 * The cursor names that position: `prev` alone between steps, or `prev+next@xid.seq` inside a
 * step (the changes of the step are reported in (xid, seq) order, up to that one). It depends
 * only on committed data, so a new process resumes from it exactly.
 */
import pg from "pg";
import { CHANGE_COLUMNS, CHANGE_FROM, ProvenanceError, filterSql, resolveTable, toChange, type Change, type ChangeFilter } from "./changes.ts";

/** A position in the stream of committed changes (see the module comment). */
export interface FollowCursor {
  /** Snapshot (pg_snapshot text, `xmin:xmax:xip,…`) whose transactions are all reported. */
  prev: string;
  /** Inside a step: the step's snapshot and the last change reported in it. */
  next?: string;
  after?: { xid: string; seq: number };
}

const SNAPSHOT = /^\d+:\d+:(\d+(,\d+)*)?$/;

/** Text form: `prev` or `prev+next@xid.seq` (shell-safe). */
export function formatCursor(c: FollowCursor): string {
  return c.next && c.after ? `${c.prev}+${c.next}@${c.after.xid}.${c.after.seq}` : c.prev;
}

/** @throws ProvenanceError for text that is not a cursor printed by txfn. */
export function parseCursor(text: string): FollowCursor {
  const m = /^([^+@]+)(?:\+([^+@]+)@(\d+)\.(\d+))?$/.exec(text.trim());
  if (!m || !SNAPSHOT.test(m[1]!) || (m[2] !== undefined && !SNAPSHOT.test(m[2]))) {
    throw new ProvenanceError(`not a provenance cursor: ${JSON.stringify(text)}`, "use a cursor printed by txfn audit --follow (e.g. 1042:1050:1044 or 1042:1050:1044+1051:1051:@1045.3)");
  }
  if (m[2] === undefined) return { prev: m[1]! };
  return { prev: m[1]!, next: m[2], after: { xid: m[3]!, seq: Number(m[4]) } };
}

export interface RecentOptions extends ChangeFilter {
  /** Only changes of transactions started at or after this time. */
  since?: Date;
  /** At most this many (the newest). Default 100. */
  limit?: number;
}

/**
 * The newest changes matching the filter, returned oldest first (like `tail`).
 * @throws ProvenanceError for an unknown table.
 */
export async function recentChanges(url: string, options: RecentOptions = {}): Promise<Change[]> {
  const c = new pg.Client({ connectionString: url, application_name: "txfn-audit" });
  await c.connect();
  try {
    const ids = options.table !== undefined ? (await resolveTable(c, options.table)).ids : null;
    const f = filterSql(options, ids, 3);
    const r = await c.query(
      `SELECT ${CHANGE_COLUMNS} FROM ${CHANGE_FROM} WHERE ($1::timestamptz IS NULL OR p.tx_time >= $1) AND ${f.sql} ` +
        "ORDER BY p.xid DESC, p.seq DESC LIMIT $2",
      [options.since ?? null, options.limit ?? 100, ...f.params],
    );
    return r.rows.map(toChange).reverse();
  } finally {
    await c.end();
  }
}

export interface FollowOptions extends ChangeFilter {
  /** Resume after this position; default: the current snapshot (only changes committed from now on). */
  cursor?: FollowCursor;
  /** Pause between polls when nothing is pending, ms. Default 200. */
  pollMs?: number;
  /** Changes fetched per query. Default 1000. */
  pageSize?: number;
  /** Stops following (the promise then resolves with the last cursor). */
  signal?: AbortSignal;
  /** Reconnect backoff ceiling, ms. Default 5000. */
  maxBackoffMs?: number;
  /** Called when the connection was lost and is being re-established (after `attempt` failures). */
  onReconnect?: (error: Error, attempt: number) => void;
  /** application_name of the follower's connection. Default txfn-audit-follow. */
  applicationName?: string;
}

/** Called for each change in order, with the cursor that resumes right after it. */
export type OnChange = (change: Change, cursor: string) => void | Promise<void>;

/**
 * Streams every change committed after `options.cursor` (default: now) to `onChange`, exactly
 * once, until `options.signal` aborts; reconnects on lost connections (with backoff) and
 * continues from its cursor. Returns the final cursor.
 * @throws ProvenanceError when the cursor is older than pruned provenance (changes would be
 *   missing) or names an unknown table; database errors other than lost connections.
 */
export async function followChanges(url: string, onChange: OnChange, options: FollowOptions = {}): Promise<string> {
  const pollMs = options.pollMs ?? 200;
  const pageSize = options.pageSize ?? 1000;
  const maxBackoff = options.maxBackoffMs ?? 5000;
  let state: FollowCursor | undefined = options.cursor;
  let ids: number[] | null | undefined;
  let client: pg.Client | null = null;
  let failures = 0;
  const stopped = () => options.signal?.aborted === true;

  const connect = async (): Promise<pg.Client> => {
    const c = new pg.Client({ connectionString: url, application_name: options.applicationName ?? "txfn-audit-follow" });
    c.on("error", () => {}); // a terminated backend surfaces as the next query's error
    await c.connect();
    if (ids === undefined) ids = options.table !== undefined ? (await resolveTable(c, options.table)).ids : null;
    if (state === undefined) {
      state = { prev: (await c.query<{ s: string }>("SELECT pg_current_snapshot()::text AS s")).rows[0]!.s };
    } else {
      await checkNotPruned(c, state);
    }
    return c;
  };

  try {
    while (!stopped()) {
      try {
        client ??= await connect();
        failures = 0;
        const more = await step(client, state!, ids ?? null, options, pageSize, onChange, (s) => (state = s));
        if (!more) await sleep(pollMs, options.signal);
      } catch (err) {
        if (!isConnectionLoss(err) || stopped()) throw err;
        failures++;
        options.onReconnect?.(err as Error, failures);
        await client?.end().catch(() => {});
        client = null;
        await sleep(Math.min(maxBackoff, 50 * 2 ** Math.min(failures, 10)) * (0.5 + Math.random() / 2), options.signal);
      }
    }
  } finally {
    await client?.end().catch(() => {});
  }
  return state ? formatCursor(state) : "";
}

/**
 * One page of the current step (taking a new snapshot to start a step). Returns true when
 * more is pending right away (a full page), false when the step is complete and caught up.
 */
async function step(
  c: pg.Client,
  cur: FollowCursor,
  ids: number[] | null,
  filter: ChangeFilter,
  pageSize: number,
  onChange: OnChange,
  save: (s: FollowCursor) => void,
): Promise<boolean> {
  let s = cur;
  if (s.next === undefined) {
    const snap = (await c.query<{ s: string }>("SELECT pg_current_snapshot()::text AS s")).rows[0]!.s;
    if (snap === s.prev) return false;
    s = { prev: s.prev, next: snap };
  }
  const f = filterSql(filter, ids, 5);
  const after = s.after ?? null;
  // Not visible in prev: in prev's xip list, or at/after prev's xmax. Two ordered index scans.
  const visible = "pg_visible_in_snapshot(p.xid, $2::pg_snapshot)";
  const keyset = "($3::xid8 IS NULL OR (p.xid, p.seq) > ($3::xid8, $4::integer))";
  const branch = (range: string) =>
    `(SELECT ${CHANGE_COLUMNS} FROM ${CHANGE_FROM} WHERE ${range} AND ${visible} AND ${keyset} AND ${f.sql} ORDER BY p.xid, p.seq LIMIT ${pageSize})`;
  const r = await c.query(
    `SELECT u.* FROM (${branch("p.xid = ANY (ARRAY(SELECT pg_snapshot_xip($1::pg_snapshot)))")} UNION ALL ` +
      `${branch("p.xid >= pg_snapshot_xmax($1::pg_snapshot)")}) u ORDER BY u.xid::xid8, u.seq LIMIT ${pageSize}`,
    [s.prev, s.next, after?.xid ?? null, after?.seq ?? null, ...f.params],
  );
  const rows = r.rows.map(toChange);
  for (const ch of rows) {
    s = { prev: s.prev, next: s.next!, after: { xid: ch.xid, seq: ch.seq } };
    save(s);
    await onChange(ch, formatCursor(s));
  }
  if (rows.length < pageSize) {
    save({ prev: s.next! });
    return false;
  }
  return true;
}

/** Refuses a cursor some of whose unreported changes prune may have removed. */
async function checkNotPruned(c: pg.Client, cur: FollowCursor): Promise<void> {
  const r = await c.query<{ pruned: string | null; gone: boolean }>(
    "SELECT pruned_max_xid::text AS pruned, pruned_max_xid >= pg_snapshot_xmin($1::pg_snapshot) AS gone FROM txfn.provenance_config",
    [cur.prev],
  );
  if (r.rows[0]?.gone) {
    throw new ProvenanceError(
      `the cursor is older than pruned provenance (changes up to xid ${r.rows[0].pruned} were pruned): following from it would miss changes`,
      "start a new follow without --cursor, or register a hold (txfn provenance hold) so prune keeps what a follower has not seen",
    );
  }
}

/** Errors after which reconnecting and continuing is right: the connection or server went away. */
export function isConnectionLoss(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  if (typeof e?.code === "string") {
    if (e.code.startsWith("08") || e.code === "57P01" || e.code === "57P02" || e.code === "57P03") return true;
    if (["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "ENOTFOUND", "EHOSTUNREACH"].includes(e.code)) return true;
  }
  return /Connection terminated|connection is closed|Client has encountered a connection error|not queryable/i.test(e?.message ?? "");
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
