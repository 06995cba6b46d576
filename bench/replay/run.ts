/**
 * bench/replay: how long replaying a recorded trace takes compared with recording it.
 *
 * Records the workload of workload.ts (the running example's check-then-take requests from
 * concurrent Node clients, with the client's retries of serialization failures), then replays
 * the trace faithfully `--rounds` times and runs it again with the fixed takeStock
 * (retroaction), and prints run time / original time — the target is ≤ 0.5; R3 (PVLDB 16(11))
 * measured its retroaction at 0.11–0.78× of the original execution. Reconstruction (the scratch
 * database: CREATE DATABASE, pg_dump/pg_restore, undo) is a fixed cost per replay, printed apart.
 *
 * Wall time on a shared 2-core machine swings with other work, so each phase also reports the
 * CPU seconds the server (all its processes, sessions that ended included) and this Node process
 * used, the machine's busy share and its load average: the CPU ratio (replay / original) says how
 * much work the replay does, and moves far less than the time ratio.
 *
 * The original commits synchronously (as in production) unless --async-commit; replay always
 * commits asynchronously (its database is thrown away).
 *
 * Usage: npm run bench:replay [-- --invocations 10000 --concurrency 8 --think-ms 0 --rounds 3 --async-commit --no-retro --keep]
 * Uses DATABASE_URL or the private cluster; creates (and drops) a database txfn_bench_replay.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { replayTrace, retroTrace, type ReplayReport } from "../../replay/index.ts";
import { measurePhase, postmasterPid, type PhaseCpu } from "./cpu.ts";
import { shopDatabase } from "./shop-database.ts";
import { recordWorkload } from "./workload.ts";

const { values: args } = parseArgs({
  options: {
    invocations: { type: "string", default: "10000" },
    concurrency: { type: "string", default: "8" },
    skus: { type: "string", default: "20" },
    "think-ms": { type: "string", default: "0" },
    rounds: { type: "string", default: "3" },
    "async-commit": { type: "boolean", default: false },
    "no-retro": { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
  },
});

const DB = "txfn_bench_replay";

interface Run {
  report: ReplayReport;
  /** CPU of the run phase (from the schedule's start to the comparison) */
  cpu: PhaseCpu;
}

/** One replay or retroaction, with the CPU of its run phase (marked by the log lines replay/run.ts writes). */
async function measured(postmaster: number | null, body: (log: (m: string) => void) => Promise<ReplayReport>): Promise<Run> {
  let stop: (() => PhaseCpu) | null = null;
  let cpu: PhaseCpu | null = null;
  const report = await body((m) => {
    if (m.startsWith("running")) stop = measurePhase(postmaster);
    else if (m.startsWith("comparing") && stop) cpu = stop();
  });
  if (!cpu) throw new Error("replay did not log its run phase");
  return { report, cpu };
}

const cpuText = (c: PhaseCpu) =>
  `cpu: server ${c.serverS.toFixed(1)} s, node ${c.nodeS.toFixed(1)} s; machine ${(c.machineBusy * 100).toFixed(0)}% busy, load ${c.loadavg.join(" ")}`;

const cpuSum = (c: PhaseCpu) => c.serverS + c.nodeS;

const line = (what: string, { report: r, cpu }: Run, original: { ms: number; cpu: PhaseCpu }) => {
  const changed = r.invocations.length;
  console.log(
    `${what.padEnd(12)} run ${(r.timings.runMs / 1000).toFixed(2)} s  ratio ${(r.timings.runMs / original.ms).toFixed(2)}×  ` +
      `(+ reconstruct ${(r.timings.reconstructMs / 1000).toFixed(2)} s)  cpu ratio ${(cpuSum(cpu) / cpuSum(original.cpu)).toFixed(2)}×  ` +
      (what.startsWith("retro") ? `changed ${changed}, checks ${r.checks.every((c) => c.ok) ? "pass" : "FAIL"}` : `divergences ${changed}`),
  );
  console.log(`${"".padEnd(12)} ${cpuText(cpu)}; ${r.stats.roundTrips} round trips on ${r.stats.sessions} sessions`);
};

/** The median (of an even count, the mean of the middle two: with --rounds 2 it is not the faster round). */
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor((s.length - 1) / 2);
  return s.length % 2 ? s[m]! : (s[m]! + s[m + 1]!) / 2;
};

const scratch = await shopDatabase(DB);
const url = scratch.url;
try {
  const n = Number(args.invocations);
  const postmaster = await postmasterPid(url);
  const stopOriginal = measurePhase(postmaster);
  const rec = await recordWorkload(url, {
    invocations: n,
    concurrency: Number(args.concurrency),
    skus: Number(args.skus),
    thinkMs: Number(args["think-ms"]),
    asyncCommit: args["async-commit"],
  });
  const original = { ms: rec.ms, cpu: stopOriginal() };
  console.log(
    `original     ${n} invocations, concurrency ${args.concurrency}, think ${args["think-ms"]} ms${args["async-commit"] ? ", async commit" : ""}: ` +
      `${(rec.ms / 1000).toFixed(2)} s (${rec.retries} client retries, ${rec.applicationErrors} application errors)`,
  );
  console.log(`${"".padEnd(12)} ${cpuText(original.cpu)}`);
  const replays: Run[] = [];
  for (let k = 0; k < Math.max(1, Number(args.rounds)); k++) {
    const run = await measured(postmaster, (log) => replayTrace({ url, selector: { from: rec.from }, log }));
    replays.push(run);
    line(`replay #${k + 1}`, run, original);
  }
  let retro: Run | null = null;
  if (!args["no-retro"]) {
    retro = await measured(postmaster, (log) =>
      retroTrace({ url, selector: { from: rec.from }, bundleDir: "functions/examples/oversell-fixed", checks: ["SELECT * FROM inventory WHERE stock < 0"], log }),
    );
    line("retroaction", retro, original);
  }
  const ratio = median(replays.map((r) => r.report.timings.runMs)) / rec.ms;
  const cpuRatio = median(replays.map((r) => cpuSum(r.cpu))) / cpuSum(original.cpu);
  console.log(
    `replay time / original time = ${ratio.toFixed(2)} (median of ${replays.length}; target ≤ 0.5; R3's retroaction: 0.11–0.78); ` +
      `replay CPU / original CPU = ${cpuRatio.toFixed(2)}`,
  );
  mkdirSync("bench/results", { recursive: true });
  const file = `bench/results/replay-${new Date().toISOString().replace(/[:.]/g, "-")}.json`;
  const summary = (r: Run) => ({ timings: r.report.timings, stats: r.report.stats, counts: r.report.counts, cpu: r.cpu });
  writeFileSync(
    file,
    JSON.stringify({ args, original: { ...rec, cpu: original.cpu }, replays: replays.map(summary), retro: retro && summary(retro), ratio, cpuRatio }, null, 2),
  );
  console.log(`raw: ${file}`);
} finally {
  await scratch.close({ keep: args.keep });
}
