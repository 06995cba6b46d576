/**
 * PostgreSQL snapshots (`pg_snapshot` text `xmin:xmax:xip,…`) and transaction visibility, in JS.
 *
 * xid8 values are 64-bit (epoch << 32 | xid); they are kept as JS numbers, exact below 2^53
 * (an epoch below 2^21, i.e. far beyond any real cluster's life). Larger values are refused.
 */

/** A parsed pg_snapshot: transactions below `xmin` are finished, those at or above `xmax` not yet started. */
export interface Snapshot {
  xmin: number;
  xmax: number;
  /** in progress when the snapshot was taken (each in [xmin, xmax)) */
  xip: Set<number>;
}

/** An xid8 (decimal text or number) as a JS number. @throws Error when it is not an exact integer. */
export function xid8(value: string | number | bigint): number {
  const n = typeof value === "number" ? value : Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`replay: xid8 ${String(value)} is out of range`);
  return n;
}

/** Parses pg_snapshot text. @throws Error on anything else. */
export function parseSnapshot(text: string): Snapshot {
  const m = /^(\d+):(\d+):([\d,]*)$/.exec(text.trim());
  if (!m) throw new Error(`replay: cannot read snapshot ${JSON.stringify(text)}`);
  const xip = new Set<number>(m[3] ? m[3].split(",").map(xid8) : []);
  return { xmin: xid8(m[1]!), xmax: xid8(m[2]!), xip };
}

/** The pg_snapshot text of `s`. */
export function formatSnapshot(s: Snapshot): string {
  return `${s.xmin}:${s.xmax}:${[...s.xip].sort((a, b) => a - b).join(",")}`;
}

/** Whether transaction `xid` had committed (or aborted) before `s` was taken: pg_visible_in_snapshot. */
export function visible(xid: number, s: Snapshot): boolean {
  return xid < s.xmin || (xid < s.xmax && !s.xip.has(xid));
}

/**
 * The snapshot seeing exactly the transactions every one of `snapshots` sees (their
 * intersection): xmax is the smallest xmax, xip every in-progress xid below it.
 * @throws Error for an empty list.
 */
export function intersectSnapshots(snapshots: Snapshot[]): Snapshot {
  if (snapshots.length === 0) throw new Error("replay: no snapshot to intersect");
  let xmax = Infinity;
  for (const s of snapshots) xmax = Math.min(xmax, s.xmax);
  const xip = new Set<number>();
  for (const s of snapshots) for (const x of s.xip) if (x < xmax) xip.add(x);
  let xmin = xmax;
  for (const x of xip) xmin = Math.min(xmin, x);
  return { xmin, xmax, xip };
}

/**
 * Counts, for many xids at once, how many of `snapshots` see each one — used to tell the
 * transactions some trace transaction saw from those none saw. O((n + k) log n).
 */
export function visibilityCounter(snapshots: Snapshot[]): (xid: number) => number {
  const xmaxes = snapshots.map((s) => s.xmax).sort((a, b) => a - b);
  const inProgress = new Map<number, number>();
  for (const s of snapshots) for (const x of s.xip) inProgress.set(x, (inProgress.get(x) ?? 0) + 1);
  return (xid) => {
    // visible = xid < xmax and not in xip (xip ⊂ [xmin, xmax), so xid < xmin implies not in xip)
    const aboveXmax = snapshots.length - upperBound(xmaxes, xid); // snapshots with xmax > xid
    return aboveXmax - (inProgress.get(xid) ?? 0);
  };
}

/** Index of the first element > x in a sorted array. */
export function upperBound(sorted: number[], x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Index of the first element >= x in a sorted array. */
export function lowerBound(sorted: number[], x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
