/** The shapes replay/ passes around: the selected trace, the recording read from the source, the report. */
import type { Snapshot } from "./snapshot.ts";

/**
 * Which invocations form the trace. Criteria combine with AND; at least one is needed. Every
 * invocation of a selected invocation's transaction joins the trace (a transaction replays whole).
 */
export interface TraceSelector {
  /** started_at ≥ from */
  from?: Date;
  /** started_at ≤ to */
  to?: Date;
  invocationIds?: string[];
  workflowIds?: string[];
  functions?: string[];
  /** Everything that wrote this row (provenance history): table (`schema.table` or `table`) and key as `txfn history` takes it. */
  row?: { table: string; key: string };
}

export type ChangeOp = "I" | "U" | "D" | "T";

/** One recorded (or replayed) row change; JSON values as PostgreSQL's canonical jsonb text. */
export interface RowChange {
  xid: number;
  seq: number;
  /** Verified invocation (the change's invocation_id ran in its transaction), else null. */
  invocationId: string | null;
  tableId: number;
  op: ChangeOp;
  key: string;
  oldKey: string | null;
  oldRow: string | null;
  newRow: string | null;
}

/** A recorded invocation (txfn.invocations), with JSON values as jsonb text. */
export interface RecordedInvocation {
  id: string;
  key: string | null;
  function: string;
  version: number;
  input: string;
  status: "ok" | "error";
  /** jsonb text; null = void (status ok) or status error */
  output: string | null;
  error: string | null;
  xid: number;
  snapshot: Snapshot;
  /** Date.now() inside the body, epoch ms */
  pinnedMs: number;
  seed: number;
  isolation: string;
  workflowId: string | null;
  workflowStep: number | null;
  role: string;
  startedAt: Date;
  endedAt: Date | null;
}

/**
 * A transaction of the schedule. `trace`: its invocations are re-executed. `external`: a
 * transaction outside the trace that some trace transaction saw (plain SQL, or an invocation the
 * selection left out): its recorded changes are re-applied, at its place.
 */
export interface Unit {
  index: number;
  kind: "trace" | "external";
  xid: number;
  /** trace: the snapshot of its first invocation */
  snapshot: Snapshot | null;
  /** trace: in the order they ran (nested ones left out: their caller runs them) */
  invocations: RecordedInvocation[];
  isolation: string;
  role: string | null;
  /** Commit time in µs since the epoch (track_commit_timestamp), null when unknown. */
  commitUs: number | null;
  /** Every recorded change of the transaction, by seq. */
  changes: RowChange[];
}

/** A registry row of txfn.provenance_tables. */
export interface TableInfo {
  id: number;
  schema: string;
  name: string;
  keyColumns: string[];
  exists: boolean;
  /**
   * Columns the table has today that its rows recorded during the trace lack (added since; the
   * scratch database has today's schema): undo and redo leave them to their defaults, matching
   * and comparison leave them out.
   */
  addedSince?: string[];
}

/** What `txfn replay`/`txfn retro` report per invocation (R3's retroaction categories). */
export type Outcome = "same" | "output changed" | "writes changed" | "now fails" | "now succeeds" | "did not run";

/** One side of an invocation's outcome. */
export interface RunOutcome {
  status: "ok" | "error";
  output?: unknown;
  error?: unknown;
}

export interface InvocationResult {
  id: string;
  function: string;
  outcome: Outcome;
  recorded: RunOutcome;
  /** null when it did not run (see `reason`) */
  replayed: RunOutcome | null;
  outputChanged: boolean;
  writesChanged: boolean;
  /** The first differing write: its position and both values (null = none on that side). */
  firstWriteDiff?: { index: number; recorded: unknown; replayed: unknown };
  /** Counts of writes on each side. */
  writes: { recorded: number; replayed: number };
  /** READ COMMITTED: each statement takes a new snapshot, so replay is not guaranteed. */
  notGuaranteed?: boolean;
  reason?: string;
}

/** A row whose final state differs, per table. */
export interface TableDiff {
  table: string;
  /** rows that differ */
  count: number;
  /** the first ones (at most 20): key, recorded final row, replayed final row (null = absent) */
  rows: { key: unknown; recorded: unknown; replayed: unknown }[];
}

export interface CheckResult {
  sql: string;
  ok: boolean;
  /** the first rows returned (at most 10) */
  rows: Record<string, unknown>[];
  rowCount: number;
  error?: string;
}

/** The report of a replay or retroaction (`--json` prints it). */
export interface ReplayReport {
  mode: "replay" | "retro";
  order: "snapshot" | "commit";
  source: string;
  scratch: { database: string; url: string; kept: boolean };
  trace: {
    invocations: number;
    transactions: number;
    /** transactions outside the trace that trace transactions saw, re-applied from provenance */
    external: number;
    first: string | null;
    last: string | null;
    /** READ COMMITTED invocations: replay not guaranteed */
    readCommitted: number;
    /** invocations called by another invocation's SQL (replayed by their caller, not compared) */
    nested: number;
  };
  /** retro: the version run and the functions it applies to (all when omitted) */
  retro?: { version: number; functions: string[] | null };
  timings: { reconstructMs: number; runMs: number; compareMs: number; originalMs: number };
  /** the run on the scratch database: round trips (queries sent) and sessions opened */
  stats: { roundTrips: number; sessions: number };
  counts: Record<Outcome, number>;
  /** invocations the run did not reach (--until, --stop-at-divergence, interrupted): not compared */
  notReached: number;
  /** Invocations whose outcome is not "same", in start order (all of them with `all`). */
  invocations: InvocationResult[];
  firstDivergence: InvocationResult | null;
  /**
   * Rows whose state differs at the trace's end: the record as of the trace's last transaction
   * against the replay, over every row the replay's transactions (trace and re-applied) wrote
   * on either side — not today's rows (compare.ts finalStateDiff).
   */
  finalState: TableDiff[];
  /** rows compared for finalState */
  finalStateRows: number;
  checks: CheckResult[];
  until?: { invocationId: string; url: string };
  stoppedEarly: boolean;
  warnings: string[];
}
