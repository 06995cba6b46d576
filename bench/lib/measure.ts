/**
 * Measuring helpers shared by the benchmarks: medians and quantiles, and CPU time from /proc
 * (the server's processes, the whole machine), so a benchmark can report CPU per call, which
 * other load on a shared machine distorts far less than throughput.
 */
import { readdirSync, readFileSync } from "node:fs";
import { cpus, loadavg, release, totalmem } from "node:os";

/** Linux USER_HZ: /proc/<pid>/stat and /proc/stat count CPU time in 1/100 s. */
export const CLK_TCK = 100;

/** Median of `xs` (the upper middle of an even count). @throws on an empty list. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error("median of nothing");
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** The `p` quantile (0..1) of an ascending-sorted list, nearest rank; NaN when empty. */
export function quantileSorted(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/** utime + stime of one process, in µs; null when /proc does not show it (gone, or remote). */
export function processCpuUs(pid: number): number | null {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLK_TCK; // utime, stime (fields 14 and 15 of stat)
  } catch {
    return null;
  }
}

/** utime + stime of the processes, in µs; null when /proc does not show one of them (a remote server). */
export function backendCpuUs(pids: readonly number[]): number | null {
  let us = 0;
  for (const pid of pids) {
    const t = processCpuUs(pid);
    if (t === null) return null;
    us += t;
  }
  return us;
}

/** Pids of the direct children of `parent` (a postmaster's backends and background processes). */
export function childPids(parent: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const fields = readFileSync(`/proc/${name}/stat`, "utf8").split(") ")[1]!.split(" ");
      if (Number(fields[1]) === parent) out.push(Number(name)); // ppid: field 4 of stat
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** CPU time so far of a PostgreSQL server's processes, µs per pid (see serverCpu / serverCpuSince). */
export type ServerCpuSample = Map<number, number>;

/**
 * CPU time so far, µs, of each process of a PostgreSQL server: the postmaster and its children
 * alive now (backends, WAL writer, checkpointer, autovacuum). Null when the server is not on
 * this machine. Take one at the start of a measurement and give it to serverCpuSince at the end.
 */
export function serverCpu(postmasterPid: number | null): ServerCpuSample | null {
  if (postmasterPid === null) return null;
  const out: ServerCpuSample = new Map();
  for (const pid of [postmasterPid, ...childPids(postmasterPid)]) {
    const t = processCpuUs(pid);
    if (t !== null) out.set(pid, t);
  }
  return out;
}

/**
 * µs of CPU the server's processes used since `start`, summed over those alive at both ends (a
 * process that exits in between, such as an autovacuum worker, is left out of both ends).
 */
export function serverCpuSince(start: ServerCpuSample, postmasterPid: number): number {
  let us = 0;
  const now = serverCpu(postmasterPid)!;
  for (const [pid, t0] of start) {
    const t1 = now.get(pid);
    if (t1 !== undefined && t1 >= t0) us += t1 - t0;
  }
  return us;
}

/** Busy and total CPU time of the whole machine so far, in µs (from /proc/stat; all cores summed). */
export function machineCpuUs(): { busy: number; total: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0]!; // "cpu  user nice system idle iowait irq softirq steal …"
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: ((total - idle) * 1e6) / CLK_TCK, total: (total * 1e6) / CLK_TCK };
}

/** The machine a run measured: CPU model and count, memory, kernel, load averages now. */
export function machineInfo(): { cpu: string; cores: number; memoryGiB: number; kernel: string; loadavg: number[] } {
  const c = cpus();
  return {
    cpu: c[0]?.model ?? "unknown",
    cores: c.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
  };
}
