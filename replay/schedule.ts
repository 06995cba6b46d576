/**
 * The replay schedule: which recorded transaction starts and commits when, on concurrent
 * sessions of the scratch database.
 *
 * Snapshot order (after R3, PVLDB 16(11): neither commit order nor xid order reproduces what
 * each transaction saw under snapshot isolation; recorded snapshots do). Every trace
 * transaction T has its recorded snapshot S(T). The schedule keeps two rules:
 *   - start T (BEGIN, snapshot taken) only when every schedule transaction visible in S(T) has
 *     committed;
 *   - commit U only when every trace transaction whose snapshot does NOT see U has started.
 * Then each replayed T sees exactly the schedule transactions its recorded snapshot saw. Within
 * these rules the schedule is eager: a transaction commits as soon as it has run and the second
 * rule allows it (ready ones in recorded commit order), and every transaction whose first rule
 * holds starts at once, so independent transactions run concurrently, as they did. When U's
 * commit is the last thing T waits for, U's COMMIT and T's BEGIN go in one round trip on U's
 * session. T also starts (or rides on U's COMMIT) when the schedule transactions it must see
 * are committed or have their COMMIT on its way: its BEGIN then waits in the server for their
 * ends (each replayed trace transaction holds an advisory lock of its own until it ends), so
 * the gate costs no round trip to this process. External transactions (outside the trace,
 * seen by it) have no snapshot: they are applied and committed when the second rule allows,
 * before any trace transaction that saw them starts.
 *
 * A record the rules cannot order (READ COMMITTED, or a replayed transaction waiting for a row
 * lock of one that may not commit yet) is unblocked by relaxing one rule, with a warning.
 *
 * Commit order (`order: "commit"`, a demonstration of why snapshots are needed): transactions
 * run one at a time in recorded commit order.
 */
import { OpenError, Session, isRetryable, type InvocationRun, type Opened } from "./session.ts";
import { visible } from "./snapshot.ts";
import type { RecordedInvocation, RowChange, TableInfo, Unit } from "./types.ts";

export interface ScheduleOptions {
  /** scratch database */
  url: string;
  /** trace and external transactions, sorted by xid, `index` = position */
  units: Unit[];
  order: "snapshot" | "commit";
  tables: Map<number, TableInfo>;
  /** the bundle version to run an invocation at */
  versionFor: (inv: RecordedInvocation) => number;
  /** sessions kept at most (more are opened only when the schedule cannot move otherwise). Default 24. */
  maxConnections?: number;
  /** retroaction: rerun a transaction that hits a serialization failure or deadlock (with a new snapshot) */
  retryAlways?: boolean;
  /** run SERIALIZABLE transactions at REPEATABLE READ (Session.begin): no SSI aborts that depend on replay timing */
  relaxSerializable?: boolean;
  /** run each transaction as its recorded role (SET LOCAL ROLE) */
  setRole?: boolean;
  /** re-applied changes run with session_replication_role = replica (needs superuser) */
  replicaRole?: boolean;
  /** read each transaction's changes when it commits (for onUnit); else they are read once at the end */
  changesPerUnit?: boolean;
  /** --until: never start this unit; stop when it could start, rolling back what is open */
  stopBefore?: number;
  /** called after each unit commits (or fails); return true to stop the run */
  onUnit?: (run: UnitRun) => boolean | void;
  signal?: AbortSignal;
}

/** What happened to one schedule transaction. */
export interface UnitRun {
  unit: Unit;
  /** per invocation id */
  invocations: Map<string, InvocationRun>;
  /** changes the replayed transaction wrote, by seq (null until read) */
  changes: RowChange[] | null;
  /** the scratch transaction's xid, when known */
  scratchXid: number | null;
  committed: boolean;
  /** position in the replay's commit sequence */
  commitOrder: number | null;
  /** why it did not commit */
  failure?: string;
  retries: number;
  /** re-applied recorded changes (updates, deletes) that found no row to change */
  missed?: number;
}

export interface ScheduleResult {
  /** by unit index */
  runs: Map<number, UnitRun>;
  stopped: boolean;
  warnings: string[];
  /** round trips to the scratch database (queries sent) and sessions opened */
  stats: { roundTrips: number; sessions: number };
}

const enum St {
  Pending,
  Starting,
  Running,
  Finished,
  Committing,
  Done,
}

function newRun(u: Unit): UnitRun {
  return { unit: u, invocations: new Map(), changes: null, scratchXid: null, committed: false, commitOrder: null, retries: 0 };
}

/** Runs the schedule. @throws only for connection-level failures of the scratch database. */
export async function runSchedule(o: ScheduleOptions): Promise<ScheduleResult> {
  return o.order === "commit" ? runCommitOrder(o) : new SnapshotScheduler(o).run();
}

/** Can the unit's whole body go in the round trip of its BEGIN (one invocation, nothing re-applied)? */
const oneStatement = (u: Unit) => u.kind === "trace" && u.invocations.length === 1 && !u.changes.some((c) => c.invocationId === null);

/** Commit order: one transaction at a time, in recorded commit order (xid when unknown). */
async function runCommitOrder(o: ScheduleOptions): Promise<ScheduleResult> {
  const s = new Session(o.url);
  await s.connect();
  const runs = new Map<number, UnitRun>();
  const order = [...o.units].sort((a, b) => (a.commitUs ?? a.xid) - (b.commitUs ?? b.xid) || a.xid - b.xid);
  let stopped = false;
  let committed = 0;
  try {
    for (const u of order) {
      if (o.signal?.aborted) {
        stopped = true;
        break;
      }
      const run = newRun(u);
      runs.set(u.index, run);
      try {
        run.scratchXid = (await s.open({ isolation: u.kind === "trace" ? u.isolation : "read committed", role: o.setRole ? u.role : null, relax: o.relaxSerializable ?? false })).xid;
        await runBody(s, u, run, o);
        run.changes = await s.commit(o.changesPerUnit ? run.scratchXid : null);
        run.committed = true;
        run.commitOrder = committed++;
      } catch (err) {
        await s.rollback().catch(() => {});
        run.failure = (err as Error).message;
      }
      if (o.onUnit?.(run) === true) {
        stopped = true;
        break;
      }
    }
  } finally {
    await s.close();
  }
  return { runs, stopped, warnings: [], stats: { roundTrips: s.trips, sessions: 1 } };
}

/**
 * The invocations of a trace unit (then its writes outside txfn), or the changes of an external
 * one. A re-applied change that found no row to change is counted in `run.missed`.
 */
async function runBody(s: Session, u: Unit, run: UnitRun, o: ScheduleOptions): Promise<void> {
  if (u.kind === "external") {
    run.missed = await s.redo(u.changes, o.tables, o.replicaRole ?? false);
    return;
  }
  for (const inv of u.invocations) run.invocations.set(inv.id, await s.invoke(inv, o.versionFor(inv), o.relaxSerializable));
  const outside = u.changes.filter((ch) => ch.invocationId === null);
  if (outside.length) run.missed = await s.redo(outside, o.tables, o.replicaRole ?? false);
}

/** The warning for re-applied changes that found no row (the replay's state differed there), or null. */
export function missedWarning(run: UnitRun): string | null {
  if (!run.missed || !run.committed) return null;
  const what = run.unit.kind === "external" ? "transaction" : "trace transaction";
  return `${what} ${run.unit.xid}: ${run.missed} re-applied change(s) found no row to change (the replayed state differed from the recorded one there)`;
}

class SnapshotScheduler {
  private readonly units: Unit[];
  private readonly state: St[];
  private readonly runs = new Map<number, UnitRun>();
  private readonly warnings: string[] = [];
  private readonly indexOfXid = new Map<number, number>();
  /** trace units by xmax, and the first of them not yet started */
  private readonly byXmax: number[];
  private xmaxPtr = 0;
  /** trace units by xmin, and the first of them not yet started */
  private readonly byXmin: number[];
  private xminPtr = 0;
  /** external units by xid, and the first of them not yet done */
  private readonly externals: number[];
  private extPtr = 0;
  /** units not yet done, as a linked list in xid order (next[-1] is the head; -1 ends it) */
  private readonly nextUndone: Int32Array;
  private readonly prevUndone: Int32Array;
  private head = 0;
  /** per unit: trace units not yet started whose snapshot lists it as in progress */
  private readonly xipers: number[];
  /**
   * per external unit: the units whose recorded commit came before its own and that last wrote
   * a row it writes. An external unit is applied only once they are over, so re-applied changes
   * land on the rows as they were recorded (concurrent re-application would race).
   */
  private readonly writtenAfter = new Map<number, number[]>();
  /** units whose end a start waited for in the server */
  private readonly waitedOn = new Set<number>();
  /** finished trace units waiting to commit */
  private readonly finished = new Set<number>();
  private readonly idle: Session[] = [];
  private readonly sessions = new Map<number, Session>();
  private monitor: Session | null = null;
  /** every session opened (for the statistics) */
  private readonly allSessions: Session[] = [];
  private opened = 0;
  private cap: number;
  private inFlight = 0;
  private done = 0;
  private commits = 0;
  private stopping = false;
  private stopped = false;
  private progressAt = Date.now();
  private settle!: () => void;
  private fail!: (err: unknown) => void;

  constructor(private readonly o: ScheduleOptions) {
    this.units = o.units;
    this.cap = o.maxConnections ?? 24;
    this.state = this.units.map((u) => (u.kind === "external" ? St.Finished : St.Pending));
    this.units.forEach((u, i) => {
      this.indexOfXid.set(u.xid, i);
      this.runs.set(i, newRun(u));
    });
    const trace = this.units.filter((u) => u.kind === "trace").map((u) => u.index);
    this.externals = this.units.filter((u) => u.kind === "external").map((u) => u.index);
    this.byXmax = [...trace].sort((a, b) => this.snap(a).xmax - this.snap(b).xmax);
    this.byXmin = [...trace].sort((a, b) => this.snap(a).xmin - this.snap(b).xmin || a - b);
    this.xipers = this.units.map(() => 0);
    const n = this.units.length;
    this.nextUndone = Int32Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1));
    this.prevUndone = Int32Array.from({ length: n }, (_, i) => i - 1);
    this.head = n > 0 ? 0 : -1;
    for (const t of trace) {
      for (const x of this.snap(t).xip) {
        const i = this.indexOfXid.get(x);
        if (i !== undefined && i !== t) this.xipers[i]!++;
      }
    }
    if (this.externals.length) this.orderExternalWrites();
  }

  /** Fills writtenAfter: per external unit, the last earlier-committed writer of each row it writes. */
  private orderExternalWrites(): void {
    const byCommit = [...this.units].sort((a, b) => (a.commitUs ?? a.xid) - (b.commitUs ?? b.xid) || a.xid - b.xid);
    const lastWriter = new Map<string, number>();
    for (const u of byCommit) {
      const rows = new Set<string>();
      for (const ch of u.changes) {
        rows.add(`${ch.tableId}\u0000${ch.key}`);
        if (ch.oldKey !== null) rows.add(`${ch.tableId}\u0000${ch.oldKey}`);
      }
      if (u.kind === "external") {
        const before = new Set<number>();
        for (const r of rows) {
          const w = lastWriter.get(r);
          if (w !== undefined) before.add(w);
        }
        if (before.size) this.writtenAfter.set(u.index, [...before]);
      }
      for (const r of rows) lastWriter.set(r, u.index);
    }
  }

  /** Are the units an external unit's rows were last written by (before it, as recorded) over? */
  private writersDone(i: number): boolean {
    const before = this.writtenAfter.get(i);
    return before === undefined || before.every((j) => this.state[j] === St.Done);
  }

  private snap(i: number) {
    return this.units[i]!.snapshot!;
  }

  run(): Promise<ScheduleResult> {
    return new Promise<ScheduleResult>((resolve, reject) => {
      const watchdog = setInterval(() => void this.unstick().catch(() => {}), 1000);
      let over = false;
      const end = async () => {
        clearInterval(watchdog);
        const all = new Set([...this.idle, ...this.sessions.values(), ...(this.monitor ? [this.monitor] : [])]);
        await Promise.all([...all].map((s) => s.close()));
      };
      this.settle = () => {
        if (over) return;
        over = true;
        const stats = { roundTrips: this.allSessions.reduce((n, s) => n + s.trips, 0), sessions: this.allSessions.length };
        void end().then(() => resolve({ runs: this.runs, stopped: this.stopped, warnings: this.warnings, stats }), reject);
      };
      this.fail = (err) => {
        if (over) return;
        over = true;
        void end().finally(() => reject(err));
      };
      this.pump();
    });
  }

  /** A session now (idle, or a new one under the cap), or null. Connecting happens in the task that uses it. */
  private takeSession(): Session | null {
    const s = this.idle.pop();
    if (s) return s;
    if (this.opened >= this.cap) return null;
    this.opened++;
    const fresh = new Session(this.o.url);
    this.allSessions.push(fresh);
    return fresh;
  }

  /** Can unit i start once `assumeDone` (if any) has committed? Every other unfinished unit below its xmax must be in progress in its snapshot. */
  private canStart(i: number, assumeDone = -1): boolean {
    const s = this.snap(i);
    for (let j = this.head; j >= 0 && this.units[j]!.xid < s.xmax; j = this.nextUndone[j]!) {
      if (j !== i && j !== assumeDone && !s.xip.has(this.units[j]!.xid)) return false;
    }
    return true;
  }

  /** The smallest xmax of a trace transaction not started yet. */
  private minXmax(): number {
    while (this.xmaxPtr < this.byXmax.length && this.state[this.byXmax[this.xmaxPtr]!]! >= St.Running) this.xmaxPtr++;
    return this.xmaxPtr < this.byXmax.length ? this.snap(this.byXmax[this.xmaxPtr]!).xmax : Infinity;
  }

  /** Can finished unit i commit? Every trace transaction that must not see it has started. */
  private canCommit(i: number, minXmax: number): boolean {
    if (this.units[i]!.xid >= minXmax || this.xipers[i] !== 0) return false;
    // --until: only what the stop invocation sees may commit.
    return this.o.stopBefore === undefined || visible(this.units[i]!.xid, this.snap(this.o.stopBefore));
  }

  private pump(): void {
    if (this.o.signal?.aborted && !this.stopping) this.stopping = this.stopped = true;
    for (;;) {
      let moved = false;
      const minXmax = this.minXmax();
      const ready = [...this.finished].filter((i) => this.canCommit(i, minXmax));
      while (this.extPtr < this.externals.length && this.state[this.externals[this.extPtr]!] === St.Done) this.extPtr++;
      for (let k = this.extPtr; k < this.externals.length; k++) {
        const i = this.externals[k]!;
        if (this.units[i]!.xid >= minXmax) break;
        if (this.state[i] === St.Finished && this.canCommit(i, minXmax) && this.writersDone(i)) ready.push(i);
      }
      ready.sort((a, b) => (this.units[a]!.commitUs ?? this.units[a]!.xid) - (this.units[b]!.commitUs ?? this.units[b]!.xid));
      const committing: number[] = [];
      for (const i of ready) {
        if (this.units[i]!.kind === "external") {
          const s = this.takeSession();
          if (!s) continue;
          this.sessions.set(i, s);
        }
        this.finished.delete(i);
        this.state[i] = St.Committing;
        committing.push(i);
      }
      // Successors once all of them are committing: a transaction waiting for several of these
      // commits rides on one of them and waits in the server for the others.
      for (const i of committing) {
        const next = this.stopping || this.runs.get(i)!.failure || this.o.changesPerUnit ? undefined : this.successor(i);
        if (next !== undefined) this.state[next.next] = St.Starting;
        this.spawn(() => this.commit(i, next));
        moved = true;
      }
      if (!this.stopping) moved = this.startReady() || moved;
      if (!moved) break;
    }
    if (this.inFlight === 0) this.onIdle();
  }

  /**
   * A pending trace unit that sees unit i and waits for nothing else but commits on their way:
   * it can BEGIN right after i's COMMIT, on i's session, waiting in the server for those.
   */
  private successor(i: number): { next: number; waits: number[] } | undefined {
    if (this.units[i]!.kind !== "trace") return undefined;
    const lowest = this.lowestBlocking(i); // the lowest unfinished xid once i commits, commits on their way aside
    for (let k = this.xminPtr, seen = 0; k < this.byXmin.length && seen < 64; k++, seen++) {
      const t = this.byXmin[k]!;
      if (this.snap(t).xmin > lowest) break;
      if (this.state[t] !== St.Pending || t === this.o.stopBefore) continue;
      if (!visible(this.units[i]!.xid, this.snap(t))) continue;
      const waits = this.startWaits(t, i);
      if (waits) return { next: t, waits };
    }
    return undefined;
  }

  /**
   * Can unit i start once `assumeDone` (if any) has committed, waiting in the server for trace
   * units whose COMMIT is on its way (they hold their unit lock)? Those units, or null when
   * another unfinished unit below its xmax is not in progress in its snapshot.
   */
  private startWaits(i: number, assumeDone = -1): number[] | null {
    const s = this.snap(i);
    const waits: number[] = [];
    for (let j = this.head; j >= 0 && this.units[j]!.xid < s.xmax; j = this.nextUndone[j]!) {
      if (j === i || j === assumeDone || s.xip.has(this.units[j]!.xid)) continue;
      if (this.state[j] !== St.Committing || this.units[j]!.kind !== "trace") return null;
      waits.push(j);
    }
    return waits;
  }

  /**
   * The lowest xid of an unfinished unit other than `except` that a start would not wait for in
   * the server (every unit but trace units whose COMMIT is on its way); Infinity when none.
   * A trace unit whose snapshot's xmin is above it cannot start yet.
   */
  private lowestBlocking(except = -1): number {
    let j = this.head;
    while (j >= 0 && (j === except || (this.state[j] === St.Committing && this.units[j]!.kind === "trace"))) j = this.nextUndone[j]!;
    return j >= 0 ? this.units[j]!.xid : Infinity;
  }

  /** Starts every trace unit whose visible set has committed or is committing (candidates: xmin at or below the lowest blocking xid). */
  private startReady(): boolean {
    while (this.xminPtr < this.byXmin.length && this.state[this.byXmin[this.xminPtr]!] !== St.Pending) this.xminPtr++;
    const lowest = this.lowestBlocking();
    let moved = false;
    for (let k = this.xminPtr; k < this.byXmin.length; k++) {
      const i = this.byXmin[k]!;
      if (this.snap(i).xmin > lowest) break;
      if (this.state[i] !== St.Pending) continue;
      const waits = this.startWaits(i);
      if (!waits) continue;
      if (i === this.o.stopBefore) {
        if (waits.length) continue; // --until stops once what it sees has committed
        this.stopping = true;
        return moved;
      }
      const s = this.takeSession();
      if (!s) return moved;
      this.sessions.set(i, s);
      this.state[i] = St.Starting;
      this.spawn(() => this.start(i, undefined, waits));
      moved = true;
    }
    return moved;
  }

  private spawn(work: () => Promise<void>): void {
    this.inFlight++;
    work().then(
      () => {
        this.inFlight--;
        this.progressAt = Date.now();
        this.pump();
      },
      (err) => this.fail(err),
    );
  }

  /**
   * Does a finished transaction wait for unit i's snapshot alone (i's snapshot must not see it,
   * and every other trace transaction that must not see it has started)? Then i's BEGIN goes
   * alone, so that one can commit without waiting for i's body; otherwise the body goes in the
   * same round trip (one round trip less).
   */
  private awaited(i: number): boolean {
    const s = this.snap(i);
    let others = Infinity; // the smallest xmax of another trace unit not started
    for (let k = this.xmaxPtr; k < this.byXmax.length; k++) {
      const t = this.byXmax[k]!;
      if (t !== i && this.state[t]! < St.Running) {
        others = this.snap(t).xmax;
        break;
      }
    }
    for (const j of this.finished) {
      const x = this.units[j]!.xid;
      const inXip = s.xip.has(x);
      if (x < s.xmax && !inXip) continue; // i sees it: not waiting for i
      if (x < others && this.xipers[j]! - (inXip ? 1 : 0) === 0) return true;
    }
    return false;
  }

  /**
   * BEGIN unit i — after the COMMIT of `prev` in the same round trip when given (on prev's
   * session), and after the ends of the units `waits` (whose COMMIT is on its way) — then its
   * body. A one-invocation body goes in that round trip too, unless a finished transaction
   * waits for i's snapshot (it would wait for the whole invocation).
   */
  private async start(i: number, prev?: number, waits: number[] = []): Promise<void> {
    for (const j of waits) this.waitedOn.add(j);
    const u = this.units[i]!;
    const s = this.sessions.get(i)!;
    if (s.pid === 0) await s.connect();
    const run = this.runs.get(i)!;
    const inv = oneStatement(u) && !this.awaited(i) ? u.invocations[0]! : undefined;
    let opened: Opened;
    try {
      opened = await s.open({
        isolation: u.isolation,
        role: this.o.setRole ? u.role : null,
        relax: this.o.relaxSerializable ?? false,
        lock: i,
        ...(waits.length ? { waitFor: waits } : {}),
        ...(prev !== undefined ? { commitFirst: true, previousXid: this.runs.get(prev)!.scratchXid } : {}),
        ...(inv ? { invoke: { inv, version: this.o.versionFor(inv) } } : {}),
      });
    } catch (e) {
      let err = e;
      if (e instanceof OpenError) {
        err = e.error;
        if (!e.committed) {
          // prev's COMMIT failed: i waits again, prev is done without committing.
          this.state[i] = St.Pending;
          this.sessions.delete(i);
          this.runs.get(prev!)!.failure = `COMMIT failed: ${e.message}`;
          this.finish(prev!, s, false);
          return;
        }
        this.finish(prev!, null, true);
      }
      if (!isRetryable(err)) throw err;
      await s.rollback().catch(() => {});
      this.began(i);
      return this.retry(i, run, err as Error);
    }
    if (prev !== undefined) this.finish(prev, null, true);
    run.scratchXid = opened.xid;
    this.began(i);
    if (inv) {
      run.invocations.set(inv.id, opened.run!);
    } else {
      try {
        await runBody(s, u, run, this.o);
      } catch (err) {
        if (!isRetryable(err)) throw err;
        await s.rollback();
        return this.retry(i, run, err as Error);
      }
    }
    this.state[i] = St.Finished;
    this.finished.add(i);
  }

  /** Unit i's snapshot is taken: commits that waited for it may go. */
  private began(i: number): void {
    if (this.state[i] !== St.Starting) return;
    this.state[i] = St.Running;
    for (const x of this.snap(i).xip) {
      const j = this.indexOfXid.get(x);
      if (j !== undefined && j !== i) this.xipers[j]!--;
    }
    this.pump();
  }

  /** A serialization failure or deadlock: run again when that keeps the snapshot's view (or always, in retroaction). */
  private async retry(i: number, run: UnitRun, err: Error): Promise<void> {
    const s = this.snap(i);
    const code = (err as { code?: string }).code;
    const unseen = this.units.some((u, j) => j !== i && this.runs.get(j)!.committed && !visible(u.xid, s));
    if ((this.o.retryAlways || !unseen) && run.retries < 10) {
      run.retries++;
      run.invocations.clear();
      if (unseen) this.warnings.push(`transaction ${this.units[i]!.xid} hit ${code} and ran again with a newer snapshot`);
      return this.start(i);
    }
    run.failure = `${err.message} (SQLSTATE ${code}); running it again would see transactions its recorded snapshot did not`;
    this.state[i] = St.Finished;
    this.finished.add(i);
  }

  /** Unit i is over (committed or not); its session goes back to the idle ones unless handed on (null). */
  private finish(i: number, s: Session | null, committed: boolean): void {
    const run = this.runs.get(i)!;
    if (committed) {
      run.committed = true;
      run.commitOrder = this.commits++;
    }
    if (this.sessions.get(i) === s || s === null) this.sessions.delete(i);
    if (s) this.idle.push(s);
    this.state[i] = St.Done;
    this.done++;
    const p = this.prevUndone[i]!;
    const q = this.nextUndone[i]!;
    if (p >= 0) this.nextUndone[p] = q;
    else this.head = q;
    if (q >= 0) this.prevUndone[q] = p;
    if (this.o.onUnit?.(run) === true) this.stopping = this.stopped = true;
  }

  /** COMMIT unit i (an external one is applied first); `next` begins in the same round trip, on i's session. */
  private async commit(i: number, next?: { next: number; waits: number[] }): Promise<void> {
    const run = this.runs.get(i)!;
    const u = this.units[i]!;
    const s = this.sessions.get(i)!;
    if (u.kind === "external") {
      if (s.pid === 0) await s.connect();
      run.scratchXid = (await s.open({ isolation: "read committed", role: null, relax: false })).xid;
      try {
        await runBody(s, u, run, this.o);
      } catch (err) {
        if (isRetryable(err)) throw err;
        run.failure = `re-applying its recorded changes failed: ${(err as Error).message}`;
        this.warnings.push(`transaction ${u.xid} (outside the trace) could not be re-applied: ${(err as Error).message}`);
      }
    }
    if (run.failure) {
      await s.rollback().catch(() => {});
      return this.finish(i, s, false);
    }
    if (next !== undefined) {
      this.sessions.set(next.next, s);
      return this.start(next.next, i, next.waits);
    }
    try {
      run.changes = await s.commit(this.o.changesPerUnit ? run.scratchXid : null);
    } catch (err) {
      if (!isRetryable(err) || u.kind === "external") throw err;
      if (this.waitedOn.has(i)) {
        // Possible only in a deferred trigger at REPEATABLE READ: starts that waited in the server for this COMMIT went on without it.
        this.warnings.push(`transaction ${u.xid}: its COMMIT failed (SQLSTATE ${(err as { code?: string }).code}) after transactions that must see it had started waiting for it; they ran without it`);
      }
      this.state[i] = St.Running;
      await this.retry(i, run, err as Error);
      if ((this.state[i] as St) !== St.Finished) return;
      this.finished.delete(i);
      this.state[i] = St.Committing;
      return this.commit(i);
    }
    this.finish(i, s, true);
  }

  /** Nothing in flight: finished, stopped, or stuck on sessions or on an inconsistent record. */
  private onIdle(): void {
    if (this.done === this.units.length) return this.settle();
    if (this.stopping) {
      void this.rollbackOpen().then(() => this.settle(), (e) => this.fail(e));
      return;
    }
    // Every session holds a finished transaction that waits for a start that needs a session: open one more.
    const startable = this.units.some((u, i) => u.kind === "trace" && this.state[i] === St.Pending && this.canStart(i));
    if (startable && this.idle.length === 0 && this.opened >= this.cap && this.cap < 2 * (this.o.maxConnections ?? 24) + 8) {
      this.cap++;
      this.pump();
      return;
    }
    this.relax();
  }

  /** Breaks a cycle the record should not allow (READ COMMITTED, clock skew): commit the oldest finished one, or start the next. */
  private relax(): void {
    const finished = [...this.finished].sort((a, b) => a - b)[0];
    if (finished !== undefined) {
      this.warnings.push(`ordering relaxed: transaction ${this.units[finished]!.xid} committed before every transaction that must not see it had started`);
      this.finished.delete(finished);
      this.state[finished] = St.Committing;
      this.spawn(() => this.commit(finished));
      return;
    }
    const next = this.units.findIndex((u, i) => this.state[i] !== St.Done && i !== this.o.stopBefore && (u.kind === "trace" ? this.state[i] === St.Pending : true));
    const s = next < 0 ? null : (this.takeSession() ?? (this.cap++, this.takeSession()));
    if (next < 0 || !s) {
      this.stopping = true;
      return this.onIdle();
    }
    this.sessions.set(next, s);
    const u = this.units[next]!;
    this.warnings.push(`ordering relaxed: transaction ${u.xid} ${u.kind === "trace" ? "started" : "committed"} before the record allows`);
    this.state[next] = u.kind === "trace" ? St.Starting : St.Committing;
    this.spawn(() => (u.kind === "trace" ? this.start(next) : this.commit(next)));
  }

  /** Lock waits on a finished transaction that may not commit yet: after a second without progress, commit the blocker. */
  private async unstick(): Promise<void> {
    if (Date.now() - this.progressAt < 1000 || this.stopping) return;
    const waiting = [...this.sessions.entries()].filter(([i]) => this.state[i] === St.Running);
    if (waiting.length === 0 || this.finished.size === 0) return;
    const holders = new Map<number, number>();
    for (const i of this.finished) {
      const s = this.sessions.get(i);
      if (s) holders.set(s.pid, i);
    }
    if (!this.monitor) {
      this.monitor = new Session(this.o.url);
      await this.monitor.connect();
    }
    for (const [, s] of waiting) {
      for (const pid of await this.monitor.blockingPids(s.pid)) {
        const i = holders.get(pid);
        if (i === undefined || !this.finished.has(i) || this.stopping) continue;
        this.warnings.push(`ordering relaxed: transaction ${this.units[i]!.xid} committed early because a replayed transaction waited for its lock`);
        this.finished.delete(i);
        this.state[i] = St.Committing;
        this.spawn(() => this.commit(i));
        return;
      }
    }
  }

  private async rollbackOpen(): Promise<void> {
    for (const [i, s] of this.sessions) {
      if (s.pid !== 0) await s.rollback().catch(() => {});
      const run = this.runs.get(i)!;
      if (!run.committed) run.failure ??= "rolled back: the run stopped before it could commit";
    }
  }
}
