/**
 * bench/provenance/callgrind.ts: instructions per reserveInventory invocation (3 captured
 * UPDATEs) with capture off, with the C row trigger (txfn_capture) and with the PL/pgSQL one,
 * counted by callgrind in a single-user backend — deterministic, unlike time on a shared machine.
 * Each invocation is its own SERIALIZABLE transaction. Per invocation = (instructions of a run
 * with `--calls` + `--extra` invocations − those of a run with `--calls`) / `--extra`, both runs
 * on their own copy of the same database, so start-up and warm-up cancel out; per change =
 * (on − off) / 3. For the C trigger it also splits a change by function (inclusive
 * instructions of the trigger's parts).
 *
 * `--workload neworder` counts TPC-C New-Order's writes instead (bench/tpcc's tables, a PL/pgSQL
 * function per order: the district UPDATE, the orders and new_order INSERTs, 10 × a stock UPDATE
 * of its 17-column row and an order_line INSERT — 23 captured changes, the rows issue 9's
 * benchmark captures), per change = (on − off) / 23. It also prints the WAL bytes per call of each
 * variant (`--extra` calls on a live copy after a checkpoint, full-page images included).
 *
 * Usage: npm run bench:provenance:callgrind [-- --calls 20 --extra 100 --workload reserve|neworder]
 * Needs valgrind. Starts (and removes) a throwaway cluster of its own.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import pg from "pg";
import { build } from "../../bundler/index.ts";
import { deploy } from "../../client/index.ts";
import { clusterOsUser, runAsOptions } from "../../db/os-user.ts";
import { pgBinDir } from "../../db/pg-install.ts";
import { startThrowawayCluster } from "../../test/support/throwaway-cluster.ts";
import { fileURLToPath } from "node:url";
import { ensureSystemSchema } from "../../migrations/index.ts";
import { installCapture } from "../../provenance/index.ts";

const { values: args } = parseArgs({
  options: {
    calls: { type: "string", default: "20" },
    extra: { type: "string", default: "100" },
    workload: { type: "string", default: "reserve" },
  },
});
const WORKLOAD = args.workload as "reserve" | "neworder";
if (WORKLOAD !== "reserve" && WORKLOAD !== "neworder") throw new Error("--workload is reserve or neworder");
/** Captured changes per call. */
const CHANGES = WORKLOAD === "reserve" ? 3 : 23;
const CALLS = Number(args.calls);
const EXTRA = Number(args.extra);
if (!(CALLS > 0 && EXTRA > 0)) throw new Error("--calls and --extra must be positive");
if (spawnSync("valgrind", ["--version"]).status !== 0) throw new Error("valgrind is not installed (apt-get install valgrind)");

type Variant = "capture off" | "C trigger" | "PL/pgSQL trigger";
const DATABASES: Record<Variant, string> = { "capture off": "cg_off", "C trigger": "cg_c", "PL/pgSQL trigger": "cg_plpgsql" };
/** The C trigger's parts, reported per change (inclusive). */
const PARTS = ["txfn_capture_row", "capture_seq_next", "capture_change_form", "capture_row_encode", "capture_row_key", "row_to_jsonb", "key_of_row", "capture_context_get", "capture_store_insert"];
const TPCC_SCHEMA = fileURLToPath(new URL("../tpcc/functions/migrations/1733000000000_tpcc-schema.sql", import.meta.url));

/** New-Order's writes, row at a time as bench/tpcc/plpgsql.sql does them (reads left out). */
const NEWORDER_SQL = `
INSERT INTO tpcc.district SELECT d, 1, 'district', 'street 1', 'street 2', 'city', 'ST', '123451111', 0.0825, 30000.00, 3001
  FROM generate_series(1, 10) d;
INSERT INTO tpcc.stock SELECT i, 1, 50, ${Array.from({ length: 10 }, (_, k) => `rpad('dist ${k + 1} ' || i, 24, 'x')`).join(", ")}, 0, 0, 0,
  rpad('stock data ' || i, 40, 'y') FROM generate_series(1, 100) i;
CREATE FUNCTION public.cg_neworder(n integer) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  d integer := n % 10 + 1;
  o integer;
  dist text;
BEGIN
  UPDATE tpcc.district SET d_next_o_id = d_next_o_id + 1 WHERE d_w_id = 1 AND d_id = d RETURNING d_next_o_id - 1 INTO o;
  INSERT INTO tpcc.orders VALUES (o, d, 1, n % 3000 + 1, now(), NULL, 10, 1);
  INSERT INTO tpcc.new_order VALUES (o, d, 1);
  FOR k IN 1 .. 10 LOOP
    UPDATE tpcc.stock SET s_quantity = CASE WHEN s_quantity >= 15 THEN s_quantity - 5 ELSE s_quantity + 86 END,
        s_ytd = s_ytd + 5, s_order_cnt = s_order_cnt + 1
      WHERE s_w_id = 1 AND s_i_id = (n * 10 + k * 7) % 100 + 1 RETURNING s_dist_01 INTO dist;
    INSERT INTO tpcc.order_line VALUES (o, d, 1, k, (n * 10 + k * 7) % 100 + 1, 1, NULL, 5, 5 * 12.34, dist);
  END LOOP;
  RETURN true;
END $$;`;

/** One statement per line: `n` invocations of reserveInventory with distinct orders (3 SKUs each), or `n` New-Orders. */
function script(n: number, from: number): string {
  const lines: string[] = [];
  if (WORKLOAD === "neworder") {
    for (let i = from; i < from + n; i++) lines.push(`SELECT public.cg_neworder(${i})`);
    return lines.join("\n") + "\n";
  }
  for (let i = from; i < from + n; i++) {
    const skus = [1, 2, 3].map((k) => `sku-${String(((i * 3 + k) % 99) + 1).padStart(3, "0")}`);
    const order = { orderId: `cg-${i}`, items: skus.map((sku) => ({ sku, qty: 1 })) };
    lines.push(`SELECT app.reserve_inventory('${JSON.stringify(order)}'::jsonb, 'cg-${i}') -> 'output' IS NOT NULL`);
  }
  return lines.join("\n") + "\n";
}

interface Counted {
  total: number;
  parts: Record<string, number>;
}

/** Runs the single-user backend under callgrind on `database` with `calls` invocations. */
function countRun(dataDir: string, work: string, database: string, calls: number, tag: string): Counted {
  const input = join(work, `${tag}.sql`);
  const out = join(work, `${tag}.callgrind`);
  writeFileSync(input, script(calls, 0)); // the same orders on both copies: the first `--calls` are the same work
  chmodSync(input, 0o644);
  const user = clusterOsUser(dataDir);
  const r = spawnSync(
    "valgrind",
    ["--tool=callgrind", "--smc-check=all-non-file", `--callgrind-out-file=${out}`,
      join(pgBinDir(), "postgres"), "--single", "-D", dataDir, "-c", "default_transaction_isolation=serializable", database],
    { ...runAsOptions(user), input: readFileSync(input), cwd: work, maxBuffer: 64 << 20 },
  );
  if (r.status !== 0) throw new Error(`callgrind run failed (${r.status}): ${r.stderr.toString().slice(-2000)}`);
  const stdout = r.stdout.toString();
  const ok = (stdout.match(/= "t"/g) ?? []).length;
  if (ok !== calls) throw new Error(`expected ${calls} successful invocations, saw ${ok}:\n${stdout.slice(-2000)}`);
  const text = readFileSync(out, "utf8");
  const total = Number(/^(?:totals|summary): (\d+)/m.exec(text)?.[1]);
  const parts: Record<string, number> = {};
  const ann = spawnSync("callgrind_annotate", ["--inclusive=yes", "--threshold=100", out], { maxBuffer: 256 << 20 });
  for (const line of ann.stdout.toString().split("\n")) {
    const m = /^\s*([\d,]+)\s.*?:(\w+)(?: \[|$)/.exec(line);
    if (m && PARTS.includes(m[2]!) && parts[m[2]!] === undefined) parts[m[2]!] = Number(m[1]!.replace(/,/g, ""));
  }
  return { total, parts };
}

async function prepare(url: string): Promise<void> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query("CREATE DATABASE cg_base");
    const base = new URL(url);
    base.pathname = "/cg_base";
    if (WORKLOAD === "reserve") await deploy(base.toString(), await build("functions", { schemas: false }));
    const c = new pg.Client({ connectionString: base.toString() });
    await c.connect();
    if (WORKLOAD === "neworder") {
      await c.query("BEGIN");
      await ensureSystemSchema(c);
      await c.query(readFileSync(TPCC_SCHEMA, "utf8").split("-- Down Migration")[0]!.replace(/^GRANT .*$/gm, ""));
      await c.query(NEWORDER_SQL);
      await installCapture(c);
      await c.query("COMMIT");
    }
    const ext = await c.query("SELECT extversion FROM pg_extension WHERE extname = 'txfn_capture'");
    if (ext.rowCount !== 1) throw new Error("the txfn_capture extension is not installed in this PostgreSQL (bash scripts/setup)");
    await c.end();
    for (const [variant, db] of Object.entries(DATABASES) as [Variant, string][]) {
      await admin.query(`CREATE DATABASE ${db} TEMPLATE cg_base`);
      const u = new URL(url);
      u.pathname = `/${db}`;
      const d = new pg.Client({ connectionString: u.toString() });
      await d.connect();
      if (variant === "capture off") {
        await d.query("UPDATE txfn.provenance_config SET enabled = false");
        await d.query("SELECT * FROM txfn.provenance_sync()");
      }
      if (variant === "PL/pgSQL trigger") await d.query("DROP EXTENSION txfn_capture CASCADE"); // the event trigger re-syncs
      const fns = await d.query<{ f: string }>("SELECT DISTINCT tgfoid::regproc::text AS f FROM pg_trigger WHERE tgname = 'txfn_provenance'");
      const want = { "capture off": [], "C trigger": ["txfn._provenance_capture_c"], "PL/pgSQL trigger": ["txfn._provenance_capture"] }[variant];
      if (JSON.stringify(fns.rows.map((r) => r.f)) !== JSON.stringify(want)) throw new Error(`${db}: row triggers ${JSON.stringify(fns.rows)}, expected ${want}`);
      await d.end();
      for (const copy of ["a", "b", "w"]) await admin.query(`CREATE DATABASE ${db}_${copy} TEMPLATE ${db}`);
    }
  } finally {
    await admin.end();
  }
}

/** WAL bytes per call: `calls` calls on copy `${db}_w`, each its own transaction (full-page images included, as they come). */
async function walPerCall(url: string, db: string, calls: number): Promise<number> {
  const u = new URL(url);
  u.pathname = `/${db}_w`;
  // SERIALIZABLE, as the callgrind runs: reserveInventory refuses a weaker isolation
  const c = new pg.Client({ connectionString: u.toString(), options: "-c default_transaction_isolation=serializable" });
  await c.connect();
  try {
    await c.query("CHECKPOINT");
    const lsn = async () => (await c.query<{ l: string }>("SELECT pg_current_wal_insert_lsn()::text AS l")).rows[0]!.l;
    const from = await lsn();
    for (const line of script(calls, 0).trim().split("\n")) await c.query(line);
    const to = await lsn();
    const diff = await c.query<{ d: string }>("SELECT pg_wal_lsn_diff($1, $2)::text AS d", [to, from]);
    return Number(diff.rows[0]!.d) / calls;
  } finally {
    await c.end();
  }
}

async function main(): Promise<void> {
  const run = await startThrowawayCluster();
  const work = mkdtempSync(join(tmpdir(), "txfn-callgrind-"));
  chmodSync(work, 0o777);
  try {
    console.error("preparing databases (capture off, C trigger, PL/pgSQL trigger)…");
    await prepare(run.url);
    const wal: Record<string, number> = {};
    for (const [variant, db] of Object.entries(DATABASES) as [Variant, string][]) wal[variant] = await walPerCall(run.url, db, EXTRA);
    await run.cluster.stop();
    const per: Record<string, { call: number; parts: Record<string, number> }> = {};
    for (const [variant, db] of Object.entries(DATABASES) as [Variant, string][]) {
      console.error(`callgrind: ${variant} (${CALLS} and ${CALLS + EXTRA} invocations)…`);
      const a = countRun(run.cluster.dataDir, work, `${db}_a`, CALLS, `${db}-a`);
      const b = countRun(run.cluster.dataDir, work, `${db}_b`, CALLS + EXTRA, `${db}-b`);
      const parts: Record<string, number> = {};
      for (const p of PARTS) parts[p] = ((b.parts[p] ?? 0) - (a.parts[p] ?? 0)) / EXTRA;
      per[variant] = { call: (b.total - a.total) / EXTRA, parts };
    }
    const off = per["capture off"]!.call;
    const k = (x: number) => `${(x / 1000).toFixed(1)} k`;
    const what = WORKLOAD === "reserve" ? "reserveInventory invocation (3 captured UPDATEs)" : "New-Order's writes (23 captured changes)";
    console.log(`\ninstructions per ${what}, callgrind, single-user backend, SERIALIZABLE:`);
    for (const v of Object.keys(DATABASES) as Variant[]) {
      const call = per[v]!.call;
      const extra = v === "capture off" ? "" : `  (+${((call / off - 1) * 100).toFixed(1)}%; per captured change ${k((call - off) / CHANGES)})`;
      console.log(`  ${v.padEnd(18)} ${k(call).padStart(9)}${extra}`);
    }
    console.log(`\nWAL bytes per call (${EXTRA} calls after a checkpoint, full-page images included):`);
    for (const v of Object.keys(DATABASES) as Variant[]) {
      const extra = v === "capture off" ? "" : `  (per captured change ${((wal[v]! - wal["capture off"]!) / CHANGES).toFixed(0)} B)`;
      console.log(`  ${v.padEnd(18)} ${wal[v]!.toFixed(0).padStart(9)} B${extra}`);
    }
    const cParts = per["C trigger"]!.parts;
    console.log(`\nC trigger, per change (inclusive):`);
    console.log(`  ${"firing the AFTER ROW trigger".padEnd(30)} ${k((per["C trigger"]!.call - off) / CHANGES - cParts.txfn_capture_row! / CHANGES).padStart(8)}`);
    for (const p of PARTS) console.log(`  ${p.padEnd(30)} ${k(cParts[p]! / CHANGES).padStart(8)}`);
  } finally {
    if (process.env.KEEP_CALLGRIND) console.error(`callgrind files kept in ${work}`);
    else rmSync(work, { recursive: true, force: true });
    await run.remove();
  }
}

await main();
