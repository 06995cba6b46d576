/**
 * CPU accounting for bench/replay: the whole local PostgreSQL server's CPU time (its postmaster,
 * the children alive now, and the children that exited — a replay's sessions end before it is
 * measured, which per-pid sums would miss), this Node process's, and the machine's load.
 * On a loaded 2-core machine wall time swings with other work; CPU seconds per phase say how much
 * work the original and the replay did, which changes far less.
 */
import { readdirSync, readFileSync } from "node:fs";
import { loadavg } from "node:os";
import pg from "pg";

const CLK_TCK = 100;

/** utime, stime, cutime, cstime of a process, in clock ticks; null when gone or not local. */
function times(pid: number): [number, number, number, number] | null {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return [Number(fields[11]), Number(fields[12]), Number(fields[13]), Number(fields[14])];
  } catch {
    return null;
  }
}

/** The server's postmaster pid when it runs on this machine and `url` may read its data directory; else null. */
export async function postmasterPid(url: string): Promise<number | null> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const dir = (await c.query<{ d: string }>("SELECT current_setting('data_directory') AS d")).rows[0]!.d;
    const pid = Number(readFileSync(`${dir}/postmaster.pid`, "utf8").split("\n")[0]);
    return times(pid) ? pid : null;
  } catch {
    return null;
  } finally {
    await c.end();
  }
}

/**
 * CPU seconds the server has used so far: the postmaster's own, its exited children's (cutime,
 * cstime: the kernel adds a child's time there when it is reaped) and its live children's. The
 * difference of two readings is what the server did in between, sessions that ended included.
 */
export function serverCpuSeconds(postmaster: number): number {
  // A child reaped while /proc is scanned would be in neither sum (scanned after it was gone,
  // added to cutime after cutime was read): scan again until the postmaster's cutime and
  // cstime did not move during a scan (a phase ends as its sessions exit).
  for (let attempt = 0; ; attempt++) {
    const pm = times(postmaster);
    if (!pm) return NaN;
    let ticks = pm[0] + pm[1] + pm[2] + pm[3];
    for (const name of readdirSync("/proc")) {
      if (!/^\d+$/.test(name)) continue;
      try {
        const fields = readFileSync(`/proc/${name}/stat`, "utf8").split(") ")[1]!.split(" ");
        if (Number(fields[1]) === postmaster) ticks += Number(fields[11]) + Number(fields[12]);
      } catch {
        // exited meanwhile: its time moves to the postmaster's cutime once reaped
      }
    }
    const after = times(postmaster);
    if (!after) return NaN;
    if ((after[2] === pm[2] && after[3] === pm[3]) || attempt === 20) return (ticks + after[0] + after[1] - pm[0] - pm[1]) / CLK_TCK;
  }
}

/** This process's CPU seconds so far (user + system). */
export function nodeCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** This process's kernel-mode CPU seconds so far (socket reads and writes, wake-ups). */
export function nodeSystemSeconds(): number {
  return process.cpuUsage().system / 1e6;
}

/** Busy and total CPU seconds of the whole machine so far (all cores). */
export function machineCpuSeconds(): { busy: number; total: number } {
  const v = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: (total - (v[3] ?? 0) - (v[4] ?? 0)) / CLK_TCK, total: total / CLK_TCK };
}

/** A phase's CPU: server, this process, and the machine's busy share over it (0–1), plus load averages at its end. */
export interface PhaseCpu {
  serverS: number;
  nodeS: number;
  /** the kernel-mode part of nodeS */
  nodeSysS: number;
  machineBusy: number;
  loadavg: number[];
}

/** Starts measuring a phase; call the returned function at its end. */
export function measurePhase(postmaster: number | null): () => PhaseCpu {
  const s0 = postmaster === null ? NaN : serverCpuSeconds(postmaster);
  const n0 = nodeCpuSeconds();
  const k0 = nodeSystemSeconds();
  const m0 = machineCpuSeconds();
  return () => {
    const m1 = machineCpuSeconds();
    return {
      serverS: postmaster === null ? NaN : serverCpuSeconds(postmaster) - s0,
      nodeS: nodeCpuSeconds() - n0,
      nodeSysS: nodeSystemSeconds() - k0,
      machineBusy: (m1.busy - m0.busy) / Math.max(1e-9, m1.total - m0.total),
      loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
    };
  };
}
