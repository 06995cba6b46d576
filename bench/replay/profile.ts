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
 * `--no-node-profile` measures Node's CPU without V8's profiler (which adds its own sampling
 * work to the figure). `--before <dir>` alternates rounds between the replay of another checkout
 * (`<dir>/replay/index.ts`, e.g. a `git archive` of an earlier commit with node_modules linked)
 * and this one, starting with it: an A/B of two versions on the same trace under the same load.
 *
 * `--perf-node` records this Node process with perf over the run phase as well (all its threads:
 * V8's compiler and garbage collector included, which V8's profiler does not show). For
 * JavaScript function names the script then runs itself again in a child Node with
 * --perf-basic-prof (no NODE_OPTIONS needed); the isolate-*-v8.log files V8 writes with it go to
 * a temporary folder removed after, not the working directory. V8's /tmp/perf-<pid>.map stays:
 * `perf report` of the kept data files needs it for the function names (delete it after).
 *
 * Usage: npx tsx bench/replay/profile.ts [--invocations 10000 --concurrency 8 --rounds 1 --record --no-perf --no-node-profile --perf-node --max-connections 24 --before DIR]
 * Needs perf allowed to profile the server's processes (root, or kernel.perf_event_paranoid ≤ 1).
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
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
    "no-node-profile": { type: "boolean", default: false },
    "perf-node": { type: "boolean", default: false },
    before: { type: "string" },
    "max-connections": { type: "string", default: "24" },
  },
});

if (args["perf-node"] && !process.env.TXFN_PROFILE_PERF_CHILD) process.exit(await runWithPerfMap());

/**
 * Runs this script again in a child Node with --perf-basic-prof (perf then names JavaScript
 * functions), V8's isolate-*-v8.log files written to a temporary folder removed when it ends.
 * @returns the child's exit code.
 */
async function runWithPerfMap(): Promise<number> {
  const logs = mkdtempSync(join(tmpdir(), "txfn-replay-v8-"));
  try {
    const child = spawn(process.execPath, [...process.execArgv, "--perf-basic-prof", `--logfile=${join(logs, "v8.log")}`, ...process.argv.slice(1)], {
      stdio: "inherit",
      env: { ...process.env, TXFN_PROFILE_PERF_CHILD: "1" },
    });
    const code = await new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
    return code ?? 1; // null: ended by a signal
  } finally {
    rmSync(logs, { recursive: true, force: true });
  }
}

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
const nodeProfile = !args["no-node-profile"];
const inspector = new Inspector();
inspector.connect();
if (nodeProfile) await inspector.post("Profiler.enable");
const replayBefore = args.before
  ? ((await import(`${args.before.replace(/\/$/, "")}/replay/index.ts`)) as { replayTrace: typeof replayTrace }).replayTrace
  : null;

for (let k = 0; k < Number(args.rounds); k++) {
  const stamp = `${process.pid}-${k}`;
  const useBefore = replayBefore !== null && k % 2 === 0;
  const replay = useBefore ? replayBefore : replayTrace;
  const perfFile = `/tmp/txfn-replay-perf-${stamp}.data`;
  let perf: ReturnType<typeof spawn> | null = null;
  let perfNodeExit: Promise<unknown> | null = null;
  let stopPerfNode = () => {};
  let stop: (() => PhaseCpu) | null = null;
  let cpu: PhaseCpu | null = null;
  const report = await replay({
    url,
    selector: { from: new Date(0) },
    maxConnections: Number(args["max-connections"]),
    log: (m) => {
      if (m.startsWith("running")) {
        if (!args["no-perf"] && postmaster !== null) {
          perf = spawn("perf", ["record", "-e", "cpu-clock", "-F", "999", "-g", "-o", perfFile, "-p", String(postmaster)], { stdio: "ignore" });
        }
        if (args["perf-node"]) {
          const p = spawn("perf", ["record", "-e", "cpu-clock", "-F", "999", "-g", "-o", `${perfFile}.node`, "-p", String(process.pid)], { stdio: "ignore" });
          perfNodeExit = new Promise((r) => p.on("exit", r));
          stopPerfNode = () => p.kill("SIGINT");
        }
        if (nodeProfile) void inspector.post("Profiler.start");
        stop = measurePhase(postmaster);
      } else if (m.startsWith("comparing") && stop) {
        cpu = stop();
        stopPerfNode();
      }
    },
  });
  const profile = nodeProfile ? (await inspector.post("Profiler.stop")).profile : null;
  if (perfNodeExit) {
    await perfNodeExit;
    const r = spawnSync("perf", ["report", "-i", `${perfFile}.node`, "--no-children", "--sort", "dso,sym", "--stdio", "-g", "none"], { encoding: "utf8", maxBuffer: 256 * 1024 * 1024 });
    writeFileSync(`${perfFile}.node.txt`, r.stdout);
    console.log(`node perf profile: ${perfFile}.node.txt`);
  }
  if (perf) {
    (perf as ReturnType<typeof spawn>).kill("SIGINT");
    await new Promise((r) => (perf as ReturnType<typeof spawn>).on("exit", r));
  }
  const c = cpu as PhaseCpu | null;
  if (!c) throw new Error("replay did not log its run phase");
  const n = report.trace.invocations;
  console.log(
    `replay #${k + 1}${replayBefore ? (useBefore ? " (before)" : " (after)") : ""}: ${n} invocations, run ${(report.timings.runMs / 1000).toFixed(2)} s, compare ${(report.timings.compareMs / 1000).toFixed(2)} s; ` +
      `server ${c.serverS.toFixed(2)} s (${((c.serverS / n) * 1e6).toFixed(0)} µs/inv), node ${c.nodeS.toFixed(2)} s (${((c.nodeS / n) * 1e6).toFixed(0)} µs/inv, ` +
      `${((c.nodeSysS / n) * 1e6).toFixed(0)} in the kernel); ` +
      `${report.stats.roundTrips} round trips on ${report.stats.sessions} sessions; divergences ${report.invocations.length}; load ${c.loadavg.join(" ")}`,
  );
  if (profile) {
    const cpuprofile = `/tmp/txfn-replay-node-${stamp}.cpuprofile`;
    writeFileSync(cpuprofile, JSON.stringify(profile));
    console.log(`node profile: ${cpuprofile} (${selfTop(profile).join("; ")})`);
  }
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
