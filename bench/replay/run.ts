/**
 * bench/replay: how long replaying a recorded trace takes compared with recording it.
 *
 * Records the workload of workload.ts (the running example's check-then-take requests from
 * concurrent Node clients, with the client's retries of serialization failures), then replays
 * the trace faithfully and runs it again with the fixed takeStock (retroaction), and prints
 * run time / original time for each — the target is ≤ 0.5; R3 (PVLDB 16(11)) measured its
 * retroaction at 0.11–0.78× of the original execution. Reconstruction (the scratch database:
 * CREATE DATABASE, pg_dump/pg_restore, undo) is a fixed cost per replay, printed apart.
 *
 * The original commits synchronously (as in production) unless --async-commit; replay always
 * commits asynchronously (its database is thrown away).
 *
 * Usage: npm run bench:replay [-- --invocations 10000 --concurrency 8 --think-ms 0 --async-commit --no-retro --keep]
 * Uses DATABASE_URL or the private cluster; creates (and drops) a database txfn_bench_replay.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import pg from "pg";
import { build } from "../../bundler/index.ts";
import { deploy } from "../../client/index.ts";
import { databaseUrl } from "../../db/connection.ts";
import { replayTrace, retroTrace, type ReplayReport } from "../../replay/index.ts";
import { recordWorkload } from "./workload.ts";

const { values: args } = parseArgs({
  options: {
    invocations: { type: "string", default: "10000" },
    concurrency: { type: "string", default: "8" },
    skus: { type: "string", default: "20" },
    "think-ms": { type: "string", default: "0" },
    "async-commit": { type: "boolean", default: false },
    "no-retro": { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
  },
});

const DB = "txfn_bench_replay";
const base = await databaseUrl();
const url = Object.assign(new URL(base), { pathname: `/${DB}` }).toString();

async function admin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: base });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

const line = (what: string, r: ReplayReport, originalMs: number) => {
  const changed = r.invocations.length;
  console.log(
    `${what.padEnd(12)} run ${(r.timings.runMs / 1000).toFixed(2)} s  ratio ${(r.timings.runMs / originalMs).toFixed(2)}×  ` +
      `(+ reconstruct ${(r.timings.reconstructMs / 1000).toFixed(2)} s: ${((r.timings.runMs + r.timings.reconstructMs) / originalMs).toFixed(2)}×)  ` +
      `${what === "replay" ? `divergences ${changed}` : `changed ${changed}, checks ${r.checks.every((c) => c.ok) ? "pass" : "FAIL"}`}`,
  );
};

await admin(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
await admin(`CREATE DATABASE ${DB}`);
try {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await c.query("CREATE EXTENSION IF NOT EXISTS txv8");
  await c.end();
  await deploy(url, await build("functions/examples/oversell"));
  const n = Number(args.invocations);
  const rec = await recordWorkload(url, {
    invocations: n,
    concurrency: Number(args.concurrency),
    skus: Number(args.skus),
    thinkMs: Number(args["think-ms"]),
    asyncCommit: args["async-commit"],
  });
  console.log(
    `original     ${n} invocations, concurrency ${args.concurrency}, think ${args["think-ms"]} ms${args["async-commit"] ? ", async commit" : ""}: ` +
      `${(rec.ms / 1000).toFixed(2)} s (${rec.retries} client retries, ${rec.applicationErrors} application errors)`,
  );
  const replay = await replayTrace({ url, selector: { from: rec.from } });
  line("replay", replay, rec.ms);
  let retro: ReplayReport | null = null;
  if (!args["no-retro"]) {
    retro = await retroTrace({ url, selector: { from: rec.from }, bundleDir: "functions/examples/oversell-fixed", checks: ["SELECT * FROM inventory WHERE stock < 0"] });
    line("retroaction", retro, rec.ms);
  }
  const ratio = replay.timings.runMs / rec.ms;
  console.log(`replay time / original time = ${ratio.toFixed(2)} (target ≤ 0.5; R3's retroaction: 0.11–0.78)`);
  mkdirSync("bench/results", { recursive: true });
  const file = `bench/results/replay-${new Date().toISOString().replace(/[:.]/g, "-")}.json`;
  writeFileSync(file, JSON.stringify({ args, original: rec, replay: { timings: replay.timings, counts: replay.counts }, retro: retro && { timings: retro.timings, counts: retro.counts } }, null, 2));
  console.log(`raw: ${file}`);
} finally {
  if (!args.keep) await admin(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
}
