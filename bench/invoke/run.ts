/**
 * bench/invoke: throughput and p50/p99 latency of the reference reserveInventory function
 * (3 items, a select and an update each, idempotency recorded) called through SQL
 * from a pool, at concurrency 1, 4 and 8, against two baselines measured in the same run:
 *
 *   (a) plpgsql — a hand-written PL/pgSQL function doing the same SQL, no recording (the limit);
 *   (b) node-pg — the same logic in Node: BEGIN, 3 × (select, update), idempotency row, COMMIT.
 *
 * plus, for reading the ratios against DESIGN's anchors (whose PL/pgSQL limit wrote an
 * idempotency row), plpgsql-idem: the PL/pgSQL function that also inserts an idempotency row;
 * and js-bare: the same SQL from a plain txv8 function (prepared plans, no recording), which
 * separates what the language handler costs from what txfn's runtime adds; js-direct: the same with
 * txv8's statements without a subtransaction each (txv8 >= 1.1; skipped on older servers), as
 * txfn's runtime runs them. bench/invoke/callgrind.ts counts the instructions of the same variants.
 *
 * All variants run at SERIALIZABLE (the function's declared level), retry 40001/40P01, order
 * their SKUs (no deadlocks), and alternate round by round so autovacuum and the noisy 2-core
 * machine hit all of them alike; the median round is reported with the spread. The client's
 * CPU share is printed: client and server share the cores.
 *
 * Usage: npm run bench:invoke [-- --seconds 5 --rounds 3 --skus 10000 --concurrency 1,4,8 --async-commit
 *        --warmup 1000 --variants txfn,plpgsql,plpgsql-idem,js-bare,js-direct,node-pg]
 * --warmup N: before the rounds, every pooled connection (as many as the highest concurrency)
 * serves N untimed calls of every variant, so each backend's plans and V8's optimised code are
 * as warm at c=8 as at c=1 (a production pool's backends live long; V8 optimises a backend's
 * hot functions only after some hundreds of calls: extension/README.md). 0 skips it.
 * --async-commit sets synchronous_commit = off for every variant: commits stop waiting for the
 * WAL flush, so the run measures CPU cost without the disk (useful when other work shares it).
 * Uses DATABASE_URL or the private cluster; creates (and drops) a database txfn_bench_invoke.
 */
import { randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import pg from "pg";
import { build } from "../../bundler/index.ts";
import { deploy } from "../../client/index.ts";
import { scratchDatabase } from "../lib/scratch-database.ts";
import { backendCpuUs, median } from "../lib/measure.ts";
import { BASELINES_SQL as PLPGSQL } from "./baselines.ts";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "5" },
    rounds: { type: "string", default: "3" },
    skus: { type: "string", default: "10000" },
    concurrency: { type: "string", default: "1,4,8" },
    variants: { type: "string", default: "txfn,plpgsql,plpgsql-idem,js-bare,js-direct,node-pg" },
    warmup: { type: "string", default: "1000" },
    keep: { type: "boolean", default: false },
    "async-commit": { type: "boolean", default: false },
  },
});
const SECONDS = Number(args.seconds);
const ROUNDS = Number(args.rounds);
const SKUS = Number(args.skus);
const WARMUP = Number(args.warmup);
if (!Number.isInteger(WARMUP) || WARMUP < 0) {
  console.error(`bench/invoke: --warmup must be a whole number of calls ≥ 0, got ${JSON.stringify(args.warmup)}`);
  process.exit(2);
}
const LEVELS = args.concurrency.split(",").map(Number);
const DB = "txfn_bench_invoke";

type Variant = "txfn" | "plpgsql" | "plpgsql-idem" | "js-bare" | "js-direct" | "node-pg";
const ALL_VARIANTS: Variant[] = ["txfn", "plpgsql", "plpgsql-idem", "js-bare", "js-direct", "node-pg"];
let VARIANTS = args.variants.split(",").map((v) => v.trim()) as Variant[];
for (const v of VARIANTS) {
  if (!ALL_VARIANTS.includes(v)) {
    console.error(`bench/invoke: unknown variant ${JSON.stringify(v)} in --variants (known: ${ALL_VARIANTS.join(", ")})`);
    process.exit(2);
  }
}


function order(): { orderId: string; items: { sku: string; qty: number }[] } {
  const picked = new Set<number>();
  while (picked.size < 3) picked.add(1 + Math.floor(Math.random() * SKUS));
  const items = [...picked].sort((a, b) => a - b).map((n) => ({ sku: `sku-${String(n).padStart(3, "0")}`, qty: 1 }));
  return { orderId: randomUUID(), items };
}

const TRANSIENT = new Set(["40001", "40P01"]);

/** One call of a variant on a connection; returns the number of retries it needed. */
async function call(variant: Variant, c: pg.PoolClient): Promise<number> {
  const o = order();
  for (let retries = 0; ; retries++) {
    try {
      if (variant === "txfn") {
        const r = await c.query({ name: "txfn", text: "SELECT app.reserve_inventory($1::jsonb, $2) AS r", values: [JSON.stringify(o), o.orderId] });
        if (!r.rows[0].r.output) throw new Error(`txfn returned ${JSON.stringify(r.rows[0].r)}`);
      } else if (variant === "plpgsql") {
        await c.query({ name: "plpgsql", text: "SELECT bench.reserve_plpgsql($1::jsonb) AS r", values: [JSON.stringify(o)] });
      } else if (variant === "js-bare") {
        await c.query({ name: "js-bare", text: "SELECT bench.reserve_js($1::jsonb) AS r", values: [JSON.stringify(o)] });
      } else if (variant === "js-direct") {
        await c.query({ name: "js-direct", text: "SELECT bench.reserve_js_direct($1::jsonb) AS r", values: [JSON.stringify(o)] });
      } else if (variant === "plpgsql-idem") {
        await c.query({ name: "plpgsql-idem", text: "SELECT bench.reserve_plpgsql_idem($1::jsonb, $2) AS r", values: [JSON.stringify(o), o.orderId] });
      } else {
        await c.query("BEGIN");
        try {
          for (const it of o.items) {
            const s = await c.query({ name: "sel", text: "SELECT stock FROM shop.inventory WHERE sku = $1", values: [it.sku] });
            if (!s.rows[0] || s.rows[0].stock < it.qty) throw new Error(`out of stock: ${it.sku}`);
            await c.query({ name: "upd", text: "UPDATE shop.inventory SET stock = stock - $1 WHERE sku = $2", values: [it.qty, it.sku] });
          }
          await c.query({
            name: "idem",
            text: "INSERT INTO bench.node_idempotency (key, output) VALUES ($1, $2)",
            values: [o.orderId, JSON.stringify({ orderId: o.orderId, reserved: true })],
          });
          await c.query("COMMIT");
        } catch (err) {
          await c.query("ROLLBACK");
          throw err;
        }
      }
      return retries;
    } catch (err) {
      if (!TRANSIENT.has((err as { code?: string }).code ?? "") || retries > 100) throw err;
    }
  }
}

interface Round {
  variant: Variant;
  concurrency: number;
  tps: number;
  p50: number;
  p99: number;
  retries: number;
  clientCpu: number; // client CPU time / wall time (1.0 = one core)
  /** CPU µs per call of the serving backends (from /proc; null when the server is not local) and of this client. */
  serverUsPerCall: number | null;
  clientUsPerCall: number;
}

async function round(pool: pg.Pool, variant: Variant, concurrency: number): Promise<Round> {
  const conns = await Promise.all(Array.from({ length: concurrency }, () => pool.connect()));
  try {
    for (const c of conns) await call(variant, c); // warm: plans, V8 context, bundle
    const pids = await Promise.all(conns.map(async (c) => (await c.query("SELECT pg_backend_pid() AS pid")).rows[0].pid as number));
    const latencies: number[] = [];
    let retries = 0;
    const server0 = backendCpuUs(pids);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const end = t0 + SECONDS * 1000;
    await Promise.all(
      conns.map(async (c) => {
        while (performance.now() < end) {
          const s = performance.now();
          retries += await call(variant, c);
          latencies.push(performance.now() - s);
        }
      }),
    );
    const wall = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const server1 = backendCpuUs(pids);
    latencies.sort((a, b) => a - b);
    const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!;
    return {
      variant,
      concurrency,
      tps: (latencies.length / wall) * 1000,
      p50: q(0.5),
      p99: q(0.99),
      retries,
      clientCpu: (cpu.user + cpu.system) / 1000 / wall,
      serverUsPerCall: server0 === null || server1 === null ? null : (server1 - server0) / latencies.length,
      clientUsPerCall: (cpu.user + cpu.system) / latencies.length,
    };
  } finally {
    for (const c of conns) c.release();
  }
}

/** Every one of `connections` pooled connections serves WARMUP calls of each variant, untimed. */
async function warmUp(pool: pg.Pool, connections: number): Promise<void> {
  const t0 = performance.now();
  const conns = await Promise.all(Array.from({ length: connections }, () => pool.connect()));
  try {
    await Promise.all(
      conns.map(async (c) => {
        for (const v of VARIANTS) for (let i = 0; i < WARMUP; i++) await call(v, c);
      }),
    );
  } finally {
    for (const c of conns) c.release();
  }
  console.log(`warm-up: ${WARMUP} calls of each variant on each of ${connections} connections (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
}

async function main(): Promise<void> {
  const scratch = await scratchDatabase(DB);
  const url = new URL(scratch.url);
  try {
    const deployed = await deploy(url.toString(), await build("functions", { schemas: false }));
    const setup = new pg.Client({ connectionString: url.toString() });
    await setup.connect();
    await setup.query("CREATE SCHEMA bench");
    await setup.query(PLPGSQL);
    await setup.query("CREATE TABLE bench.node_idempotency (key text PRIMARY KEY, output jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())");
    await setup.query(
      "INSERT INTO shop.inventory SELECT 'sku-' || lpad(g::text, greatest(3, length(g::text)), '0'), 1000000 FROM generate_series(101, $1::int) g ON CONFLICT DO NOTHING",
      [SKUS],
    );
    await setup.query("VACUUM ANALYZE shop.inventory");
    const [{ server_version }] = (await setup.query("SHOW server_version")).rows;
    await setup.query("CREATE FUNCTION bench.txv8_lib() RETURNS text LANGUAGE txv8 AS $$ return String(plv8.txv8_version) $$");
    const [{ lib }] = (await setup.query("SELECT bench.txv8_lib() AS lib")).rows;
    const [major, minor] = String(lib).split(".").map(Number);
    if (!(major! > 1 || (major === 1 && minor! >= 1))) VARIANTS = VARIANTS.filter((v) => v !== "js-direct"); // txv8 < 1.1
    await setup.end();

    // idleTimeoutMillis 0: no idle connection is closed between rounds (pg's default closes it
    // after 10 s, so each c=8 round started on new, cold backends after the c=1 rounds).
    const pool = new pg.Pool({ connectionString: url.toString(), max: Math.max(...LEVELS), idleTimeoutMillis: 0, application_name: "bench-invoke" });
    pool.on("connect", (c) => {
      void c.query("SET default_transaction_isolation = 'serializable'");
      if (args["async-commit"]) void c.query("SET synchronous_commit = off");
    });
    pool.on("error", () => {}); // idle connections closed by the final DROP DATABASE
    console.log(
      `bench/invoke: PostgreSQL ${server_version}, bundle v${deployed.version} on ${deployed.language}, ${SKUS} SKUs, 3 items/order, ` +
        `SERIALIZABLE, ${args["async-commit"] ? "synchronous_commit off, " : ""}${ROUNDS} rounds × ${SECONDS}s per variant and concurrency (variants alternate)`,
    );
    if (WARMUP > 0) await warmUp(pool, Math.max(...LEVELS));
    const results: Round[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      for (const c of LEVELS) {
        for (const v of r % 2 === 0 ? VARIANTS : [...VARIANTS].reverse()) {
          const res = await round(pool, v, c);
          results.push(res);
          console.error(`  round ${r + 1} c=${c} ${v.padEnd(12)} ${res.tps.toFixed(0).padStart(6)} tps  p50 ${res.p50.toFixed(2)} ms  p99 ${res.p99.toFixed(2)} ms  retries ${res.retries}  client CPU ${(res.clientCpu * 100).toFixed(0)}%`);
        }
      }
    }
    await pool.end();

    const summary: Record<
      string,
      Record<number, { tps: number; min: number; max: number; p50: number; p99: number; clientCpu: number; retries: number; serverUs: number | null; clientUs: number }>
    > = {};
    console.log("\nvariant       conc   tps (median, [min–max])      p50 ms   p99 ms   client CPU        retries   CPU µs/call server+client");
    for (const v of VARIANTS) {
      summary[v] = {};
      for (const c of LEVELS) {
        const rs = results.filter((x) => x.variant === v && x.concurrency === c);
        const s = {
          tps: median(rs.map((x) => x.tps)),
          min: Math.min(...rs.map((x) => x.tps)),
          max: Math.max(...rs.map((x) => x.tps)),
          p50: median(rs.map((x) => x.p50)),
          p99: median(rs.map((x) => x.p99)),
          clientCpu: median(rs.map((x) => x.clientCpu)),
          retries: rs.reduce((a, x) => a + x.retries, 0),
          serverUs: rs.every((x) => x.serverUsPerCall !== null) ? median(rs.map((x) => x.serverUsPerCall!)) : null,
          clientUs: median(rs.map((x) => x.clientUsPerCall)),
        };
        summary[v]![c] = s;
        console.log(
          `${v.padEnd(13)} ${String(c).padStart(4)}   ${s.tps.toFixed(0).padStart(6)} [${s.min.toFixed(0)}–${s.max.toFixed(0)}]`.padEnd(44) +
            `${s.p50.toFixed(2).padStart(7)}  ${s.p99.toFixed(2).padStart(7)}   ${(s.clientCpu * 100).toFixed(0).padStart(5)}% of a core  ${String(s.retries).padStart(7)}   ` +
            `${s.serverUs === null ? "?" : s.serverUs.toFixed(0)} + ${s.clientUs.toFixed(0)}`,
        );
      }
    }
    const ratios: Record<string, number> = {};
    const needed: Variant[] = ["txfn", "plpgsql", "plpgsql-idem", "node-pg"];
    const haveBaselines = needed.every((v) => summary[v]);
    if (haveBaselines) console.log("\nratios (txfn / baseline, median tps; and the inverse ratio of CPU spent per call):");
    else console.log(`\nno ratios: they need the variants ${needed.join(", ")}`);
    for (const c of haveBaselines ? LEVELS : []) {
      const t = summary.txfn![c]!.tps;
      const a = t / summary.plpgsql![c]!.tps;
      const b = t / summary["node-pg"]![c]!.tps;
      const i = t / summary["plpgsql-idem"]![c]!.tps;
      ratios[`plpgsql_c${c}`] = a;
      ratios[`plpgsql_idem_c${c}`] = i;
      ratios[`nodepg_c${c}`] = b;
      const target = c === 8 ? `   (targets at c=8: ≥ 0.75 and ≥ 2.0: ${a >= 0.75 ? "met" : "NOT met"}, ${b >= 2 ? "met" : "NOT met"})` : "";
      console.log(`  c=${c}: vs PL/pgSQL ${a.toFixed(2)}×, vs node-pg ${b.toFixed(2)}×, vs PL/pgSQL+idempotency row ${i.toFixed(2)}×${target}`);
      const cpu = (v: Variant) => {
        const x = summary[v]![c]!;
        return x.serverUs === null ? null : x.serverUs + x.clientUs;
      };
      const [ct, cp, ci, cn] = [cpu("txfn"), cpu("plpgsql"), cpu("plpgsql-idem"), cpu("node-pg")];
      if (ct !== null && cp !== null && ci !== null && cn !== null) {
        console.log(
          `        by CPU per call (server backends + client; robust to other load): vs PL/pgSQL ${(cp / ct).toFixed(2)}×, ` +
            `vs node-pg ${(cn / ct).toFixed(2)}×, vs PL/pgSQL+idempotency row ${(ci / ct).toFixed(2)}×`,
        );
      }
      // the language handler alone (same SQL, no recording), for reading txfn's runtime cost
      const handler = (["js-bare", "js-direct"] as Variant[]).filter((v) => summary[v]).map((v) => {
        const x = summary[v]![c]!, cv = cpu(v);
        ratios[`${v.replace("-", "_")}_c${c}`] = x.tps / summary.plpgsql![c]!.tps;
        return `${v} ${(x.tps / summary.plpgsql![c]!.tps).toFixed(2)}×` + (cv !== null && cp !== null ? ` (CPU ${(cp / cv).toFixed(2)}×)` : "");
      });
      console.log(`        handler alone vs PL/pgSQL: ${handler.join(", ")}`);
    }
    mkdirSync("bench/results", { recursive: true });
    const file = `bench/results/invoke-${new Date().toISOString().replace(/[:.]/g, "-")}.json`;
    writeFileSync(file, JSON.stringify({ seconds: SECONDS, rounds: ROUNDS, skus: SKUS, asyncCommit: args["async-commit"], results, summary, ratios }, null, 2));
    console.log(`\nraw rounds: ${file}`);
  } finally {
    await scratch.close({ keep: args.keep });
  }
}

await main();
