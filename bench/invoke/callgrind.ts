/**
 * bench/invoke/callgrind.ts: instructions per call of bench/invoke's variants — txfn's
 * reserveInventory (idempotency recorded), PL/pgSQL without and with an idempotency row, and the
 * same SQL from a plain txv8 function with (js-bare) and without (js-direct) a subtransaction per
 * statement — counted by callgrind in a single-user backend: deterministic, unlike time on a
 * shared machine. Each call is its own SERIALIZABLE transaction on distinct SKUs (no contention).
 * Per call = (instructions of a run with `--calls` + `--extra` calls − those of a run with
 * `--calls`) / `--extra`, so start-up and warm-up cancel out. `--top N` also prints, for txfn, the
 * N functions with the most inclusive instructions per call (where the runtime's cost goes).
 *
 * Usage: npx tsx bench/invoke/callgrind.ts [--calls 20 --extra 60 --top 40 --capture on|off --invocations 100000
 *   --variants txfn,plpgsql,plpgsql-idem,js-bare,js-direct]
 * Needs valgrind. Starts (and removes) a throwaway cluster of its own; KEEP_CALLGRIND=1 keeps the
 * callgrind files.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import pg from "pg";
import { build } from "../../bundler/index.ts";
import { deploy } from "../../client/index.ts";
import { clusterOsUser, runAsOptions } from "../../db/os-user.ts";
import { pgBinDir } from "../../db/pg-install.ts";
import { startThrowawayCluster } from "../../test/support/throwaway-cluster.ts";
import { BASELINES_SQL } from "./baselines.ts";

const { values: args } = parseArgs({
  options: {
    calls: { type: "string", default: "20" },
    extra: { type: "string", default: "60" },
    top: { type: "string", default: "0" },
    capture: { type: "string", default: "on" },
    invocations: { type: "string", default: "100000" },
    variants: { type: "string", default: "txfn,plpgsql,plpgsql-idem,js-bare,js-direct" },
  },
});
const CALLS = Number(args.calls);
const EXTRA = Number(args.extra);
const TOP = Number(args.top);
if (!(CALLS > 0 && EXTRA > 0)) throw new Error("--calls and --extra must be positive");
if (args.capture !== "on" && args.capture !== "off") throw new Error("--capture is on or off");
if (spawnSync("valgrind", ["--version"]).status !== 0) throw new Error("valgrind is not installed (apt-get install valgrind)");

/** Each variant's statement, prepared once per run (a client's pool does the same: bench/invoke names its statements). */
const STATEMENTS: Record<string, string> = {
  txfn: "SELECT app.reserve_inventory($1, $2) -> 'output' IS NOT NULL",
  plpgsql: "SELECT bench.reserve_plpgsql($1) IS NOT NULL AND $2 IS NOT NULL",
  "plpgsql-idem": "SELECT bench.reserve_plpgsql_idem($1, $2) IS NOT NULL",
  "js-bare": "SELECT bench.reserve_js($1) IS NOT NULL AND $2 IS NOT NULL",
  "js-direct": "SELECT bench.reserve_js_direct($1) IS NOT NULL AND $2 IS NOT NULL",
};
const VARIANTS = args.variants.split(",");
for (const v of VARIANTS) if (!STATEMENTS[v]) throw new Error(`unknown variant ${v} (known: ${Object.keys(STATEMENTS).join(", ")})`);
const SKUS = 3000;

/** One statement per line: `n` calls with distinct orders (3 SKUs each) and keys of their own (`tag`: the run). */
function script(variant: string, n: number, tag: string): string {
  const lines: string[] = [`PREPARE call(jsonb, text) AS ${STATEMENTS[variant]}`];
  for (let i = 0; i < n; i++) {
    const skus = [1, 2, 3].map((k) => `sku-${String(101 + ((i * 3 + k) % (SKUS - 100))).padStart(3, "0")}`);
    const order = JSON.stringify({ orderId: `cg-${tag}-${i}`, items: skus.map((sku) => ({ sku, qty: 1 })) });
    lines.push(`EXECUTE call('${order}', 'cg-${tag}-${i}')`);
  }
  return lines.join("\n") + "\n";
}

interface Counted {
  total: number;
  inclusive: Map<string, number>;
}

/** Runs the single-user backend under callgrind with `calls` calls of `variant`. */
function countRun(dataDir: string, work: string, variant: string, calls: number, tag: string): Counted {
  const out = join(work, `${tag}.callgrind`);
  const user = clusterOsUser(dataDir);
  const r = spawnSync(
    "valgrind",
    ["--tool=callgrind", "--smc-check=all-non-file", `--callgrind-out-file=${out}`,
      join(pgBinDir(), "postgres"), "--single", "-D", dataDir, "-c", "default_transaction_isolation=serializable",
      "-c", "plan_cache_mode=force_generic_plan", "cg"],
    { ...runAsOptions(user), input: script(variant, calls, tag), cwd: work, maxBuffer: 64 << 20 },
  );
  if (r.status !== 0) throw new Error(`callgrind run failed (${r.status}): ${r.stderr.toString().slice(-2000)}`);
  const stdout = r.stdout.toString();
  const ok = (stdout.match(/= "t"/g) ?? []).length;
  if (ok !== calls) throw new Error(`${variant}: expected ${calls} successful calls, saw ${ok}:\n${stdout.slice(-2000)}`);
  const total = Number(/^(?:totals|summary): (\d+)/m.exec(readFileSync(out, "utf8"))?.[1]);
  const inclusive = new Map<string, number>();
  if (TOP > 0) {
    const ann = spawnSync("callgrind_annotate", ["--inclusive=yes", "--threshold=99.9", out], { maxBuffer: 256 << 20 });
    for (const line of ann.stdout.toString().split("\n")) {
      const m = /^\s*([\d,]+)\s.*?:([\w.:~<>]+)(?: \[|$)/.exec(line);
      if (m && !inclusive.has(m[2]!)) inclusive.set(m[2]!, Number(m[1]!.replace(/,/g, "")));
    }
  }
  return { total, inclusive };
}

async function prepare(url: string): Promise<void> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query("CREATE DATABASE cg");
  } finally {
    await admin.end();
  }
  const u = new URL(url);
  u.pathname = "/cg";
  await deploy(u.toString(), await build("functions", { schemas: false }));
  const c = new pg.Client({ connectionString: u.toString() });
  await c.connect();
  try {
    await c.query("CREATE SCHEMA bench");
    await c.query("CREATE TABLE bench.node_idempotency (key text PRIMARY KEY, output jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())");
    await c.query(BASELINES_SQL);
    await c.query(
      "INSERT INTO shop.inventory SELECT 'sku-' || lpad(g::text, greatest(3, length(g::text)), '0'), 1000000 FROM generate_series(101, $1::int) g ON CONFLICT DO NOTHING",
      [SKUS],
    );
    // a table of realistic size, so plans are those of a running system (a TID scan for the
    // outcome's UPDATE, not a scan of a one-page table)
    await c.query(
      "INSERT INTO txfn.invocations (idempotency_key, function, version, input, status, output, xid, snapshot, pinned_time, seed, determinism," +
        " isolation, role, started_at, ended_at) SELECT 'seed-' || g, 'reserveInventory', 1, '{}', 'ok', '{}', pg_current_xact_id(), pg_current_snapshot()," +
        " now(), g, 1, 'serializable', current_user, now(), now() FROM generate_series(1, $1::int) g",
      [Number(args.invocations)],
    );
    if (args.capture === "off") {
      await c.query("UPDATE txfn.provenance_config SET enabled = false");
      await c.query("SELECT * FROM txfn.provenance_sync()");
    }
    await c.query("VACUUM ANALYZE");
  } finally {
    await c.end();
  }
}

async function main(): Promise<void> {
  const run = await startThrowawayCluster();
  const work = mkdtempSync(join(tmpdir(), "txfn-callgrind-"));
  chmodSync(work, 0o777);
  try {
    console.error(`preparing (capture ${args.capture})…`);
    await prepare(run.url);
    await run.cluster.stop();
    const per: Record<string, number> = {};
    const functions: Record<string, Map<string, number>> = {};
    for (const v of VARIANTS) {
      console.error(`callgrind: ${v} (${CALLS} and ${CALLS + EXTRA} calls)…`);
      const a = countRun(run.cluster.dataDir, work, v, CALLS, `${v}-a`);
      const b = countRun(run.cluster.dataDir, work, v, CALLS + EXTRA, `${v}-b`);
      per[v] = (b.total - a.total) / EXTRA;
      functions[v] = new Map([...b.inclusive].map(([f, n]): [string, number] => [f, (n - (a.inclusive.get(f) ?? 0)) / EXTRA]));
    }
    const named = (m: Map<string, number> | undefined) => [...(m ?? [])].filter(([f]) => !f.startsWith("0x"));
    const top = named(functions.txfn).sort((x, y) => y[1] - x[1]);
    // where txfn spends more than the same SQL from a plain txv8 function: the runtime's cost
    const base = functions["js-direct"] ?? functions["js-bare"];
    const diff = base === undefined ? [] : named(functions.txfn).map(([f, n]): [string, number] => [f, n - (base.get(f) ?? 0)]).sort((x, y) => y[1] - x[1]);
    const k = (x: number) => `${(x / 1000).toFixed(1)} k`;
    console.log(`\ninstructions per call (callgrind, single-user backend, SERIALIZABLE, capture ${args.capture}):`);
    for (const v of VARIANTS) {
      const vs = per.plpgsql ? `  ${(per.plpgsql / per[v]!).toFixed(2)}× PL/pgSQL's speed` : "";
      console.log(`  ${v.padEnd(13)} ${k(per[v]!).padStart(9)}${vs}`);
    }
    if (top.length) {
      console.log(`\ntxfn: inclusive instructions per call, top ${TOP}:`);
      for (const [f, n] of top.slice(0, TOP)) console.log(`  ${k(n).padStart(9)}  ${f}`);
    }
    if (diff.length) {
      console.log(`\ntxfn minus ${functions["js-direct"] ? "js-direct" : "js-bare"}: inclusive instructions per call, top ${TOP}:`);
      for (const [f, n] of diff.slice(0, TOP)) console.log(`  ${k(n).padStart(9)}  ${f}`);
    }
  } finally {
    if (process.env.KEEP_CALLGRIND) console.error(`callgrind files kept in ${work}`);
    else rmSync(work, { recursive: true, force: true });
    await run.remove();
  }
}

await main();
