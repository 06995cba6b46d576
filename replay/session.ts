/**
 * One replayed transaction on one connection of the scratch database: BEGIN at the recorded
 * isolation (taking the snapshot at once), the recorded invocations through `txfn.invoke` with
 * their pinned time, seed, bundle version, key and id, recorded changes re-applied where the
 * trace did not run code, and COMMIT followed by a read of the changes the transaction wrote.
 */
import { existsSync } from "node:fs";
import pg from "pg";
import { xid8 } from "./snapshot.ts";
import { Wire, type WireResult } from "./wire.ts";
import type { RecordedInvocation, RowChange, TableInfo } from "./types.ts";

/** The envelope `txfn.invoke` returns (runtime-sql/README.md). */
export interface Envelope {
  output?: unknown;
  error?: Record<string, unknown>;
  invocationId: string;
  version: number;
  replayed: boolean;
}

/** What one invocation did on replay: its envelope, or the SQL error that kept it from running. */
export interface InvocationRun {
  envelope?: Envelope;
  sqlError?: { code: string | undefined; message: string };
}

const ISOLATION_SQL: Record<string, string> = {
  serializable: "SERIALIZABLE",
  "repeatable read": "REPEATABLE READ",
  "read committed": "READ COMMITTED",
  "read uncommitted": "READ COMMITTED",
};

/** SQLSTATEs after which the same transaction may be run again (never recorded by the runtime). */
export function isRetryable(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return code === "40001" || code === "40P01";
}

const CHANGE_SQL =
  "SELECT p.xid::text AS xid, p.seq, CASE WHEN i.id IS NOT NULL THEN i.id::text END AS invocation_id, p.table_id, p.op, " +
  "p.key::text AS key, p.old_key::text AS old_key, p.old_row::text AS old_row, p.new_row::text AS new_row " +
  "FROM txfn.provenance p LEFT JOIN txfn.invocations i ON i.id = p.invocation_id AND i.xid = p.xid";

/** A provenance row read with CHANGE_SQL. */
export function toRowChange(r: Record<string, unknown>): RowChange {
  return {
    xid: xid8(r.xid as string), seq: Number(r.seq), invocationId: r.invocation_id as string | null, tableId: Number(r.table_id),
    op: r.op as RowChange["op"], key: r.key as string, oldKey: r.old_key as string | null, oldRow: r.old_row as string | null,
    newRow: r.new_row as string | null,
  };
}

/** Every change in the scratch database, in the order given by `commitOrder` (xid → position; others first), then seq. */
export async function readAllChanges(c: pg.ClientBase, commitOrder: Map<number, number>): Promise<RowChange[]> {
  const r = await c.query(`${CHANGE_SQL} ORDER BY p.xid, p.seq`);
  const rows = r.rows.map(toRowChange);
  return rows.sort((a, b) => (commitOrder.get(a.xid) ?? -1) - (commitOrder.get(b.xid) ?? -1) || a.xid - b.xid || a.seq - b.seq);
}

/** What Session.open does in its one round trip. */
export interface OpenOptions {
  isolation: string;
  role: string | null;
  relax: boolean;
  /** COMMIT the session's open transaction first (the new one then sees it) */
  commitFirst?: boolean;
  /** xid of that transaction, to tell whether its COMMIT went through when the round trip fails */
  previousXid?: number | null;
  /** run this invocation in the same round trip */
  invoke?: { inv: RecordedInvocation; version: number };
  /** hold the advisory lock of this unit until the new transaction ends (others may then wait for its end: `waitFor`) */
  lock?: number;
  /**
   * before BEGIN (after the COMMIT), wait in the server until the transactions holding these
   * units' locks have ended: each must already hold its lock (its open returned).
   */
  waitFor?: number[];
}

/**
 * The advisory lock class of replay's unit locks (`pg_advisory_xact_lock(class, unit)`): the
 * two-key form, which no bigint advisory lock of the application's code can collide with.
 */
export const UNIT_LOCK_CLASS = 0x74786672;

export interface Opened {
  xid: number | null;
  run?: InvocationRun;
}

/** Session.open failed after a COMMIT it carried: `committed` tells whether that COMMIT went through. */
export class OpenError extends Error {
  constructor(
    readonly error: unknown,
    readonly committed: boolean,
  ) {
    super((error as Error).message);
  }
}

/**
 * A connection of the scratch database, with what redo needs cached. Its queries go through
 * Wire (wire.ts: node-postgres opens the connection, replay reads it), every value as text.
 */
export class Session {
  private readonly wire: Wire;
  /** for escaping literals and identifiers (node-postgres's, connection-independent) */
  private readonly pg: pg.Client;
  pid = 0;
  user = "";
  private columns = new Map<number, { insert: string[]; update: string[] }>();

  /** queries sent (each one round trip), for the run's statistics */
  trips = 0;

  constructor(url: string) {
    this.pg = new pg.Client({ connectionString: url, application_name: "txfn-replay" });
    this.wire = new Wire(this.pg);
  }

  /** One simple-query message (several statements: one round trip); each statement's result. */
  query(text: string): Promise<WireResult[]> {
    this.trips++;
    return this.wire.query(text);
  }

  /** One statement with text parameters. */
  queryParams(text: string, values: (string | null)[]): Promise<WireResult> {
    this.trips++;
    return this.wire.queryParams(text, values);
  }

  async connect(): Promise<void> {
    await this.wire.connect();
    // The scratch database is thrown away: its commits need not wait for the disk (visibility is
    // the same). Generic plans: the runtime's and the functions' prepared statements are planned
    // once per session instead of at every execution (measured: about 10% less server CPU per
    // replayed transaction). Plans decide speed, not results; the scratch database's plans
    // differ from the recorded ones anyway (other physical layout, no statistics), so a query
    // whose result depends on its plan (no ORDER BY) was never guaranteed to replay.
    // txfn_replay_open: the invocation a BEGIN carries, parsed, inlined (txfn.invoke is an SQL
    // function) and planned once per session; each BEGIN's simple-query message then only
    // EXECUTEs it with literals (measured: parse, analysis and planning of the literal
    // SELECT took about 12% of the server's CPU per replayed invocation). txfn_replay_invoke:
    // the same for an invocation that runs after its BEGIN.
    const r = await this.query(
      "SET synchronous_commit = off; SET plan_cache_mode = force_generic_plan; " +
        "PREPARE txfn_replay_open(text, text, text, text, int) AS " +
        `SELECT pg_advisory_xact_lock(${UNIT_LOCK_CLASS}, $5), txfn.invoke($1, $2::jsonb, $3, $4::jsonb)::text AS e, pg_current_xact_id()::text AS x; ` +
        "PREPARE txfn_replay_invoke(text, text, text, text) AS SELECT txfn.invoke($1, $2::jsonb, $3, $4::jsonb)::text AS e; " +
        "SELECT pg_backend_pid() AS p, current_user AS u",
    );
    this.pid = Number(r[r.length - 1]!.rows[0]!.p);
    this.user = r[r.length - 1]!.rows[0]!.u!;
  }

  async close(): Promise<void> {
    await this.wire.close();
  }

  /** The server processes that block `pid` (pg_blocking_pids). */
  async blockingPids(pid: number): Promise<number[]> {
    const b = (await this.queryParams("SELECT pg_blocking_pids($1::int)::text AS b", [String(pid)])).rows[0]!.b!;
    return b === "{}" ? [] : b.slice(1, -1).split(",").map(Number);
  }

  /**
   * One round trip: [COMMIT the open transaction;] [wait for `waitFor`;] BEGIN at `isolation`
   * (as `role` when it is not the session's user), taking the snapshot at once and the unit's
   * `lock`, [and run `invoke` — its statement takes the snapshot]. The wait runs in an explicit
   * transaction of its own (committed before the BEGIN, so the snapshot is taken after it; an
   * implicit one would end with a WARNING "there is no transaction in progress", in the
   * server's log at every wait). `relax`: SERIALIZABLE runs as REPEATABLE READ — the same snapshot,
   * without SSI aborts that depend on the replay's timing (the recorded history is known to be
   * serializable); invocations then pass relaxIsolation.
   * @returns the new transaction's xid (null when the invocation failed with an SQL error, returned in `run`).
   * @throws OpenError when it failed after `commitFirst` (saying whether the COMMIT went through),
   *   else a retryable error of the invocation (the transaction is then aborted: roll it back).
   */
  async open(o: OpenOptions): Promise<Opened> {
    const q = this.pg;
    const level = o.relax && o.isolation === "serializable" ? "REPEATABLE READ" : (ISOLATION_SQL[o.isolation] ?? "SERIALIZABLE");
    const setRole = o.role && o.role !== this.user ? `SET LOCAL ROLE ${q.escapeIdentifier(o.role)}; ` : "";
    const lock = o.lock === undefined ? "NULL" : String(o.lock);
    const body = o.invoke
      ? `EXECUTE txfn_replay_open(${this.invokeArgs(o.invoke.inv, o.invoke.version, o.relax)}, ${lock})`
      : `SELECT pg_advisory_xact_lock(${UNIT_LOCK_CLASS}, ${lock}), pg_current_xact_id()::text AS x`;
    const wait = o.waitFor?.length
      ? `BEGIN; SELECT ${o.waitFor.map((u) => `pg_advisory_xact_lock_shared(${UNIT_LOCK_CLASS}, ${u})`).join(", ")}; COMMIT; `
      : "";
    const text = `${o.commitFirst ? "COMMIT; " : ""}${wait}BEGIN ISOLATION LEVEL ${level}; ${setRole}${body}`;
    try {
      const r = await this.query(text);
      const row = r[r.length - 1]!.rows[0]!;
      const xid = xid8(row.x!);
      return o.invoke ? { xid, run: { envelope: JSON.parse(row.e!) as Envelope } } : { xid };
    } catch (err) {
      if (o.commitFirst) {
        await this.query("ROLLBACK").catch(() => {});
        const st = o.previousXid == null ? "committed" : (await this.queryParams("SELECT pg_xact_status($1::xid8) AS s", [String(o.previousXid)])).rows[0]!.s;
        if (st !== "committed") throw new OpenError(err, false);
        if (isRetryable(err) || !o.invoke) throw new OpenError(err, true);
      } else if (isRetryable(err) || !o.invoke) {
        throw err;
      }
      const e = err as { code?: string; message: string };
      return { xid: null, run: { sqlError: { code: e.code, message: e.message } } };
    }
  }

  /** txfn.invoke's four arguments for a recorded invocation, as SQL literals (hot path: no closures). */
  private invokeArgs(inv: RecordedInvocation, version: number, relax: boolean): string {
    const q = this.pg;
    return `${q.escapeLiteral(inv.function)}, ${q.escapeLiteral(inv.input)}, ${inv.key === null ? "NULL" : q.escapeLiteral(inv.key)}, ` +
      q.escapeLiteral(JSON.stringify(this.options(inv, version, relax)));
  }

  private options(inv: RecordedInvocation, version: number, relax: boolean): Record<string, unknown> {
    const options: Record<string, unknown> = { version, pinnedTime: inv.pinnedMs, seed: inv.seed, invocationId: inv.id };
    if (relax) options.relaxIsolation = true;
    if (inv.workflowId !== null) options.workflowId = inv.workflowId;
    if (inv.workflowStep !== null) options.workflowStep = inv.workflowStep;
    return options;
  }

  /** Runs one recorded invocation at bundle `version`; an SQL error is returned, not thrown, unless retryable. */
  async invoke(inv: RecordedInvocation, version: number, relax = false): Promise<InvocationRun> {
    try {
      const r = await this.query(`EXECUTE txfn_replay_invoke(${this.invokeArgs(inv, version, relax)})`);
      return { envelope: JSON.parse(r[0]!.rows[0]!.e!) as Envelope };
    } catch (err) {
      if (isRetryable(err)) throw err;
      const e = err as { code?: string; message: string };
      return { sqlError: { code: e.code, message: e.message } };
    }
  }

  /**
   * Re-applies recorded changes (plain SQL of the trace, transactions outside it), with user
   * triggers and FK checks off when allowed.
   * @returns the number of changes (updates, deletes) that found no row to change: the scratch
   *   state was not the recorded one there (the caller warns; the final-state comparison shows it).
   * @throws the SQL error of a change that cannot be applied (e.g. an insert of a key that exists).
   */
  async redo(changes: RowChange[], tables: Map<number, TableInfo>, replicaRole: boolean): Promise<number> {
    if (changes.length === 0) return 0;
    let missed = 0;
    if (replicaRole) await this.query("SET LOCAL session_replication_role = replica");
    for (const ch of changes) {
      const t = tables.get(ch.tableId);
      if (!t?.exists) continue;
      if ((await this.redoOne(ch, t)) === 0) missed++;
    }
    if (replicaRole) await this.query("SET LOCAL session_replication_role = origin");
    return missed;
  }

  private async cols(t: TableInfo, name: string): Promise<{ insert: string[]; update: string[] }> {
    let c = this.columns.get(t.id);
    if (!c) {
      const r = await this.queryParams(
        "SELECT quote_ident(attname) AS a, attidentity AS identity FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 " +
          "AND NOT attisdropped AND attgenerated = '' AND NOT (attname::text = ANY(ARRAY(SELECT jsonb_array_elements_text($2::jsonb)))) ORDER BY attnum",
        [name, JSON.stringify(t.addedSince ?? [])], // columns added since the trace keep their defaults / today's values
      );
      c = { insert: r.rows.map((x) => x.a!), update: r.rows.filter((x) => x.identity !== "a").map((x) => x.a!) };
      this.columns.set(t.id, c);
    }
    return c;
  }

  /** Applies one recorded change; returns the rows it changed. */
  private async redoOne(ch: RowChange, t: TableInfo): Promise<number> {
    const q = this.pg;
    const name = `${q.escapeIdentifier(t.schema)}.${q.escapeIdentifier(t.name)}`;
    const cols = await this.cols(t, name);
    // A table without a key: the row whose value (less columns added since the trace) is the recorded one.
    const added = t.addedSince?.length ? ` - ${q.escapeLiteral(`{${t.addedSince.map((x) => JSON.stringify(x)).join(",")}}`)}::text[]` : "";
    const match = (alias: string) =>
      t.keyColumns.length
        ? t.keyColumns.map((k) => `t.${q.escapeIdentifier(k)} = ${alias}.${q.escapeIdentifier(k)}`).join(" AND ")
        : `t.ctid = (SELECT ctid FROM ${name} z WHERE (to_jsonb(z)${added}) = $2::jsonb LIMIT 1)`;
    if (ch.op === "I") {
      const r = await this.queryParams(
        `INSERT INTO ${name} (${cols.insert.join(", ")}) OVERRIDING SYSTEM VALUE SELECT ${cols.insert.map((x) => `r.${x}`).join(", ")} ` +
          `FROM jsonb_populate_record(NULL::${name}, $1::jsonb) r`,
        [ch.newRow],
      );
      return r.rowCount;
    } else if (ch.op === "U") {
      const set = cols.update.length === 1
        ? `${cols.update[0]} = (SELECT r.${cols.update[0]} FROM jsonb_populate_record(NULL::${name}, $1::jsonb) r)`
        : `(${cols.update.join(", ")}) = (SELECT ${cols.update.map((x) => `r.${x}`).join(", ")} FROM jsonb_populate_record(NULL::${name}, $1::jsonb) r)`;
      const where = t.keyColumns.length ? `FROM jsonb_populate_record(NULL::${name}, $2::jsonb) k WHERE ${match("k")}` : `WHERE ${match("k")}`;
      const r = await this.queryParams(`UPDATE ${name} t SET ${set} ${where}`, [ch.newRow, ch.oldKey ?? (t.keyColumns.length ? ch.key : ch.oldRow)]);
      return r.rowCount;
    } else {
      const where = t.keyColumns.length ? `USING jsonb_populate_record(NULL::${name}, $2::jsonb) k WHERE ${match("k")}` : `WHERE ${match("k")}`;
      const r = await this.queryParams(`DELETE FROM ${name} t ${where.replace("$2", "$1")}`, [ch.key]);
      return r.rowCount;
    }
  }

  /**
   * COMMIT; with `xid`, then (outside the transaction, so no SSI read locks) the changes it wrote.
   * @throws the COMMIT's error.
   */
  async commit(xid: number | null): Promise<RowChange[] | null> {
    if (xid === null) {
      await this.query("COMMIT");
      return null;
    }
    const res = await this.query(`COMMIT; ${CHANGE_SQL} WHERE p.xid = '${xid}'::xid8 ORDER BY p.seq`);
    return res[res.length - 1]!.rows.map(toRowChange);
  }

  async rollback(): Promise<void> {
    await this.query("ROLLBACK");
  }
}

/**
 * The scratch database's URL through the server's Unix socket when `url` names this machine
 * over TCP (127.0.0.1, localhost, ::1), the socket is there and a connection through it works;
 * else `url`. Replay's sessions send a message per transaction start or commit: on this
 * machine a round trip through the socket cost ~25% less CPU (server and Node) than through
 * loopback TCP (measured with 8 sessions × 2,500 `BEGIN; SELECT 1; COMMIT`: 96 → 72 µs).
 */
export async function preferLocalSocket(url: string): Promise<string> {
  const u = new URL(url);
  if (!["127.0.0.1", "localhost", "[::1]"].includes(u.hostname) || u.searchParams.has("host") || u.searchParams.has("sslmode")) return url;
  const c = new pg.Client({ connectionString: url, application_name: "txfn-replay" });
  await c.connect();
  let socketUrl: URL;
  let started: string;
  try {
    const r = await c.query<{ d: string; p: string; t: string }>(
      "SELECT current_setting('unix_socket_directories') AS d, current_setting('port') AS p, pg_postmaster_start_time()::text AS t",
    );
    started = r.rows[0]!.t;
    const dir = r.rows[0]!.d.split(",")[0]!.trim();
    if (!dir.startsWith("/") || !existsSync(`${dir}/.s.PGSQL.${r.rows[0]!.p}`)) return url;
    socketUrl = new URL(url);
    socketUrl.hostname = "";
    socketUrl.port = "";
    socketUrl.searchParams.set("host", dir);
    socketUrl.searchParams.set("port", r.rows[0]!.p);
  } finally {
    await c.end();
  }
  const probe = new pg.Client({ connectionString: socketUrl.toString(), application_name: "txfn-replay" });
  try {
    await probe.connect();
    const same = (await probe.query<{ t: string }>("SELECT pg_postmaster_start_time()::text AS t")).rows[0]!.t === started;
    return same ? socketUrl.toString() : url;
  } catch {
    return url; // another server on this port, or pg_hba refusing local connections
  } finally {
    await probe.end().catch(() => {});
  }
}
