/**
 * bench/tpcc: what a run measured — one record per round — and its summary: per variant and
 * concurrency the median throughput with its spread, latency quantiles, CPU per transaction,
 * ratios to PL/pgSQL and to txfn, the targets, and the recording overhead; printed as a table.
 */
import { median, quantileSorted } from "../lib/measure.ts";
import type { VariantName } from "./variants.ts";

/** One round: one variant at one concurrency for a fixed time. Times in ms, CPU in µs. */
export interface Round {
  round: number;
  variant: VariantName;
  concurrency: number;
  seconds: number;
  transactions: number;
  newOrders: number;
  payments: number;
  rolledBack: number;
  retries: number;
  /** Latencies of every transaction (ms), both kinds; kept only in memory. */
  latencies: number[];
  newOrderLatencies: number[];
  paymentLatencies: number[];
  /** CPU time over the round, µs: the PostgreSQL server's processes (null: not on this machine), this process, the whole machine. */
  serverCpuUs: number | null;
  clientCpuUs: number;
  machineBusyUs: number;
  machineTotalUs: number;
  /** 1-minute load average at the end of the round. */
  loadavg1: number;
}

export interface Summary {
  variant: VariantName;
  concurrency: number;
  rounds: number;
  /** Transactions per second: median round, slowest and fastest round. */
  tps: number;
  tpsMin: number;
  tpsMax: number;
  /** New-Orders per second (median round): TPC-C's throughput unit, per second rather than per minute. */
  newOrdersPerSecond: number;
  /** Latency quantiles over all rounds' transactions, ms. */
  p50: number;
  p99: number;
  newOrderP50: number;
  newOrderP99: number;
  paymentP50: number;
  paymentP99: number;
  retries: number;
  rolledBack: number;
  /** CPU per transaction, µs (medians of the rounds): the server's processes (null when remote) and this process. */
  serverUsPerTx: number | null;
  clientUsPerTx: number;
  /** Share of one core this process used, and share of the machine's CPU used by neither the server nor this process (other load). */
  clientCores: number;
  otherLoadShare: number | null;
}

const sortNum = (xs: number[]) => [...xs].sort((a, b) => a - b);

/** Summarises the rounds of each variant and concurrency. */
export function summarise(rounds: Round[], variants: readonly VariantName[], levels: readonly number[]): Summary[] {
  const out: Summary[] = [];
  for (const variant of variants) {
    for (const concurrency of levels) {
      const rs = rounds.filter((r) => r.variant === variant && r.concurrency === concurrency);
      if (rs.length === 0) continue;
      const tps = rs.map((r) => r.transactions / r.seconds);
      const all = sortNum(rs.flatMap((r) => r.latencies));
      const no = sortNum(rs.flatMap((r) => r.newOrderLatencies));
      const pay = sortNum(rs.flatMap((r) => r.paymentLatencies));
      const server = rs.every((r) => r.serverCpuUs !== null) ? median(rs.map((r) => r.serverCpuUs! / Math.max(1, r.transactions))) : null;
      out.push({
        variant,
        concurrency,
        rounds: rs.length,
        tps: median(tps),
        tpsMin: Math.min(...tps),
        tpsMax: Math.max(...tps),
        newOrdersPerSecond: median(rs.map((r) => r.newOrders / r.seconds)),
        p50: quantileSorted(all, 0.5),
        p99: quantileSorted(all, 0.99),
        newOrderP50: quantileSorted(no, 0.5),
        newOrderP99: quantileSorted(no, 0.99),
        paymentP50: quantileSorted(pay, 0.5),
        paymentP99: quantileSorted(pay, 0.99),
        retries: rs.reduce((a, r) => a + r.retries, 0),
        rolledBack: rs.reduce((a, r) => a + r.rolledBack, 0),
        serverUsPerTx: server,
        clientUsPerTx: median(rs.map((r) => r.clientCpuUs / Math.max(1, r.transactions))),
        clientCores: median(rs.map((r) => r.clientCpuUs / (r.seconds * 1e6))),
        otherLoadShare: rs.every((r) => r.serverCpuUs !== null)
          ? median(rs.map((r) => Math.max(0, r.machineBusyUs - r.serverCpuUs! - r.clientCpuUs) / r.machineTotalUs))
          : null,
      });
    }
  }
  return out;
}

export interface Ratios {
  concurrency: number;
  /** txfn's throughput over each variant's (txfn / x): ≥ 0.75 vs plpgsql, ≥ 2 vs node-pg, ≥ 3 vs dbos are the targets at c=8. */
  txfnOver: Partial<Record<VariantName, number>>;
  /** The same by CPU per transaction (server + client; x's CPU / txfn's CPU): robust to other load on the machine. */
  txfnOverByCpu: Partial<Record<VariantName, number>>;
  /** Recording overhead: 1 − tps(txfn) / tps(txfn-norec), and by CPU: cpu(txfn) / cpu(txfn-norec) − 1. */
  recordingOverhead: number | null;
  recordingOverheadByCpu: number | null;
  /** The idempotency key alone (txfn-idem vs txfn-norec), when txfn-idem ran; the rest of the recording overhead is provenance capture. */
  idempotencyOverhead: number | null;
  idempotencyOverheadByCpu: number | null;
}

const cpuPerTx = (s: Summary | undefined) => (s && s.serverUsPerTx !== null ? s.serverUsPerTx + s.clientUsPerTx : null);

/** Ratios of txfn to every other variant, and the recording overhead, per concurrency. */
export function ratios(summary: Summary[], levels: readonly number[]): Ratios[] {
  return levels.map((concurrency) => {
    const at = (v: VariantName) => summary.find((s) => s.variant === v && s.concurrency === concurrency);
    const txfn = at("txfn");
    const r: Ratios = {
      concurrency, txfnOver: {}, txfnOverByCpu: {}, recordingOverhead: null, recordingOverheadByCpu: null, idempotencyOverhead: null, idempotencyOverheadByCpu: null,
    };
    if (!txfn) return r;
    for (const s of summary.filter((x) => x.concurrency === concurrency && x.variant !== "txfn")) {
      r.txfnOver[s.variant] = txfn.tps / s.tps;
      const a = cpuPerTx(txfn);
      const b = cpuPerTx(s);
      if (a !== null && b !== null) r.txfnOverByCpu[s.variant] = b / a;
    }
    const off = at("txfn-norec");
    const overhead = (on: Summary | undefined): [number | null, number | null] => {
      if (!on || !off) return [null, null];
      const a = cpuPerTx(on);
      const b = cpuPerTx(off);
      return [1 - on.tps / off.tps, a !== null && b !== null ? a / b - 1 : null];
    };
    [r.recordingOverhead, r.recordingOverheadByCpu] = overhead(txfn);
    [r.idempotencyOverhead, r.idempotencyOverheadByCpu] = overhead(at("txfn-idem"));
    return r;
  });
}

/** The issue's targets at concurrency 8: txfn / x ≥ target; recording overhead ≤ 15%. */
export const TARGETS: Partial<Record<VariantName, number>> = { plpgsql: 0.75, "node-pg": 2, dbos: 3 };
export const RECORDING_OVERHEAD_TARGET = 0.15;

const f0 = (x: number) => x.toFixed(0);
const f2 = (x: number) => x.toFixed(2);
const pct = (x: number | null) => (x === null ? "?" : `${(x * 100).toFixed(1)}%`);

/** The table the benchmark prints: one line per variant and concurrency, then ratios and targets. */
export function formatTable(summary: Summary[], rs: Ratios[], levels: readonly number[]): string {
  const lines: string[] = [];
  lines.push(
    "variant     conc   tx/s median [min–max]   NewOrder/s   p50 ms   p99 ms  retries  CPU µs/tx srv+client  client CPU   ×PL/pgSQL   ×txfn",
  );
  for (const c of levels) {
    const base = summary.find((s) => s.variant === "plpgsql" && s.concurrency === c);
    const txfn = summary.find((s) => s.variant === "txfn" && s.concurrency === c);
    for (const s of summary.filter((x) => x.concurrency === c)) {
      const cpu = s.serverUsPerTx === null ? `? + ${f0(s.clientUsPerTx)}` : `${f0(s.serverUsPerTx)} + ${f0(s.clientUsPerTx)}`;
      lines.push(
        `${s.variant.padEnd(11)} ${String(c).padStart(4)}   ${`${f0(s.tps).padStart(6)} [${f0(s.tpsMin)}–${f0(s.tpsMax)}]`.padEnd(22)}` +
          `${f0(s.newOrdersPerSecond).padStart(10)} ${f2(s.p50).padStart(8)} ${f2(s.p99).padStart(8)} ${String(s.retries).padStart(8)}  ` +
          `${cpu.padStart(18)}  ${`${(s.clientCores * 100).toFixed(0)}%`.padStart(10)}   ` +
          `${base ? f2(s.tps / base.tps).padStart(9) : "?".padStart(9)}  ${txfn ? f2(s.tps / txfn.tps).padStart(6) : "?".padStart(6)}`,
      );
    }
    lines.push("");
  }
  lines.push("txfn / x (throughput; by CPU per transaction in parentheses, which other load on the machine distorts less):");
  for (const r of rs) {
    const parts = Object.entries(r.txfnOver).map(([v, x]) => {
      const byCpu = r.txfnOverByCpu[v as VariantName];
      const target = r.concurrency === 8 && TARGETS[v as VariantName] !== undefined ? ` [target ≥ ${TARGETS[v as VariantName]}: ${x! >= TARGETS[v as VariantName]! ? "met" : "NOT met"}]` : "";
      return `${v} ${f2(x!)}×${byCpu === undefined ? "" : ` (${f2(byCpu)}×)`}${target}`;
    });
    lines.push(`  c=${r.concurrency}: ${parts.join(", ")}`);
  }
  lines.push("recording overhead (txfn with idempotency keys and provenance capture vs txfn-norec without both):");
  for (const r of rs) {
    const target = r.concurrency === 8 && r.recordingOverhead !== null
      ? ` [target ≤ ${pct(RECORDING_OVERHEAD_TARGET)}: ${r.recordingOverhead <= RECORDING_OVERHEAD_TARGET ? "met" : "NOT met"}]`
      : "";
    const idem = r.idempotencyOverhead === null ? "" : `; the idempotency key alone (txfn-idem): ${pct(r.idempotencyOverhead)}, ${pct(r.idempotencyOverheadByCpu)} more CPU`;
    lines.push(`  c=${r.concurrency}: ${pct(r.recordingOverhead)} of throughput, ${pct(r.recordingOverheadByCpu)} more CPU per transaction${target}${idem}`);
  }
  return lines.join("\n");
}
