/**
 * bench/replay/per-invocation: the CPU one invocation of the bench's workload costs on one
 * session, without scheduling, in the statement shapes of the original and of replay — what
 * bounds the replay/original ratio when neither waits for the other's round trips.
 *
 * Each variant runs checkStock + takeStock pairs (functions/examples/oversell) sequentially on a
 * fresh session after a warm-up and prints µs per invocation of the backend's CPU (from /proc,
 * 10 ms ticks: keep --pairs ≥ 1000), of this process, and of wall time.
 *
 * Usage: npx tsx bench/replay/per-invocation.ts [--pairs 1500 --rounds 2]
 * Uses DATABASE_URL or the private cluster; creates (and drops) a database txfn_bench_replay_inv.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import pg from "pg";
import { UNIT_LOCK_CLASS } from "../../replay/session.ts";
import { shopDatabase } from "./shop-database.ts";

const { values: args } = parseArgs({ options: { pairs: { type: "string", default: "1500" }, rounds: { type: "string", default: "2" } } });
const DB = "txfn_bench_replay_inv";

const backendMs = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) * 10;
};

interface Variant {
  name: string;
  setup: string;
  call: (c: pg.Client, fn: string, input: string) => Promise<unknown>;
}

let nextId = 1_000_000_000;
const replayOptions = () => JSON.stringify({ version: 1, pinnedTime: 1_700_000_000_000, seed: 12345, invocationId: String(nextId++), relaxIsolation: true });
const PREPARE_OPEN =
  "SET synchronous_commit = off; SET plan_cache_mode = force_generic_plan; PREPARE o(text, text, text, text, int) AS " +
  `SELECT pg_advisory_xact_lock(${UNIT_LOCK_CLASS}, $5), txfn.invoke($1, $2::jsonb, $3, $4::jsonb)::text AS e, pg_current_xact_id()::text AS x`;
const CLIENT_SQL = "SELECT txfn.invoke($1, $2::jsonb, $3, $4::jsonb) AS r";
const execute = (c: pg.Client, fn: string, input: string) =>
  `EXECUTE o(${c.escapeLiteral(fn)}, ${c.escapeLiteral(input)}, NULL, ${c.escapeLiteral(replayOptions())}, 7)`;

const VARIANTS: Variant[] = [
  {
    name: "original: TxfnClient's statement, SERIALIZABLE, synchronous commit",
    setup: "SET default_transaction_isolation = 'serializable'",
    call: (c, fn, input) => c.query({ name: "inv", text: CLIENT_SQL, values: [fn, input, null, "{}"] }),
  },
  {
    name: "original's statement, asynchronous commit",
    setup: "SET default_transaction_isolation = 'serializable'; SET synchronous_commit = off",
    call: (c, fn, input) => c.query({ name: "inv", text: CLIENT_SQL, values: [fn, input, null, "{}"] }),
  },
  {
    name: "replay: BEGIN + EXECUTE, then COMMIT (2 round trips)",
    setup: PREPARE_OPEN,
    call: async (c, fn, input) => {
      await c.query(`BEGIN ISOLATION LEVEL REPEATABLE READ; ${execute(c, fn, input)}`);
      await c.query("COMMIT");
    },
  },
  {
    name: "replay: BEGIN + EXECUTE + COMMIT (1 round trip)",
    setup: PREPARE_OPEN,
    call: (c, fn, input) => c.query(`BEGIN ISOLATION LEVEL REPEATABLE READ; ${execute(c, fn, input)}; COMMIT`),
  },
];

const scratch = await shopDatabase(DB);
const url = scratch.url;
try {
  const seed = new pg.Client({ connectionString: url });
  await seed.connect();
  await seed.query("INSERT INTO inventory SELECT 'item-' || g, 1000000 FROM generate_series(1, 20) g");
  await seed.end();
  const pairs = Number(args.pairs);
  for (let round = 0; round < Number(args.rounds); round++) {
    for (const [k, v] of VARIANTS.entries()) {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      await c.query(v.setup);
      const pid = (await c.query<{ p: number }>("SELECT pg_backend_pid() AS p")).rows[0]!.p;
      for (let i = 0; i < 50; i++) await v.call(c, "checkStock", `{"sku":"item-${1 + (i % 20)}"}`); // contexts, plans
      const s0 = backendMs(pid);
      const n0 = process.cpuUsage();
      const t0 = performance.now();
      for (let i = 0; i < pairs; i++) {
        await v.call(c, "checkStock", `{"sku":"item-${1 + (i % 20)}"}`);
        await v.call(c, "takeStock", `{"sku":"item-${1 + (i % 20)}","orderId":"p-${round}-${k}-${i}"}`);
      }
      const n = process.cpuUsage(n0);
      const per = (x: number) => ((x * 1000) / (2 * pairs)).toFixed(0).padStart(4);
      console.log(
        `${v.name.padEnd(68)} server ${per(backendMs(pid) - s0)} µs, node ${per((n.user + n.system) / 1000)} µs, wall ${per(performance.now() - t0)} µs per invocation`,
      );
      await c.end();
    }
  }
} finally {
  await scratch.close({ keep: false });
}
