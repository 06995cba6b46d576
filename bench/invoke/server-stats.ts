/**
 * bench/invoke/server-stats.ts: what bench/invoke's variants cost the server besides CPU —
 * measured on a throwaway cluster of its own (nobody else's WAL or sessions in the figures):
 *
 *   locks  the SSI predicate locks (SIReadLock) one call holds before its commit, by relation
 *          and granularity (deterministic: one call in an explicit SERIALIZABLE transaction);
 *   wal    WAL records and bytes per call (pg_stat_wal over `--calls` sequential calls) and,
 *          through pg_waldump over the same LSN range, bytes per relation and record type;
 *   waits  `--concurrency` sessions calling for `--seconds` per variant (variants alternate
 *          over `--rounds`): pg_stat_activity's wait events sampled every 10 ms, 40001 retries,
 *          the SIReadLocks held (sampled every 250 ms: pg_locks takes every lock partition),
 *          the backends' CPU and context switches per call (/proc); `--perf DIR` also records
 *          them with `perf record -F 999` (read with `perf report -i DIR/<variant>-<round>.data`).
 *
 * Usage: npx tsx bench/invoke/server-stats.ts [--what locks,wal,waits --variants txfn,plpgsql-idem,js-direct
 *          --calls 500 --concurrency 8 --seconds 5 --rounds 2 --perf DIR --vacuum-empty]
 * Timing-free except `waits` (wrap it in `flock /tmp/txfn-bench.lock`).
 */
import { spawn, spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import pg from "pg";
import { build } from "../../bundler/index.ts";
import { deploy } from "../../client/index.ts";
import { pgBinDir } from "../../db/pg-install.ts";
import { startThrowawayCluster } from "../../test/support/throwaway-cluster.ts";
import { backendCpuUs } from "../lib/measure.ts";
import { BASELINES_SQL } from "./baselines.ts";

const { values: args } = parseArgs({
  options: {
    what: { type: "string", default: "locks,wal,waits" },
    variants: { type: "string", default: "txfn,plpgsql-idem,js-direct" },
    calls: { type: "string", default: "500" },
    concurrency: { type: "string", default: "8" },
    seconds: { type: "string", default: "5" },
    rounds: { type: "string", default: "2" },
    // a directory: waits also runs `perf record` on the serving backends, one file per variant and round
    perf: { type: "string" },
    // VACUUM ANALYZE txfn.invocations while it is still empty (a new system after its first vacuum)
    "vacuum-empty": { type: "boolean", default: false },
    skus: { type: "string", default: "10000" },
  },
});
const WHAT = new Set(args.what.split(","));
const VARIANTS = args.variants.split(",");
const SKUS = Number(args.skus);

/** Each variant's statement ($1 the order, $2 its key), as bench/invoke calls it. */
const STATEMENTS: Record<string, string> = {
  txfn: "SELECT app.reserve_inventory($1::jsonb, $2) AS r",
  plpgsql: "SELECT bench.reserve_plpgsql($1::jsonb) AS r, $2::text",
  "plpgsql-idem": "SELECT bench.reserve_plpgsql_idem($1::jsonb, $2) AS r",
  "js-bare": "SELECT bench.reserve_js($1::jsonb) AS r, $2::text",
  "js-direct": "SELECT bench.reserve_js_direct($1::jsonb) AS r, $2::text",
};
for (const v of VARIANTS) if (!STATEMENTS[v]) throw new Error(`unknown variant ${v}`);

function order(): [string, string] {
  const picked = new Set<number>();
  while (picked.size < 3) picked.add(101 + Math.floor(Math.random() * (SKUS - 100)));
  const items = [...picked].sort((a, b) => a - b).map((n) => ({ sku: `sku-${String(n).padStart(3, "0")}`, qty: 1 }));
  const orderId = randomUUID();
  return [JSON.stringify({ orderId, items }), orderId];
}

/** One call, retried on 40001/40P01; returns the retries. */
async function call(c: pg.Client | pg.PoolClient, variant: string): Promise<number> {
  const values = order();
  for (let retries = 0; ; retries++) {
    try {
      await c.query({ name: variant, text: STATEMENTS[variant]!, values });
      return retries;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if ((code !== "40001" && code !== "40P01") || retries > 100) throw err;
    }
  }
}

async function connect(url: string, app: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, application_name: app });
  await c.connect();
  await c.query("SET default_transaction_isolation = 'serializable'");
  return c;
}

/** SIReadLocks held by one call's transaction just before it commits. */
async function locks(url: string): Promise<void> {
  console.log("\n== SIReadLocks held by one call before its commit (relation, granularity: count)");
  const c = await connect(url, "stats-locks");
  try {
    for (const v of VARIANTS) {
      for (let i = 0; i < 3; i++) await call(c, v); // warm: plans, context, bundle
      await c.query("BEGIN ISOLATION LEVEL SERIALIZABLE");
      await c.query({ name: v, text: STATEMENTS[v]!, values: order() });
      const r = await c.query(
        "SELECT coalesce(relation::regclass::text, '?') AS rel, locktype, count(*)::int AS n FROM pg_locks" +
          " WHERE pid = pg_backend_pid() AND mode = 'SIReadLock' GROUP BY 1, 2 ORDER BY 1, 2",
      );
      await c.query("COMMIT");
      console.log(`${v}: ${r.rows.map((x) => `${x.rel} ${x.locktype}: ${x.n}`).join(", ") || "none"}`);
    }
  } finally {
    await c.end();
  }
}

/** WAL per call: pg_stat_wal deltas, and pg_waldump's per-relation and per-record-type bytes. */
async function wal(url: string, dataDir: string): Promise<void> {
  const calls = Number(args.calls);
  console.log(`\n== WAL per call (${calls} sequential calls per variant, after ${calls} warm-up calls)`);
  const c = await connect(url, "stats-wal");
  try {
    const names = new Map<string, string>();
    for (const r of (await c.query("SELECT pg_relation_filenode(oid)::text AS f, relname FROM pg_class WHERE pg_relation_filenode(oid) IS NOT NULL")).rows) {
      names.set(r.f, r.relname);
    }
    for (const v of VARIANTS) {
      for (let i = 0; i < calls; i++) await call(c, v); // warm-up: every touched page has had its full-page image
      const stat = "SELECT wal_records::bigint AS rec, wal_fpi::bigint AS fpi, wal_bytes::bigint AS bytes, pg_current_wal_insert_lsn()::text AS lsn FROM pg_stat_wal";
      await c.query("SELECT pg_stat_force_next_flush()");
      const a = (await c.query(stat)).rows[0];
      for (let i = 0; i < calls; i++) await call(c, v);
      await c.query("SELECT pg_stat_force_next_flush()");
      const b = (await c.query(stat)).rows[0];
      const per = (k: string) => ((Number(b[k]) - Number(a[k])) / calls).toFixed(1);
      console.log(`${v}: ${per("rec")} records, ${per("bytes")} bytes, ${per("fpi")} full-page images per call`);
      const dump = spawnSync(join(pgBinDir(), "pg_waldump"), ["-p", join(dataDir, "pg_wal"), "-s", a.lsn, "-e", b.lsn], { maxBuffer: 1 << 30 });
      const byRel = new Map<string, { n: number; bytes: number }>();
      for (const line of dump.stdout.toString().split("\n")) {
        const m = /^rmgr: (\S+)\s+len \(rec\/tot\):\s+\d+\/\s*(\d+),.*desc: (\S+)(.*)$/.exec(line);
        if (!m) continue;
        const rel = /rel \d+\/\d+\/(\d+)/.exec(m[4]!);
        const key = `${rel ? (names.get(rel[1]!) ?? rel[1]) : "-"} ${m[1]}/${m[3]}`;
        const e = byRel.get(key) ?? { n: 0, bytes: 0 };
        e.n++;
        e.bytes += Number(m[2]);
        byRel.set(key, e);
      }
      for (const [k, e] of [...byRel].sort((x, y) => y[1].bytes - x[1].bytes)) {
        console.log(`   ${k.padEnd(58)} ${(e.n / calls).toFixed(2).padStart(6)} rec ${(e.bytes / calls).toFixed(0).padStart(6)} B`);
      }
    }
  } finally {
    await c.end();
  }
}

/** Voluntary and involuntary context switches of every thread of the processes (from /proc). */
function contextSwitches(pids: readonly number[]): { voluntary: number; involuntary: number; threads: number } {
  const out = { voluntary: 0, involuntary: 0, threads: 0 };
  for (const pid of pids) {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const status = readFileSync(`/proc/${pid}/task/${task}/status`, "utf8");
      out.voluntary += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      out.involuntary += Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      out.threads++;
    }
  }
  return out;
}

/** Wait events and SIReadLocks sampled while `concurrency` sessions call one variant. */
async function waits(url: string): Promise<void> {
  const conc = Number(args.concurrency), seconds = Number(args.seconds), rounds = Number(args.rounds);
  console.log(`\n== c=${conc}, ${rounds} rounds × ${seconds} s per variant: wait events of the serving backends (share of samples every 10 ms)`);
  const sampler = await connect(url, "stats-sampler");
  const sessions = await Promise.all(Array.from({ length: conc }, () => connect(url, "stats-load")));
  const pids = await Promise.all(sessions.map(async (s) => (await s.query("SELECT pg_backend_pid() AS p")).rows[0].p as number));
  const totals = new Map<
    string,
    { samples: Map<string, number>; n: number; calls: number; retries: number; sireads: number[]; wall: number; voluntary: number; involuntary: number; cpuUs: number; threads: number; rounds: number }
  >();
  try {
    for (let r = 0; r < rounds; r++) {
      for (const v of r % 2 === 0 ? VARIANTS : [...VARIANTS].reverse()) {
        for (const s of sessions) await call(s, v);
        const t = totals.get(v) ?? { samples: new Map(), n: 0, calls: 0, retries: 0, sireads: [] as number[], wall: 0, voluntary: 0, involuntary: 0, cpuUs: 0, threads: 0, rounds: 0 };
        totals.set(v, t);
        const cs0 = contextSwitches(pids), cpu0 = backendCpuUs(pids), calls0 = t.calls;
        const end = performance.now() + seconds * 1000;
        let done = false;
        const load = Promise.all(
          sessions.map(async (s) => {
            while (performance.now() < end) {
              t.retries += await call(s, v);
              t.calls++;
            }
          }),
        ).finally(() => (done = true));
        const t0 = performance.now();
        const perf = args.perf === undefined ? null : spawn("perf", ["record", "-q", "-F", "999", "-o", join(args.perf, `${v}-${r}.data`), "-p", pids.join(",")], { stdio: "ignore" });
        let lastLocks = 0;
        while (!done) {
          const rows = (await sampler.query(
            "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') AS w, state, count(*)::int AS n FROM pg_stat_activity" +
              " WHERE application_name = 'stats-load' GROUP BY 1, 2",
          )).rows;
          for (const x of rows) {
            const k = x.state === "active" ? x.w : `${x.state} (${x.w})`;
            t.samples.set(k, (t.samples.get(k) ?? 0) + x.n);
            t.n += x.n;
          }
          if (performance.now() - lastLocks > 250) {
            lastLocks = performance.now();
            t.sireads.push((await sampler.query("SELECT count(*)::int AS n FROM pg_locks WHERE mode = 'SIReadLock'")).rows[0].n);
          }
          await new Promise((res) => setTimeout(res, 10));
        }
        await load;
        t.wall += performance.now() - t0;
        const cs1 = contextSwitches(pids), cpu1 = backendCpuUs(pids), n = t.calls - calls0;
        t.voluntary += (cs1.voluntary - cs0.voluntary) / n;
        t.involuntary += (cs1.involuntary - cs0.involuntary) / n;
        t.cpuUs += (cpu1! - cpu0!) / n;
        t.threads = cs1.threads / pids.length;
        t.rounds++;
        if (perf !== null) {
          perf.kill("SIGINT");
          await new Promise((res) => perf.on("exit", res));
        }
      }
    }
  } finally {
    await Promise.all(sessions.map((s) => s.end()));
    await sampler.end();
  }
  for (const [v, t] of totals) {
    const avg = t.sireads.reduce((a, b) => a + b, 0) / Math.max(1, t.sireads.length);
    console.log(`${v}: ${(t.calls / (t.wall / 1000)).toFixed(0)} calls/s, ${t.retries} retries (${((100 * t.retries) / t.calls).toFixed(2)}%), SIReadLocks held ${avg.toFixed(0)} on average`);
    console.log(
      `   per call (mean of rounds): backend CPU ${(t.cpuUs / t.rounds).toFixed(0)} µs, context switches ${(t.voluntary / t.rounds).toFixed(2)} voluntary + ` +
        `${(t.involuntary / t.rounds).toFixed(2)} involuntary (${t.threads.toFixed(0)} threads per backend)`,
    );
    for (const [k, n] of [...t.samples].sort((x, y) => y[1] - x[1])) {
      if (n / t.n >= 0.005) console.log(`   ${k.padEnd(40)} ${((100 * n) / t.n).toFixed(1).padStart(5)}%`);
    }
  }
}

async function main(): Promise<void> {
  const run = await startThrowawayCluster();
  try {
    const admin = new pg.Client({ connectionString: run.url });
    await admin.connect();
    await admin.query("CREATE DATABASE stats");
    await admin.end();
    const u = new URL(run.url);
    u.pathname = "/stats";
    const url = u.toString();
    await deploy(url, await build("functions", { schemas: false }));
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    await c.query("CREATE SCHEMA bench");
    await c.query("CREATE TABLE bench.node_idempotency (key text PRIMARY KEY, output jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())");
    await c.query(BASELINES_SQL);
    await c.query(
      "INSERT INTO shop.inventory SELECT 'sku-' || lpad(g::text, greatest(3, length(g::text)), '0'), 1000000 FROM generate_series(101, $1::int) g ON CONFLICT DO NOTHING",
      [SKUS],
    );
    await c.query("VACUUM ANALYZE shop.inventory"); // as bench/invoke does: txfn.invocations is left to autovacuum
    if (args["vacuum-empty"]) await c.query("VACUUM ANALYZE txfn.invocations");
    await c.end();
    if (WHAT.has("locks")) await locks(url);
    if (WHAT.has("wal")) await wal(url, run.cluster.dataDir);
    if (WHAT.has("waits")) await waits(url);
  } finally {
    await run.remove();
  }
}

await main();
