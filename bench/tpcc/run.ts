/**
 * bench/tpcc: TPC-C New-Order and Payment (scaled down: scale.ts) run four ways over one
 * database, side by side — txfn functions through txfn.invoke with idempotency keys, hand-written
 * PL/pgSQL (the limit), node-pg transactions with an idempotency row, DBOS Transact 4.24.16
 * transactions in workflows — plus txfn without recording (no key, provenance capture off).
 *
 * Every variant runs at concurrency 1, 4 and 8 in this process; rounds alternate the variants
 * (the order rotates round by round, so autovacuum and other load on the machine hit all of them
 * alike) and every variant gets the same terminals' input streams. All run at REPEATABLE READ
 * (snapshot isolation, under which New-Order and Payment execute serializably) with the same SQL
 * and indexes. Prints throughput (median round with the spread), p50/p99, retries, CPU per
 * transaction of the server and of this process (they share the machine's cores), the ratios to
 * PL/pgSQL and to txfn, the targets at concurrency 8 and the recording overhead; writes JSON and
 * an SVG chart to bench/results/, then checks TPC-C's consistency conditions 1–4.
 *
 * Usage: npm run bench [-- --quick] [--seconds 10 --rounds 3 --warehouses 4 --concurrency 1,4,8
 *        --sql row|set --variants txfn,txfn-norec,plpgsql,node-pg,dbos[,txfn-idem] --async-commit --keep]
 * --sql row (default): New-Order as TPC-C's profile reads, a statement per item read, stock
 *   update and order line; --sql set: three statements for all lines (the same rows touched).
 * --async-commit: synchronous_commit = off in both databases (CPU cost without the disk's).
 * Uses its own throwaway PostgreSQL cluster, or DATABASE_URL when set (creates and drops the
 * databases txfn_bench_tpcc and txfn_bench_tpcc_dbos there).
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import pg from "pg";
import { machineCpuUs, machineInfo, serverCpu, serverCpuSince } from "../lib/measure.ts";
import { removeNow, startThrowawayCluster, type ThrowawayCluster } from "../../test/support/throwaway-cluster.ts";
import { renderChart } from "./chart.ts";
import { violatedConditions } from "./consistency.ts";
import { Terminal, type NURandConstants, type Transaction } from "./inputs.ts";
import type { SqlStyle } from "./logic.ts";
import { formatTable, ratios, summarise, type Round } from "./report.ts";
import { defaultScale, scaleNotes } from "./scale.ts";
import { buildInfo, dropDatabase, prepareDatabase, recreateDatabase, setCapture, withClient } from "./setup.ts";
import {
  ALL_VARIANTS,
  DBOS_VERSION,
  VARIANTS,
  dbosVariant,
  launchDbos,
  nodePgVariant,
  plpgsqlVariant,
  shutdownDbos,
  txfnVariant,
  type Variant,
  type VariantName,
} from "./variants.ts";

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    seconds: { type: "string" },
    rounds: { type: "string" },
    warmup: { type: "string" },
    warehouses: { type: "string", default: "4" },
    concurrency: { type: "string", default: "1,4,8" },
    sql: { type: "string", default: "row" },
    variants: { type: "string", default: VARIANTS.join(",") },
    seed: { type: "string" },
    "async-commit": { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
  },
});
const QUICK = args.quick;
const SECONDS = Number(args.seconds ?? (QUICK ? 2 : 10));
const ROUNDS = Number(args.rounds ?? (QUICK ? 1 : 3));
const WARMUP = Number(args.warmup ?? (QUICK ? 1 : 5));
const LEVELS = args.concurrency.split(",").map(Number);
const STYLE = args.sql as SqlStyle;
if (STYLE !== "row" && STYLE !== "set") throw new Error(`--sql must be row or set, got ${args.sql}`);
const SELECTED = args.variants.split(",") as VariantName[];
for (const v of SELECTED) if (!ALL_VARIANTS.includes(v)) throw new Error(`unknown variant ${v} (known: ${ALL_VARIANTS.join(", ")})`);
const SCALE = defaultScale(Number(args.warehouses));
const SEED = Number(args.seed ?? Math.floor(Math.random() * 2 ** 31));
const APP_DB = "txfn_bench_tpcc";
const SYS_DB = "txfn_bench_tpcc_dbos";
const MAX_C = Math.max(...LEVELS);

/** The postmaster's pid when the server runs on this machine (parent of a backend, named postgres), else null. */
async function postmasterPid(url: string): Promise<number | null> {
  return withClient(url, async (c) => {
    const pid = (await c.query("SELECT pg_backend_pid() AS pid")).rows[0].pid as number;
    try {
      const ppid = Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")[1]);
      return readFileSync(`/proc/${ppid}/comm`, "utf8").trim().startsWith("postgres") ? ppid : null;
    } catch {
      return null;
    }
  });
}

interface Ctx {
  pool: pg.Pool;
  appUrl: string;
  postmaster: number | null;
  capture: boolean | null;
  runId: string;
}

/** Capture on for txfn, off for everything else (the baselines record nothing of the kind). */
async function ensureCapture(ctx: Ctx, variant: VariantName): Promise<void> {
  const want = variant === "txfn";
  if (ctx.capture === want) return;
  await setCapture(ctx.appUrl, want);
  ctx.capture = want;
}

/** One round: `concurrency` terminals run `variant` back to back for `seconds` (after one warm transaction each). */
async function runRound(ctx: Ctx, variant: Variant, round: number, concurrency: number, seconds: number, constants: NURandConstants): Promise<Round> {
  await ensureCapture(ctx, variant.name);
  const conns = variant.usesPool ? await Promise.all(Array.from({ length: concurrency }, () => ctx.pool.connect())) : [];
  const terminals = Array.from({ length: concurrency }, (_, i) => new Terminal(SCALE, 1 + (i % SCALE.warehouses), constants, SEED + round * 1000 + concurrency * 100 + i));
  let n = 0;
  const key = (i: number) => `${ctx.runId}-${variant.name}-${round}-${concurrency}-${i}-${n++}`;
  const r: Round = {
    round, variant: variant.name, concurrency, seconds: 0, transactions: 0, newOrders: 0, payments: 0, rolledBack: 0, retries: 0,
    latencies: [], newOrderLatencies: [], paymentLatencies: [], serverCpuUs: null, clientCpuUs: 0, machineBusyUs: 0, machineTotalUs: 0, loadavg1: 0,
  };
  try {
    await Promise.all(terminals.map((t, i) => variant.run(conns[i] ?? null, t.next(), key(i)))); // warm: plans, contexts, caches
    const server0 = serverCpu(ctx.postmaster);
    const machine0 = machineCpuUs();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const end = t0 + seconds * 1000;
    await Promise.all(
      terminals.map(async (t, i) => {
        while (performance.now() < end) {
          const tx: Transaction = t.next();
          const s = performance.now();
          const o = await variant.run(conns[i] ?? null, tx, key(i));
          const ms = performance.now() - s;
          r.transactions++;
          r.retries += o.retries;
          r.latencies.push(ms);
          if (tx.kind === "newOrder") {
            r.newOrders++;
            r.newOrderLatencies.push(ms);
            if (o.rolledBack !== tx.rollback) throw new Error(`${variant.name}: New-Order ${tx.rollback ? "should have" : "should not have"} rolled back`);
            if (o.rolledBack) r.rolledBack++;
          } else {
            r.payments++;
            r.paymentLatencies.push(ms);
          }
        }
      }),
    );
    r.seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const machine1 = machineCpuUs();
    const serverUs = server0 && ctx.postmaster !== null ? serverCpuSince(server0, ctx.postmaster) : null;
    r.clientCpuUs = cpu.user + cpu.system;
    r.serverCpuUs = serverUs;
    r.machineBusyUs = machine1.busy - machine0.busy;
    r.machineTotalUs = machine1.total - machine0.total;
    r.loadavg1 = loadavg()[0]!;
    return r;
  } finally {
    for (const c of conns) c.release();
  }
}

async function main(): Promise<void> {
  let cluster: ThrowawayCluster | undefined;
  const onExit = () => {
    if (cluster) removeNow(cluster.cluster); // last resort when the process exits before the teardown
  };
  process.once("exit", onExit);
  let adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    console.error("starting a throwaway PostgreSQL cluster…");
    cluster = await startThrowawayCluster();
    process.once("SIGINT", () => process.exit(130));
    adminUrl = cluster.url;
  }
  const appUrl = await recreateDatabase(adminUrl, APP_DB);
  const sysUrl = await recreateDatabase(adminUrl, SYS_DB);
  let dbosLaunched = false;
  try {
    if (args["async-commit"]) {
      await withClient(adminUrl, async (c) => {
        for (const d of [APP_DB, SYS_DB]) await c.query(`ALTER DATABASE ${d} SET synchronous_commit = off`);
      });
    }
    console.error(`loading TPC-C data (${SCALE.warehouses} warehouses)…`);
    const db = await prepareDatabase(appUrl, SCALE, SEED);
    const variants: Variant[] = [];
    for (const name of SELECTED) {
      if (name === "txfn" || name === "txfn-norec" || name === "txfn-idem") variants.push(txfnVariant(STYLE, name));
      if (name === "plpgsql") variants.push(plpgsqlVariant(STYLE));
      if (name === "node-pg") variants.push(nodePgVariant(STYLE));
      if (name === "dbos") variants.push(dbosVariant(STYLE, appUrl, MAX_C));
    }
    if (SELECTED.includes("dbos")) {
      await launchDbos(sysUrl, MAX_C + 2);
      dbosLaunched = true;
    }
    // The isolation is set per connection, at connect (a startup option): every call stays one statement.
    // idleTimeoutMillis 0: the warmed connections stay for every round (pg's default closes one idle
    // for 10 s, so the c=4 and c=8 rounds began on new backends, cold for txv8's compiled code).
    const pool = new pg.Pool({
      connectionString: appUrl,
      max: MAX_C,
      idleTimeoutMillis: 0,
      application_name: "bench-tpcc",
      options: "-c default_transaction_isolation=repeatable\\ read",
    });
    pool.on("error", () => {});
    const ctx: Ctx = { pool, appUrl, postmaster: await postmasterPid(appUrl), capture: false, runId: randomBytes(4).toString("hex") };
    const [{ server_version, iso }] = (await pool.query("SELECT current_setting('server_version') AS server_version, current_setting('default_transaction_isolation') AS iso")).rows;
    if (iso !== "repeatable read") throw new Error(`the pool's connections run at ${iso}, not repeatable read`);
    const machine = machineInfo();
    const build = await buildInfo(pool);
    const header =
      `bench/tpcc: TPC-C New-Order + Payment (45:43), ${STYLE === "row" ? "row at a time" : "set at a time"}; PostgreSQL ${server_version}, ` +
      `REPEATABLE READ${args["async-commit"] ? ", synchronous_commit off" : ""}; txfn ${build.commit}, bundle v${db.deployed.version} on ${db.deployed.language} ${build.txv8}, ` +
      `provenance capture by the ${build.captureTrigger} trigger; ` +
      `DBOS Transact @dbos-inc/dbos-sdk ${DBOS_VERSION} + @dbos-inc/postgres-datasource ${DBOS_VERSION}; ` +
      `${ROUNDS} round(s) × ${SECONDS}s per variant and concurrency (order rotates each round), warm-up ${WARMUP}s per variant; ` +
      `${machine.cores} × ${machine.cpu}, load average ${machine.loadavg.join(" ")} at start; data loaded in ${db.loadSeconds.toFixed(1)}s`;
    console.log(header);
    for (const note of scaleNotes(SCALE)) console.log(`  scaled: ${note}`);

    for (const v of variants) await runRound(ctx, v, -1, MAX_C, WARMUP, db.constants); // warm-up, not recorded
    const rounds: Round[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      for (const c of LEVELS) {
        const order = variants.map((_, i) => variants[(i + round + LEVELS.indexOf(c)) % variants.length]!);
        for (const v of order) {
          const r = await runRound(ctx, v, round, c, SECONDS, db.constants);
          rounds.push(r);
          console.error(
            `  round ${round + 1} c=${c} ${v.name.padEnd(10)} ${(r.transactions / r.seconds).toFixed(0).padStart(6)} tx/s  retries ${r.retries}  ` +
              `client ${((r.clientCpuUs / (r.seconds * 1e6)) * 100).toFixed(0)}% of a core  load ${r.loadavg1.toFixed(2)}`,
          );
        }
      }
    }
    const violated = await withClient(appUrl, (c) => violatedConditions(c));
    await pool.end();

    const names = variants.map((v) => v.name);
    const summary = summarise(rounds, names, LEVELS);
    const rs = ratios(summary, LEVELS);
    console.log(`\n${formatTable(summary, rs, LEVELS)}`);
    const loads = rounds.map((r) => r.loadavg1);
    console.log(`\nload average (1 min) during the rounds: ${Math.min(...loads).toFixed(2)}–${Math.max(...loads).toFixed(2)}; at the end ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);
    console.log(`TPC-C consistency conditions 1–4: ${violated.length === 0 ? "all hold" : `VIOLATED: ${violated.join("; ")}`}`);

    mkdirSync("bench/results", { recursive: true });
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    const base = `bench/results/tpcc-${stamp}`;
    writeFileSync(
      `${base}.json`,
      JSON.stringify(
        {
          header,
          config: { quick: QUICK, seconds: SECONDS, rounds: ROUNDS, warmup: WARMUP, levels: LEVELS, sql: STYLE, isolation: "repeatable read", asyncCommit: args["async-commit"], seed: SEED, scale: SCALE, scaleNotes: scaleNotes(SCALE) },
          versions: {
            postgres: server_version, node: process.version, dbosSdk: DBOS_VERSION, dbosPostgresDatasource: DBOS_VERSION,
            txfnBundle: db.deployed.version, language: db.deployed.language, ...build,
          },
          machine: { ...machine, loadavgEnd: loadavg() },
          consistency: { violated },
          summary,
          ratios: rs,
          rounds: rounds.map(({ latencies: _a, newOrderLatencies: _b, paymentLatencies: _c, ...rest }) => rest),
        },
        null,
        2,
      ),
    );
    writeFileSync(
      `${base}.svg`,
      renderChart(summary, names, LEVELS, `TPC-C New-Order + Payment (${STYLE === "row" ? "row at a time" : "set at a time"}), ${SCALE.warehouses} warehouses, REPEATABLE READ`,
        `PostgreSQL ${server_version}, ${machine.cores} × ${machine.cpu}; DBOS ${DBOS_VERSION}; ${ROUNDS} round(s) × ${SECONDS}s; load avg ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}`),
    );
    console.log(`results: ${base}.json, ${base}.svg`);
    if (violated.length > 0) process.exitCode = 1;
  } finally {
    if (dbosLaunched) await shutdownDbos().catch(() => {});
    if (!args.keep || cluster) {
      for (const d of [APP_DB, SYS_DB]) await dropDatabase(adminUrl, d).catch(() => {});
    }
    process.removeListener("exit", onExit);
    await cluster?.remove();
  }
}

await main();
