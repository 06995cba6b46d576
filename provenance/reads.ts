/**
 * Read provenance of one invocation: the SQL text, parameters and row count of each
 * ctx.query/ctx.execute it ran while `capture_reads` was on (README.md "Read provenance").
 */
import pg from "pg";
import { ProvenanceError } from "./changes.ts";

/** One recorded statement (a row of txfn.provenance_reads). */
export interface ReadRecord {
  /** Position in the transaction's sequence, shared with the captured writes (txfn.provenance.seq). */
  seq: number;
  sql: string;
  /** The statement's parameters, JSON-encoded as the runtime encodes outputs (bigint → string, Date → ISO text, bytea → "\\x…"). */
  params: unknown[] | null;
  /** Rows returned (a query, or RETURNING), else rows affected; null when the statement reported neither. */
  rowCount: number | null;
}

export interface InvocationReads {
  invocationId: string;
  function: string;
  version: number;
  /** ok | error (an error's reads were rolled back with its body: there are none). */
  status: string;
  /** Top-level transaction id (xid8, decimal text). */
  xid: string;
  /** Whether read provenance is on now (what ran while it was off has no records). */
  captureReads: boolean;
  reads: ReadRecord[];
}

/**
 * The reads recorded for invocation `invocationId`, in the order they ran. Only records made in
 * the invocation's own transaction count (txfn.invocation_id is a setting any session can set).
 * @throws ProvenanceError for a malformed id or one that names no invocation.
 */
export async function invocationReads(url: string, invocationId: string): Promise<InvocationReads> {
  if (!/^[1-9][0-9]{0,18}$/.test(invocationId)) throw new ProvenanceError(`not an invocation id: ${JSON.stringify(invocationId)}`, "an id as txfn invoke prints it (invocationId), e.g. 42");
  const c = new pg.Client({ connectionString: url, application_name: "txfn-provenance-reads" });
  await c.connect();
  try {
    const inv = await c.query<{ id: string; function: string; version: number; status: string; xid: string; capture_reads: boolean }>(
      "SELECT i.id::text AS id, i.function, i.version, i.status, i.xid::text AS xid, " +
        "coalesce((SELECT capture_reads FROM txfn.provenance_config), false) AS capture_reads FROM txfn.invocations i WHERE i.id = $1::bigint",
      [invocationId],
    );
    const i = inv.rows[0];
    if (i === undefined) throw new ProvenanceError(`no invocation ${invocationId}`);
    const reads = await c.query<{ seq: number; sql: string; params: unknown[] | null; row_count: string | null }>(
      "SELECT seq, sql, params, row_count::text AS row_count FROM txfn.provenance_reads WHERE xid = $1::xid8 AND invocation_id = $2::bigint ORDER BY seq",
      [i.xid, i.id],
    );
    return {
      invocationId: i.id,
      function: i.function,
      version: i.version,
      status: i.status,
      xid: i.xid,
      captureReads: i.capture_reads,
      reads: reads.rows.map((r) => ({ seq: r.seq, sql: r.sql, params: r.params, rowCount: r.row_count === null ? null : Number(r.row_count) })),
    };
  } finally {
    await c.end();
  }
}
