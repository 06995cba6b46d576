/**
 * bench/http load generator, run by bench/http/run.ts as a SEPARATE process (so the load's CPU
 * is measured apart from the proxy's and the orchestrator's). Two modes, same orders:
 *
 *   http   autocannon (programmatic, this process) → POST /v1/functions/reserveInventory
 *   direct node-pg → SELECT txfn.invoke('reserveInventory', …) on a pool of --pool connections
 *
 * Each request is a fresh order of 3 distinct random SKUs (sorted: no deadlocks) with its own
 * idempotency key. Prints one JSON line: { ok, other, seconds, tps, p50, p99, clientCpu }.
 */
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import pg from "pg";

const { values: a } = parseArgs({
  options: {
    mode: { type: "string" },
    url: { type: "string" },
    token: { type: "string", default: "" },
    connections: { type: "string", default: "50" },
    pool: { type: "string", default: "8" },
    seconds: { type: "string", default: "10" },
    skus: { type: "string", default: "10000" },
  },
});
const SKUS = Number(a.skus);
const CONNECTIONS = Number(a.connections);
const SECONDS = Number(a.seconds);

function order(): { orderId: string; items: { sku: string; qty: number }[] } {
  const picked = new Set<number>();
  while (picked.size < 3) picked.add(1 + Math.floor(Math.random() * SKUS));
  const items = [...picked].sort((x, y) => x - y).map((n) => ({ sku: `sku-${String(n).padStart(3, "0")}`, qty: 1 }));
  return { orderId: randomUUID(), items };
}

interface LoadResult {
  ok: number;
  other: Record<string, number>;
  seconds: number;
  tps: number;
  p50: number;
  p99: number;
  clientCpu: number;
}

async function http(): Promise<Omit<LoadResult, "clientCpu">> {
  const result = await autocannon({
    url: a.url!,
    connections: CONNECTIONS,
    duration: SECONDS,
    requests: [
      {
        method: "POST",
        path: "/v1/functions/reserveInventory",
        setupRequest: (req: Record<string, unknown>) => {
          const o = order();
          return {
            ...req,
            headers: { "content-type": "application/json", authorization: `Bearer ${a.token}`, "idempotency-key": o.orderId },
            body: JSON.stringify(o),
          };
        },
      },
    ],
  });
  const other: Record<string, number> = {};
  for (const [code, s] of Object.entries(result.statusCodeStats ?? {})) if (code !== "200") other[code] = Number(s.count);
  if (result.errors) other.errors = result.errors;
  const ok = Number(result.statusCodeStats?.["200"]?.count ?? 0);
  return { ok, other, seconds: result.duration, tps: ok / result.duration, p50: result.latency.p50, p99: result.latency.p99 };
}

async function direct(): Promise<Omit<LoadResult, "clientCpu">> {
  const pool = new pg.Pool({ connectionString: a.url!, max: Number(a.pool), application_name: "bench-http-direct" });
  const prepared = new WeakSet<pg.PoolClient>();
  const latencies: number[] = [];
  const other: Record<string, number> = {};
  const t0 = performance.now();
  const end = t0 + SECONDS * 1000;
  // Like the proxy: connect/release, isolation set once per connection, retry 40001/40P01 with the same key.
  const one = async () => {
    const o = order();
    const s = performance.now();
    for (let retry = 0; ; retry++) {
      const c = await pool.connect();
      try {
        if (!prepared.has(c)) {
          await c.query("SET default_transaction_isolation = 'serializable'");
          prepared.add(c);
        }
        const r = await c.query({ name: "invoke", text: "SELECT txfn.invoke($1, $2::jsonb, $3) AS r", values: ["reserveInventory", JSON.stringify(o), o.orderId] });
        if (!r.rows[0].r.output) other.appError = (other.appError ?? 0) + 1;
        break;
      } catch (err) {
        const code = (err as { code?: string }).code ?? "error";
        if ((code !== "40001" && code !== "40P01") || retry > 20) {
          other[code] = (other[code] ?? 0) + 1;
          return;
        }
      } finally {
        c.release();
      }
    }
    latencies.push(performance.now() - s);
  };
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (performance.now() < end) await one();
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  await pool.end();
  latencies.sort((x, y) => x - y);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN;
  return { ok: latencies.length, other, seconds, tps: latencies.length / seconds, p50: q(0.5), p99: q(0.99) };
}

const cpu0 = process.cpuUsage();
const w0 = performance.now();
const r = a.mode === "http" ? await http() : a.mode === "direct" ? await direct() : undefined;
if (!r) throw new Error("--mode must be http or direct");
const cpu = process.cpuUsage(cpu0);
const out: LoadResult = { ...r, clientCpu: (cpu.user + cpu.system) / 1000 / (performance.now() - w0) };
console.log(JSON.stringify(out));
