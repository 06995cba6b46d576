/**
 * bench/replay/profile: where a replay's run phase spends CPU — the server's (perf samples of the
 * postmaster and every process it forks while the run lasts, replay sessions and autovacuum
 * included) and this Node process's (V8's CPU profiler) — and the CPU seconds of each per
 * replayed invocation.
 *
 * Records the workload of workload.ts once into txfn_bench_replay_profile (kept; --record again to
 * redo it), then replays it `--rounds` times. perf's report is written next to its data file:
 * `perf report -i <file> --no-children --sort dso,sym` reads it further.
 *
 * Usage: npx tsx bench/replay/profile.ts [--invocations 10000 --concurrency 8 --rounds 1 --record --no-perf --max-connections 24]
 * Needs perf allowed to profile the server's processes (root, or kernel.perf_event_paranoid ≤ 1).
 */
import { spawn, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { Session as Inspector } from "node:inspector/promises";
import { parseArgs } from "node:util";
import pg from "pg";
import { databaseUrl } from "../../db/connection.ts";
import { replayTrace } from "../../replay/index.ts";
import { measurePhase, postmasterPid, type PhaseCpu } from "./cpu.ts";
import { installShop } from "./shop-database.ts";
import { recordWorkload } from "./workload.ts";

const { values: args } = parseArgs({
  options: {
    invocations: { type: "string", default: "10000" },
    concurrency: { type: "string", default: "8" },
    rounds: { type: "string", default: "1" },
    record: { type: "boolean", default: false },
    "no-perf": { type: "boolean", default: false },
    "max-connections": { type: "string", default: "24" },
  },
});

const DB = "txfn_bench_replay_profile";
const base = await databaseUrl();
const url = Object.assign(new URL(base), { pathname: `/${DB}` }).toString();

async function admin(sql: string): Promise<unknown[]> {
  const c = new pg.Client({ connectionString: base });
  await c.connect();
  try {
    return (await c.query(sql)).rows;
  } finally {
    await c.end();
  }
}

const exists = (await admin(`SELECT 1 FROM pg_database WHERE datname = '${DB}'`)).length > 0;
if (args.record || !exists) {
  await admin(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await admin(`CREATE DATABASE ${DB}`);
  await installShop(url);
  const pm = await postmasterPid(url);
  const perfFile = `/tmp/txfn-replay-perf-${process.pid}-original.data`;
  const perf = args["no-perf"] || pm === null ? null : spawn("perf", ["record", "-e", "cpu-clock", "-F", "999", "-g", "-o", perfFile, "-p", String(pm)], { stdio: "ignore" });
  if (perf) await new Promise((r) => setTimeout(r, 1000)); // perf follows only processes forked after it attached
  const stop = measurePhase(pm);
  const rec = await recordWorkload(url, { invocations: Number(args.invocations), concurrency: Number(args.concurrency) });
  const used = stop();
  if (perf) {
    perf.kill("SIGINT");
    await new Promise((r) => perf.on("exit", r));
  }
  console.log(
    `recorded ${rec.invocations} invocations in ${(rec.ms / 1000).toFixed(2)} s (${rec.retries} retries); server ${used.serverS.toFixed(2)} s ` +
      `(${((used.serverS / rec.invocations) * 1e6).toFixed(0)} µs/inv), node ${used.nodeS.toFixed(2)} s; load ${used.loadavg.join(" ")}` + (perf ? `; perf: ${perfFile}` : ""),
  );
}

const postmaster = await postmasterPid(url);
const inspector = new Inspector();
inspector.connect();
await inspector.post("Profiler.enable");

for (let k = 0; k < Number(args.rounds); k++) {
  const stamp = `${process.pid}-${k}`;
  const perfFile = `/tmp/txfn-replay-perf-${stamp}.data`;
  let perf: ReturnType<typeof spawn> | null = null;
  let stop: (() => PhaseCpu) | null = null;
  let cpu: PhaseCpu | null = null;
  const report = await replayTrace({
    url,
    selector: { from: new Date(0) },
    maxConnections: Number(args["max-connections"]),
    log: (m) => {
      if (m.startsWith("running")) {
        if (!args["no-perf"] && postmaster !== null) {
          perf = spawn("perf", ["record", "-e", "cpu-clock", "-F", "999", "-g", "-o", perfFile, "-p", String(postmaster)], { stdio: "ignore" });
        }
        void inspector.post("Profiler.start");
        stop = measurePhase(postmaster);
      } else if (m.startsWith("comparing") && stop) {
        cpu = stop();
      }
    },
  });
  const { profile } = await inspector.post("Profiler.stop");
  if (perf) {
    (perf as ReturnType<typeof spawn>).kill("SIGINT");
    await new Promise((r) => (perf as ReturnType<typeof spawn>).on("exit", r));
  }
  const c = cpu as PhaseCpu | null;
  if (!c) throw new Error("replay did not log its run phase");
  const n = report.trace.invocations;
  console.log(
    `replay #${k + 1}: ${n} invocations, run ${(report.timings.runMs / 1000).toFixed(2)} s, compare ${(report.timings.compareMs / 1000).toFixed(2)} s; ` +
      `server ${c.serverS.toFixed(2)} s (${((c.serverS / n) * 1e6).toFixed(0)} µs/inv), node ${c.nodeS.toFixed(2)} s (${((c.nodeS / n) * 1e6).toFixed(0)} µs/inv); ` +
      `${report.stats.roundTrips} round trips on ${report.stats.sessions} sessions; divergences ${report.invocations.length}; load ${c.loadavg.join(" ")}`,
  );
  const cpuprofile = `/tmp/txfn-replay-node-${stamp}.cpuprofile`;
  writeFileSync(cpuprofile, JSON.stringify(profile));
  console.log(`node profile: ${cpuprofile} (${selfTop(profile).join("; ")})`);
  if (perf) {
    const r = spawnSync("perf", ["report", "-i", perfFile, "--no-children", "--sort", "comm,dso,sym", "--stdio", "-g", "none"], { encoding: "utf8", maxBuffer: 256 * 1024 * 1024 });
    writeFileSync(`${perfFile}.txt`, r.stdout);
    console.log(`server profile: ${perfFile}.txt`);
  }
}
inspector.disconnect();

/** The functions with the most self time in a V8 CPU profile, as "name (file:line) share%". */
function selfTop(profile: { nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[]; samples?: number[] }): string[] {
  const counts = new Map<number, number>();
  for (const s of profile.samples ?? []) counts.set(s, (counts.get(s) ?? 0) + 1);
  const total = profile.samples?.length ?? 1;
  const byName = new Map<string, number>();
  for (const node of profile.nodes) {
    const f = node.callFrame;
    const name = `${f.functionName || "(anonymous)"} ${f.url.split("/").slice(-2).join("/")}:${f.lineNumber + 1}`;
    byName.set(name, (byName.get(name) ?? 0) + (counts.get(node.id) ?? 0));
  }
  return [...byName.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([k, v]) => `${k} ${((100 * v) / total).toFixed(1)}%`);
}
