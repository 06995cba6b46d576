/**
 * The recorded workload of bench/replay and test/replay-10k.test.ts: the shop of
 * functions/examples/oversell under concurrent requests from Node. A request is the running
 * example's pair — checkStock, then (after `thinkMs` of application work) takeStock — on one
 * of `skus` items; one in ten is a restock instead, and one take in fifty names an unknown
 * item (a recorded application error). Requests are drawn from a fixed-seed generator.
 */
import pg from "pg";
import { TxfnClient } from "../../client/index.ts";

export interface WorkloadOptions {
  /** invocations to record (requests are 2 invocations, restocks 1) */
  invocations: number;
  /** concurrent requests (and connections). Default 8. */
  concurrency?: number;
  /** items, each with a stock of 1,000,000. Default 20. */
  skus?: number;
  /** ms of application work between a request's two transactions. Default 0. */
  thinkMs?: number;
  /** synchronous_commit = off on the connections (CPU cost without the disk). */
  asyncCommit?: boolean;
}

export interface RecordedWorkload {
  /** database clock just before the first invocation (a --from for the trace) */
  from: Date;
  /** wall time of the recording */
  ms: number;
  invocations: number;
  applicationErrors: number;
  /** attempts beyond the first (serialization failures retried by the client) */
  retries: number;
}

/** Seeds the items, then records the workload; the database must have functions/examples/oversell deployed. */
export async function recordWorkload(url: string, o: WorkloadOptions): Promise<RecordedWorkload> {
  const skus = o.skus ?? 20;
  const concurrency = o.concurrency ?? 8;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  let from: Date;
  try {
    await admin.query("INSERT INTO inventory SELECT 'item-' || g, 1000000 FROM generate_series(1, $1::int) g ON CONFLICT (sku) DO NOTHING", [skus]);
    from = (await admin.query<{ t: Date }>("SELECT clock_timestamp() AS t")).rows[0]!.t;
  } finally {
    await admin.end();
  }
  const pool = new pg.Pool({ connectionString: url, max: concurrency, application_name: "txfn-workload" });
  if (o.asyncCommit) pool.on("connect", (c) => void c.query("SET synchronous_commit = off"));
  const client = new TxfnClient({ pool, maxRetries: 20 });
  let state = 20240229;
  const random = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 4294967296);
  let issued = 0;
  let errors = 0;
  let retries = 0;
  let request = 0;
  const count = (r: { ok: boolean; attempts: number }) => {
    if (!r.ok) errors++;
    retries += r.attempts - 1;
  };
  const t0 = Date.now();
  try {
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (issued < o.invocations) {
          const sku = `item-${1 + Math.floor(random() * skus)}`;
          if (random() < 0.1 || o.invocations - issued === 1) {
            issued++;
            count(await client.invoke("restock", { sku, qty: 1 + Math.floor(random() * 3) }));
            continue;
          }
          issued += 2;
          const id = request++;
          count(await client.invoke("checkStock", { sku }));
          if (o.thinkMs) await new Promise((r) => setTimeout(r, o.thinkMs));
          count(await client.invoke("takeStock", { sku: random() < 0.02 ? "no-such-item" : sku, orderId: `r-${id}` }));
        }
      }),
    );
  } finally {
    await client.close();
    await pool.end();
  }
  return { from, ms: Date.now() - t0, invocations: issued, applicationErrors: errors, retries };
}
