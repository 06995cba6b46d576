/**
 * bench/workflow: throughput of a 3-step workflow — a debit transaction, a no-op external step, a
 * credit transaction — on txfn (an embedded executor; transactions run in the database through
 * txfn.invoke) against DBOS Transact (@dbos-inc/dbos-sdk with @dbos-inc/postgres-datasource, both
 * 4.24.16: the registry serves no datasource that works with dbos-sdk 5.x), the same steps
 * written its way, on the same PostgreSQL, in one run, at concurrency 1, 4 and 8.
 *
 * Both run REPEATABLE READ transactions on the same table. Each "client" starts a workflow and
 * waits for its result, then starts the next. Variants alternate round by round; the median round
 * is reported with the spread, and the client's CPU share (this process runs both engines; the
 * database shares the same 2 cores). Target: txfn ≥ 2× DBOS.
 *
 * Usage: npm run bench:workflow [-- --seconds 5 --rounds 3 --concurrency 1,4,8]
 * Uses DATABASE_URL or the private cluster; creates (and drops) databases txfn_bench_workflow
 * (application, txfn's tables) and txfn_bench_workflow_dbos (DBOS's system database).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { DBOS } from "@dbos-inc/dbos-sdk";
import { PostgresDataSource } from "@dbos-inc/postgres-datasource";
import pg from "pg";
import { build } from "../../bundler/index.ts";
import { deploy } from "../../client/index.ts";
import { scratchDatabase } from "../lib/scratch-database.ts";
import { loadProject, startExecutor } from "../../workflows/index.ts";
import { bench3 } from "./project/workflows/bench3.ts";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "5" },
    rounds: { type: "string", default: "3" },
    concurrency: { type: "string", default: "1,4,8" },
    keep: { type: "boolean", default: false },
  },
});
const SECONDS = Number(args.seconds);
const ROUNDS = Number(args.rounds);
const LEVELS = args.concurrency.split(",").map(Number);
const APP_DB = "txfn_bench_workflow";
const SYS_DB = "txfn_bench_workflow_dbos";
const DBOS_VERSION = "4.24.16";
const ACCOUNTS = 10_000;

type Variant = "txfn" | "dbos";
const VARIANTS: Variant[] = ["txfn", "dbos"];

interface Round {
  variant: Variant;
  concurrency: number;
  tps: number;
  p50: number;
  p99: number;
  clientCpu: number; // client CPU time / wall time (1.0 = one core)
}

const pick = () => 1 + Math.floor(Math.random() * ACCOUNTS);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const app = await scratchDatabase(APP_DB);
  const sys = await scratchDatabase(SYS_DB);
  const appUrl = app.url;
  const sysUrl = sys.url;
  try {
    // txfn: deploy the project (its migration creates bench_wf.accounts), an embedded executor.
    const deployed = await deploy(appUrl, await build("bench/workflow/project", { schemas: false }));
    const executor = await startExecutor({
      databaseUrl: appUrl,
      workflows: await loadProject("bench/workflow/project"),
      executorId: "bench",
      poolSize: 10,
      maxConcurrent: 1000,
      applicationName: "bench-workflow-txfn",
    });

    // DBOS: the same steps its way, with a Postgres datasource on the same database.
    const u = new URL(appUrl);
    const pgOptions = { host: u.hostname, port: Number(u.port), database: APP_DB, username: decodeURIComponent(u.username), password: decodeURIComponent(u.password), max: 10 };
    await PostgresDataSource.initializeDBOSSchema(pgOptions);
    const ds = new PostgresDataSource("app", pgOptions);
    const debit = ds.registerTransaction(
      async (id: number) => {
        const rows = await ds.client`SELECT balance FROM bench_wf.accounts WHERE id = ${id} FOR UPDATE`;
        if (rows.length === 0) throw new Error(`no account ${id}`);
        await ds.client`UPDATE bench_wf.accounts SET balance = balance - 1 WHERE id = ${id}`;
        return { id };
      },
      { name: "debit", isolationLevel: "REPEATABLE READ" },
    );
    const credit = ds.registerTransaction(
      async (id: number) => {
        await ds.client`UPDATE bench_wf.accounts SET balance = balance + 1 WHERE id = ${id}`;
        return { id };
      },
      { name: "credit", isolationLevel: "REPEATABLE READ" },
    );
    const noop = DBOS.registerStep(async () => "ok", { name: "noop" });
    const dbosWorkflow = DBOS.registerWorkflow(
      async (from: number, to: number) => {
        await debit(from);
        await noop();
        await credit(to);
        return "done";
      },
      { name: "bench3" },
    );
    DBOS.setConfig({ name: "txfn-bench", systemDatabaseUrl: sysUrl, systemDatabasePoolSize: 10, logLevel: "error", runAdminServer: false });
    await DBOS.launch();

    const once: Record<Variant, () => Promise<unknown>> = {
      txfn: async () => (await executor.start(bench3, { from: pick(), to: pick() })).result(),
      dbos: () => dbosWorkflow(pick(), pick()),
    };

    async function round(variant: Variant, concurrency: number): Promise<Round> {
      await Promise.all(Array.from({ length: concurrency }, () => once[variant]())); // warm
      const latencies: number[] = [];
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      const end = t0 + SECONDS * 1000;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (performance.now() < end) {
            const s = performance.now();
            const out = await once[variant]();
            if (out !== "done") throw new Error(`${variant} workflow returned ${JSON.stringify(out)}`);
            latencies.push(performance.now() - s);
          }
        }),
      );
      const wall = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      latencies.sort((a, b) => a - b);
      const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!;
      return { variant, concurrency, tps: (latencies.length / wall) * 1000, p50: q(0.5), p99: q(0.99), clientCpu: (cpu.user + cpu.system) / 1000 / wall };
    }

    const versionCheck = new pg.Client({ connectionString: appUrl });
    await versionCheck.connect();
    const [{ server_version }] = (await versionCheck.query("SHOW server_version")).rows;
    await versionCheck.end();
    console.log(
      `bench/workflow: PostgreSQL ${server_version}; txfn bundle v${deployed.version} on ${deployed.language} vs DBOS Transact ` +
        `@dbos-inc/dbos-sdk ${DBOS_VERSION} + @dbos-inc/postgres-datasource ${DBOS_VERSION}; workflow = debit (txn) + no-op step + credit (txn), ` +
        `REPEATABLE READ, ${ACCOUNTS} accounts; ${ROUNDS} rounds × ${SECONDS}s per variant and concurrency (variants alternate)`,
    );
    const results: Round[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      for (const c of LEVELS) {
        for (const v of r % 2 === 0 ? VARIANTS : [...VARIANTS].reverse()) {
          const res = await round(v, c);
          results.push(res);
          console.error(
            `  round ${r + 1} c=${c} ${v.padEnd(5)} ${res.tps.toFixed(0).padStart(6)} workflows/s  p50 ${res.p50.toFixed(2)} ms  p99 ${res.p99.toFixed(2)} ms  client CPU ${(res.clientCpu * 100).toFixed(0)}%`,
          );
        }
      }
    }

    // Both engines must have done exactly what they were asked: money is only moved.
    const check = new pg.Client({ connectionString: appUrl });
    await check.connect();
    const [sums] = (
      await check.query<{ total: string; failed: string }>(
        `SELECT (SELECT sum(balance) FROM bench_wf.accounts)::text AS total,
                (SELECT count(*) FROM txfn.workflows WHERE status <> 'SUCCESS')::text AS failed`,
      )
    ).rows;
    await check.end();
    if (sums!.total !== String(ACCOUNTS * 1_000_000) || sums!.failed !== "0") throw new Error(`inconsistent after the run: ${JSON.stringify(sums)}`);

    await executor.stop();
    await DBOS.shutdown();

    const summary: Record<string, Record<number, { tps: number; min: number; max: number; p50: number; p99: number; clientCpu: number }>> = {};
    console.log("\nvariant  conc   workflows/s (median, [min–max])   p50 ms   p99 ms   client CPU");
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
        };
        summary[v]![c] = s;
        console.log(
          `${v.padEnd(8)} ${String(c).padStart(4)}   ${s.tps.toFixed(0).padStart(6)} [${s.min.toFixed(0)}–${s.max.toFixed(0)}]`.padEnd(51) +
            `${s.p50.toFixed(2).padStart(7)}  ${s.p99.toFixed(2).padStart(7)}   ${(s.clientCpu * 100).toFixed(0).padStart(4)}% of a core`,
        );
      }
    }
    console.log(`\nratio txfn / DBOS ${DBOS_VERSION} (median workflows/s; target ≥ 2.0):`);
    const ratios: Record<string, number> = {};
    for (const c of LEVELS) {
      const ratio = summary.txfn![c]!.tps / summary.dbos![c]!.tps;
      ratios[`c${c}`] = ratio;
      console.log(`  c=${c}: ${ratio.toFixed(2)}×  ${ratio >= 2 ? "met" : "NOT met"}`);
    }
    mkdirSync("bench/results", { recursive: true });
    const file = `bench/results/workflow-${new Date().toISOString().replace(/[:.]/g, "-")}.json`;
    writeFileSync(file, JSON.stringify({ seconds: SECONDS, rounds: ROUNDS, dbos: DBOS_VERSION, results, summary, ratios }, null, 2));
    console.log(`\nraw rounds: ${file}`);
  } finally {
    await app.close({ keep: args.keep }).catch(() => {});
    await sys.close({ keep: args.keep }).catch(() => {});
  }
}

await main();
