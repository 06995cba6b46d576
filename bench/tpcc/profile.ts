/**
 * bench/tpcc/profile: where the server's time goes, per variant. Runs each SQL-driven variant of
 * the TPC-C mix at a fixed concurrency on a throwaway cluster while `perf record` (cpu-clock
 * samples with call graphs) watches the serving backends, then converts perf's shares into
 * microseconds per transaction: by library (PostgreSQL, V8, txv8, kernel…) and for the functions
 * that tell the costs apart (statement execution, subtransactions, provenance triggers, JSON,
 * compression, WAL flush at commit). perf walks call chains by frame pointers, which V8's frames
 * break: inclusive shares are reliable for functions called below JavaScript (SPI, executor,
 * triggers, subtransactions, JSON), not for those above it (the handler's entry points).
 *
 * Usage: npx tsx bench/tpcc/profile.ts [--seconds 15 --concurrency 2 --sql row|set
 *        --variants plpgsql,js-bare,txfn-norec,txfn-idem,txfn --warehouses 4]
 * Needs perf (Debian: linux-perf) allowed to profile the server's processes (root, or
 * kernel.perf_event_paranoid ≤ 1 for the server's user). Results in bench/results/tpcc-profile-*.json.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import pg from "pg";
import { backendCpuUs, serverCpu, serverCpuSince } from "../lib/measure.ts";
import { startThrowawayCluster } from "../../test/support/throwaway-cluster.ts";
import { Terminal, type Transaction } from "./inputs.ts";
import type { SqlStyle } from "./logic.ts";
import { defaultScale } from "./scale.ts";
import { buildInfo, prepareDatabase, recreateDatabase, setCapture } from "./setup.ts";
import { nodePgVariant, plpgsqlVariant, txfnVariant, withRetries, type Variant, type VariantName } from "./variants.ts";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "15" },
    concurrency: { type: "string", default: "2" },
    sql: { type: "string", default: "row" },
    variants: { type: "string", default: "plpgsql,js-bare,txfn-norec,txfn-idem,txfn" },
    warehouses: { type: "string", default: "4" },
  },
});
const STYLE = args.sql as SqlStyle;
const C = Number(args.concurrency);
const SCALE = defaultScale(Number(args.warehouses));

/**
 * Functions whose inclusive share separates the costs (perf symbol names, prefix match; txv8's
 * wrappers `txv8_pg<…>` match too). `max`: the prefixes nest (take the outermost), else their shares add up.
 */
const FUNCTIONS: Record<string, { prefixes: string[]; max?: boolean }> = {
  "statements (SPI: executor, their triggers)": { prefixes: ["SPI_execute_plan", "SPI_execute_plan_with_paramlist"], max: true },
  "executor start (plan initialisation per statement)": { prefixes: ["standard_ExecutorStart"] },
  "provenance capture (AFTER ROW triggers)": { prefixes: ["AfterTriggerEndQuery"] },
  "  of which to_jsonb(OLD/NEW)": { prefixes: ["to_jsonb"] },
  "subtransactions (begin + release; one per plv8 statement)": { prefixes: ["BeginInternalSubTransaction", "ReleaseCurrentSubTransaction", "RollbackAndReleaseCurrentSubTransaction"] },
  "AtEOXact_GUC (transaction-local settings, at each subtransaction end)": { prefixes: ["AtEOXact_GUC"] },
  "JSON text → jsonb (input, output, recorded rows)": { prefixes: ["jsonb_in"] },
  "JSON.stringify (V8)": { prefixes: ["v8::internal::JsonStringifier::Stringify"] },
  "JSON.parse (V8)": { prefixes: ["v8::internal::JsonParser<unsigned char>::ParseJson"] },
  "pglz compression (TOAST)": { prefixes: ["pglz_compress_datum"] },
  "txv8 value conversion (rows, strings)": { prefixes: ["txv8_rowconv_rows", "txv8_string_to_server", "txv8_string_from_server", "txv8_spi_collect_args"] },
  "WAL flush at commit": { prefixes: ["XLogFlush"] },
  "V8 garbage collection": { prefixes: ["v8::internal::Heap::CollectGarbage"] },
};

function perfReport(file: string, children: boolean, sort: string): string {
  const r = spawnSync("perf", ["report", "-i", file, children ? "--children" : "--no-children", "--sort", sort, "--stdio", "-g", "none"], { encoding: "utf8", maxBuffer: 256 * 1024 * 1024 });
  return r.stdout;
}

/** Share (0..1) per library, from perf's self time. */
function byLibrary(file: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of perfReport(file, false, "dso").split("\n")) {
    const m = /^\s+([\d.]+)%\s+(.+?)\s*$/.exec(line);
    if (!m) continue;
    // "(deleted)": the library was reinstalled while the server ran (its symbols are then unknown to perf)
    const lib = m[2]!.startsWith("[JIT]") ? "[JIT] (V8 generated code)" : m[2]!;
    out[lib] = (out[lib] ?? 0) + Number(m[1]) / 100;
  }
  return out;
}

/** Inclusive share (0..1) of each FUNCTIONS entry: the largest matching symbol's (symbols of several template instances are summed). */
function byFunction(file: string): Record<string, number> {
  const rows: { pct: number; sym: string }[] = [];
  for (const line of perfReport(file, true, "sym").split("\n")) {
    const m = /^\s+([\d.]+)%\s+[\d.]+%\s+\[.\]\s+(.+?)\s*$/.exec(line);
    if (m) rows.push({ pct: Number(m[1]) / 100, sym: m[2]! });
  }
  const out: Record<string, number> = {};
  for (const [name, { prefixes, max }] of Object.entries(FUNCTIONS)) {
    const shares = prefixes.map((p) => {
      // perf may list a symbol more than once (samples with cut call chains): take its largest share
      const best = new Map<string, number>();
      for (const r of rows) if (r.sym.startsWith(p) || r.sym.startsWith(`txv8_pg<${p}`)) best.set(r.sym, Math.max(best.get(r.sym) ?? 0, r.pct));
      return [...best.values()].reduce((a, b) => a + b, 0);
    });
    out[name] = max ? Math.max(...shares) : shares.reduce((a, b) => a + b, 0);
  }
  return out;
}

/**
 * js-bare: the deployed bundle's function bodies called from a plain txv8 function with a
 * minimal ctx (plans prepared once per SQL text, nothing recorded, no pinning, no subtransaction
 * around the body) — the same JavaScript and statements as txfn without its runtime, so that
 * plpgsql → js-bare is the language handler's cost and js-bare → txfn-norec the runtime's.
 */
const JS_BARE = `
CREATE OR REPLACE FUNCTION tpcc_baseline.js_bare(fn text, input jsonb) RETURNS jsonb LANGUAGE txv8 AS $fn$
  const g = globalThis;
  if (!g.__tpccBare) {
    const code = plv8.execute("SELECT code FROM txfn.bundles WHERE active")[0].code;
    const module = { exports: {} };
    (0, eval)("(function (module, exports, require) {\\n" + code + "\\n})")(module, module.exports, () => { throw new Error("no require"); });
    const fns = {};
    for (const ns of Object.values(module.exports.modules)) for (const [k, v] of Object.entries(ns)) if (v && v.__txfn === "transaction") fns[k] = v;
    const plans = new Map();
    const query = (sql, params) => {
      let p = plans.get(sql);
      if (p === undefined) plans.set(sql, (p = plv8.prepare(sql)));
      return p.execute(params || []);
    };
    g.__tpccBare = { fns, ctx: { query, execute: query } };
  }
  return g.__tpccBare.fns[fn].body(g.__tpccBare.ctx, input);
$fn$`;

function jsBareVariant(): Variant {
  const fn = (tx: Transaction) => (tx.kind === "payment" ? "payment" : STYLE === "set" ? "newOrderSetAtATime" : "newOrder");
  return {
    name: "js-bare" as VariantName,
    usesPool: true,
    async run(conn, tx) {
      try {
        const { value, retries } = await withRetries(async () =>
          (await conn!.query({ name: "tpcc_js_bare", text: "SELECT tpcc_baseline.js_bare($1, $2::jsonb) AS r", values: [fn(tx), JSON.stringify(tx.input)] })).rows[0].r,
        );
        return { output: value, rolledBack: false, retries };
      } catch (err) {
        if (String((err as Error).message).includes("Item number is not valid")) return { output: null, rolledBack: true, retries: 0 };
        throw err;
      }
    },
  };
}

function variantOf(name: VariantName | "js-bare"): Variant {
  if (name === "js-bare") return jsBareVariant();
  if (name === "plpgsql") return plpgsqlVariant(STYLE);
  if (name === "node-pg") return nodePgVariant(STYLE);
  if (name === "txfn" || name === "txfn-idem" || name === "txfn-norec") return txfnVariant(STYLE, name);
  throw new Error(`profile: variant ${name} is not profiled (DBOS's work is spread over its own connections)`);
}

async function main(): Promise<void> {
  const cluster = await startThrowawayCluster();
  const results: Record<string, unknown>[] = [];
  let build: Awaited<ReturnType<typeof buildInfo>> | undefined;
  try {
    const app = await recreateDatabase(cluster.url, "txfn_bench_tpcc_profile");
    const db = await prepareDatabase(app, SCALE, 3);
    const pool = new pg.Pool({ connectionString: app, max: C, options: "-c default_transaction_isolation=repeatable\\ read" });
    const postmaster = Number(readFileSync(`${cluster.cluster.dataDir}/postmaster.pid`, "utf8").split("\n")[0]);
    let k = 0;
    await pool.query(JS_BARE);
    build = await buildInfo(pool);
    console.log(`txfn ${build.commit}, ${build.txv8}, provenance capture by the ${build.captureTrigger} trigger`);
    for (const name of args.variants.split(",") as (VariantName | "js-bare")[]) {
      const v = variantOf(name);
      await setCapture(app, name === "txfn");
      const conns = await Promise.all(Array.from({ length: C }, () => pool.connect()));
      const pids = await Promise.all(conns.map(async (c) => (await c.query("SELECT pg_backend_pid() AS p")).rows[0].p as number));
      const terminals = conns.map((_, i) => new Terminal(SCALE, 1 + (i % SCALE.warehouses), db.constants, 100 + i));
      let n = 0;
      const load = async (ms: number) => {
        const end = performance.now() + ms;
        await Promise.all(conns.map(async (c, i) => {
          while (performance.now() < end) {
            await v.run(c, terminals[i]!.next(), `profile-${name}-${k++}`);
            n++;
          }
        }));
      };
      await load(3000); // warm
      const file = `/tmp/txfn-tpcc-perf-${process.pid}-${name}.data`;
      const perf = spawn("perf", ["record", "-e", "cpu-clock", "-F", "999", "-g", "-o", file, "-p", pids.join(",")], { stdio: "ignore" });
      await new Promise((r) => setTimeout(r, 500));
      n = 0;
      const s0 = serverCpu(postmaster)!;
      const b0 = backendCpuUs(pids)!;
      const t0 = performance.now();
      await load(Number(args.seconds) * 1000);
      const wall = (performance.now() - t0) / 1000;
      const serverUs = serverCpuSince(s0, postmaster) / n;
      const b1 = backendCpuUs(pids)!;
      perf.kill("SIGINT");
      await new Promise((r) => perf.on("exit", r));
      for (const c of conns) c.release();
      // perf's shares are of the serving backends' samples: scale them by the backends' CPU per transaction.
      const backendUs = (b1 - b0) / n;
      const libs = byLibrary(file);
      const fns = byFunction(file);
      rmSync(file, { force: true });
      results.push({ variant: name, tps: n / wall, serverUsPerTx: serverUs, backendUsPerTx: backendUs, libraries: libs, functions: fns });
      console.log(
        `\n${name} (${STYLE}, c=${C}): ${(n / wall).toFixed(0)} tx/s, server ${serverUs.toFixed(0)} µs/tx (all server processes), ` +
          `serving backends ${backendUs.toFixed(0)} µs/tx, split by their perf samples:`,
      );
      for (const [lib, share] of Object.entries(libs).sort((a, b) => b[1] - a[1]).slice(0, 6)) {
        console.log(`  ${lib.padEnd(30)} ${(share * 100).toFixed(1).padStart(5)}%  ≈ ${(share * backendUs).toFixed(0).padStart(5)} µs/tx`);
      }
      for (const [fn, share] of Object.entries(fns)) {
        if (share > 0.001) console.log(`  ${fn.padEnd(72)} ${(share * 100).toFixed(1).padStart(5)}%  ≈ ${(share * backendUs).toFixed(0).padStart(5)} µs/tx`);
      }
    }
    await pool.end();
  } finally {
    await cluster.remove();
  }
  mkdirSync("bench/results", { recursive: true });
  const out = `bench/results/tpcc-profile-${new Date().toISOString().replace(/[:.]/g, "-")}.json`;
  writeFileSync(out, JSON.stringify({ sql: STYLE, concurrency: C, seconds: Number(args.seconds), scale: SCALE, build, results }, null, 2));
  console.log(`\n${out}`);
}

await main();
