/**
 * `replayTrace` (faithful replay) and `retroTrace` (retroaction): read the trace in one snapshot
 * under a provenance hold, reconstruct the scratch database, run the schedule, compare.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { build, type Bundle } from "../bundler/index.ts";
import { deploy } from "../client/index.ts";
import { ensureSystemSchema } from "../migrations/index.ts";
import { compareInvocation, finalStateDiff, leaveOutColumns, runChecks } from "./compare.ts";
import {
  applyUndo,
  copySystemRows,
  databaseOf,
  dropScratch,
  dropUnusedIndexes,
  dumpSource,
  openScratch,
  readSystemRows,
  restoreSection,
  unlogTables,
  type Scratch,
} from "./reconstruct.ts";
import { ReplayError, readRecording, type Recording } from "./record.ts";
import { missedWarning, runSchedule, type UnitRun } from "./schedule.ts";
import { preferLocalSocket, readAllChanges } from "./session.ts";
import type { InvocationResult, Outcome, RecordedInvocation, ReplayReport, RowChange, TraceSelector } from "./types.ts";

export interface ReplayOptions {
  /** source database */
  url: string;
  selector: TraceSelector;
  /** an existing empty database to reconstruct into (never dropped) instead of a new one on the source's cluster */
  target?: string;
  /** keep the scratch database */
  keep?: boolean;
  /** "commit" runs transactions one at a time in recorded commit order (shows why snapshots are needed) */
  order?: "snapshot" | "commit";
  stopAtDivergence?: boolean;
  /** leave the scratch database just before this invocation (kept; its URL is in the report) */
  until?: string;
  /** SQL that must return no rows, run on the scratch database after the run */
  checks?: string[];
  /** sessions on the scratch database (default 24) */
  maxConnections?: number;
  /** list every invocation in the report, not only those whose outcome changed */
  all?: boolean;
  /** progress: invocations done of total */
  onProgress?: (done: number, total: number) => void;
  log?: (message: string) => void;
  signal?: AbortSignal;
}

export interface RetroOptions extends ReplayOptions {
  /** a function project to build and deploy into the scratch database only */
  bundleDir?: string;
  /** or a version deployed in the source */
  version?: number;
  /** only these functions run the new code (default: every function the new bundle has) */
  functions?: string[];
}

/**
 * Replays a recorded trace faithfully: same snapshots (snapshot-gated order), same pinned time
 * and seed, same bundle versions; compares every output, error and write with the record.
 * @throws ReplayError for a bad selection, pruned provenance or a failing reconstruction.
 */
export async function replayTrace(options: ReplayOptions): Promise<ReplayReport> {
  if (options.until !== undefined && options.order === "commit") {
    throw new ReplayError("--until and --order commit cannot be combined: --until stops the snapshot-order schedule", "drop --order commit (snapshot order is the default)");
  }
  return execute("replay", options);
}

/**
 * Runs a recorded trace again with new code (R3's retroaction): the same transactions in the
 * same snapshot order, originally failed invocations included, with `--bundle`/`version` for all
 * functions or only `functions`; reports per invocation what changed, the final-state diff per
 * table and the invariants.
 * @throws ReplayError as replayTrace, and for a bundle that does not build or deploy.
 */
export async function retroTrace(options: RetroOptions): Promise<ReplayReport> {
  if (options.bundleDir !== undefined && options.version !== undefined) {
    throw new ReplayError("--bundle and --bundle-version are mutually exclusive: give one of them", RETRO_CODE_HINT);
  }
  if (options.bundleDir === undefined && options.version === undefined) {
    throw new ReplayError("retroaction needs new code: --bundle <dir> or --bundle-version <n>", RETRO_CODE_HINT);
  }
  if (options.functions !== undefined && options.functions.length === 0) throw new ReplayError("--functions needs at least one function name");
  return execute("retro", options);
}

const RETRO_CODE_HINT = "--bundle <dir> builds a function project; --bundle-version <n> runs a version deployed in the source (txfn versions lists them)";

/**
 * Refuses `--functions` names the new code does not have (they would silently run their recorded
 * version, reported as "same").
 * @throws ReplayError naming them and listing the bundle's functions.
 */
function checkSwapped(functions: string[] | undefined, have: string[], bundle: string): void {
  if (functions === undefined) return;
  const unknown = functions.filter((f) => !have.includes(f));
  if (unknown.length === 0) return;
  throw new ReplayError(
    `--functions: ${unknown.join(", ")} ${unknown.length === 1 ? "is not a function" : "are not functions"} of ${bundle} ` +
      `(its functions: ${[...have].sort().join(", ") || "none"})`,
    "--functions takes names of the new code's functions, comma-separated (--function, singular, selects the trace)",
  );
}

const OUTCOMES: Outcome[] = ["same", "output changed", "writes changed", "now fails", "now succeeds", "did not run"];

/** Reads the trace in an exported snapshot, holds its provenance, and dumps the source in that snapshot. */
async function readAndDump(o: RetroOptions, dumpFile: string, holdName: () => string, openTarget: () => Promise<Scratch>) {
  const src = new pg.Client({ connectionString: o.url, application_name: "txfn-replay" });
  await src.connect();
  let held = false;
  try {
    await src.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    const snapshotId = (await src.query<{ s: string }>("SELECT pg_export_snapshot() AS s")).rows[0]!.s;
    let selector = o.selector;
    if (o.until !== undefined && Object.keys(selector).length === 0) selector = { invocationIds: [o.until] };
    const notInstalled = (e: unknown): never => {
      const code = (e as { code?: string }).code;
      if (code === "42P01" || code === "3F000") throw new ReplayError("txfn is not installed in this database (nothing deployed)", "txfn deploy <dir>");
      throw e;
    };
    // The options first: a wrong --bundle-version/--functions is reported even when the trace is empty.
    if (o.version !== undefined) {
      const v = await src
        .query<{ functions: string[] }>(
          "SELECT ARRAY(SELECT jsonb_object_keys(manifest->'functions')) AS functions FROM txfn.bundles WHERE version = $1",
          [o.version],
        )
        .catch(notInstalled);
      if (v.rowCount === 0) throw new ReplayError(`no bundle version ${o.version}`, "txfn versions lists them");
      checkSwapped(o.functions, v.rows[0]!.functions, `bundle version ${o.version}`);
    }
    const rec = await readRecording(src, o.url, selector).catch(notInstalled);
    if (o.until !== undefined && !rec.units.some((u) => u.invocations.some((i) => i.id === o.until))) {
      throw new ReplayError(`invocation ${o.until} is not in the selected trace`, "select a trace that holds it, or give --until alone");
    }
    const scratch = await openTarget();
    const hold = new pg.Client({ connectionString: o.url, application_name: "txfn-replay" });
    await hold.connect();
    try {
      await hold.query("SELECT txfn.provenance_hold($1, $2::xid8, NULL, $3, now() + interval '1 day')", [
        holdName(), String(rec.base.xmin), `replay of ${rec.invocations.length} invocation(s) into ${scratch.name}`,
      ]);
      held = true;
    } catch (e) {
      throw new ReplayError(`cannot hold the provenance this trace needs: ${(e as Error).message}`, (e as { hint?: string }).hint);
    } finally {
      await hold.end();
    }
    const system = await readSystemRows(src, [...rec.versions, ...(o.version !== undefined ? [o.version] : [])]);
    await dumpSource(o.url, snapshotId, dumpFile);
    await src.query("COMMIT");
    return { rec, scratch, system, held };
  } catch (err) {
    if (held) await releaseHold(o.url, holdName());
    throw err;
  } finally {
    await src.end();
  }
}

async function releaseHold(url: string, name: string): Promise<void> {
  const c = new pg.Client({ connectionString: url, application_name: "txfn-replay" });
  await c.connect();
  try {
    await c.query("SELECT txfn.provenance_release($1)", [name]);
  } finally {
    await c.end();
  }
}

async function execute(mode: "replay" | "retro", o: RetroOptions): Promise<ReplayReport> {
  const log = o.log ?? (() => {});
  const t0 = Date.now();
  let bundle: Bundle | undefined;
  if (o.bundleDir !== undefined) {
    bundle = await build(o.bundleDir); // fails before anything is created
    checkSwapped(o.functions, Object.keys(bundle.manifest.functions), `the bundle built from ${o.bundleDir}`);
  }
  const dir = mkdtempSync(join(tmpdir(), "txfn-replay-"));
  let scratch: Scratch | undefined;
  let held = false;
  let keep = o.keep === true || o.until !== undefined;
  const holdName = () => `replay:${scratch?.name ?? "?"}`;
  try {
    log("reading the trace");
    const r = await readAndDump(o, join(dir, "source.dump"), holdName, async () => (scratch = await openScratch(o.url, o.target)));
    held = r.held;
    const rec = r.rec;
    scratch = r.scratch;
    log(`reconstructing ${scratch.name}`);
    await restoreSection(scratch, join(dir, "source.dump"), "pre-data", join(dir, "list"));
    const c = new pg.Client({ connectionString: scratch.url, application_name: "txfn-replay" });
    await c.connect();
    try {
      // A scratch database that is thrown away needs no WAL (reconstruct.ts, unlogTables).
      if (scratch.created && !keep) await unlogTables(c);
      await restoreSection(scratch, join(dir, "source.dump"), "data", join(dir, "list"));
      await applyUndo(c, rec);
      await restoreSection(scratch, join(dir, "source.dump"), "post-data", join(dir, "list"));
      // No ANALYZE: fresh statistics of a near-empty txfn.invocations make the runtime's
      // ctid update a sequential scan, whose relation-wide SSI lock would abort concurrent
      // replayed claims (autovacuum analyzes the tables once they have changed enough).
      await copySystemRows(c, r.system);
      // This checkout's runtime (replay needs its invoke options), system migrations the source lacks.
      await c.query("BEGIN");
      await ensureSystemSchema(c);
      await c.query("COMMIT");
      if (scratch.created && !keep) await dropUnusedIndexes(c);
    } finally {
      await c.end();
    }
    let version: number | null = null;
    if (bundle) {
      log("deploying the new bundle into the scratch database");
      version = (await deploy(scratch.url, bundle)).version;
    } else if (o.version !== undefined) version = o.version;
    const swapped = o.functions ? new Set(o.functions) : null;
    const versionFor = (inv: RecordedInvocation) => (version !== null && (swapped === null || swapped.has(inv.function)) ? version : inv.version);
    const reconstructMs = Date.now() - t0;

    const until = o.until !== undefined ? rec.units.find((u) => u.invocations.some((i) => i.id === o.until)) : undefined;
    if (o.until !== undefined && !until) throw new ReplayError(`invocation ${o.until} is not in the selected trace`);
    const invocationTotal = rec.invocations.length;
    let doneInvocations = 0;
    let diverged = false;
    const sessionUrl = await preferLocalSocket(scratch.url);
    const t1 = Date.now();
    log(`running ${invocationTotal} invocation(s) in ${rec.units.length} transaction(s)`);
    const result = await runSchedule({
      url: sessionUrl,
      units: rec.units,
      order: o.order ?? "snapshot",
      tables: rec.tables,
      versionFor,
      maxConnections: o.maxConnections ?? 24,
      retryAlways: mode === "retro",
      relaxSerializable: true,
      setRole: scratch.sameCluster,
      replicaRole: scratch.sameCluster,
      ...(until ? { stopBefore: until.index } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
      changesPerUnit: o.stopAtDivergence === true && mode === "replay",
      onUnit: (run) => {
        doneInvocations += run.unit.invocations.length;
        if (run.unit.invocations.length) o.onProgress?.(doneInvocations, invocationTotal);
        if (!o.stopAtDivergence || mode !== "replay" || diverged) return diverged;
        leaveOutColumns(rec.tables, [run.unit.changes, run.changes ?? []]);
        diverged = run.unit.invocations.some((inv) => compareInvocation(inv, run, rec.tables).outcome !== "same");
        return diverged;
      },
    });
    const runMs = Date.now() - t1;
    log("comparing with the record");

    const t2 = Date.now();
    const replayedChain = await collectChanges(scratch.url, result.runs);
    leaveOutColumns(rec.tables, [replayedChain, ...rec.units.map((u) => u.changes), ...[...result.runs.values()].map((r) => r.changes ?? [])]);
    const report = buildReport(mode, o, rec, result.runs, scratch, keep, result.stopped || until !== undefined);
    const recordedChain = chain(rec, result.runs);
    const final = until ? { diffs: [], rows: 0 } : finalStateDiff(recordedChain, replayedChain, rec.tables);
    report.finalState = final.diffs;
    report.finalStateRows = final.rows;
    report.checks = await runChecks(scratch.url, o.checks ?? []);
    report.stoppedEarly = result.stopped;
    const missed = [...result.runs.values()].map(missedWarning).filter((w): w is string => w !== null);
    report.warnings = [...rec.warnings, ...result.warnings, ...missed];
    if (version !== null) report.retro = { version, functions: o.functions ?? null };
    if (until) report.until = { invocationId: o.until!, url: scratch.url };
    report.timings = { reconstructMs, runMs, compareMs: Date.now() - t2, originalMs: rec.originalMs };
    report.stats = result.stats;
    keep = keep || report.scratch.kept;
    return report;
  } catch (err) {
    keep = o.keep === true; // a failed --until leaves nothing worth opening
    throw err;
  } finally {
    rmSync(dir, { recursive: true, force: true });
    if (held) await releaseHold(o.url, holdName()).catch(() => {});
    if (scratch && !keep) await dropScratch(o.url, scratch).catch((e: Error) => log(`could not drop ${scratch!.name}: ${e.message}`));
  }
}

/**
 * Reads every change of the scratch database once, gives each committed unit its own (by the
 * scratch xid, known from BEGIN or from its invocations' rows) and returns them all in the
 * replay's commit order (changes made before the run, e.g. by a retroaction's deploy, first).
 */
async function collectChanges(url: string, runs: Map<number, UnitRun>): Promise<RowChange[]> {
  const c = new pg.Client({ connectionString: url, application_name: "txfn-replay" });
  await c.connect();
  try {
    const inv = await c.query<{ id: string; xid: string }>("SELECT id::text AS id, xid::text AS xid FROM txfn.invocations");
    const xidOf = new Map(inv.rows.map((r) => [r.id, Number(r.xid)]));
    const order = new Map<number, number>();
    for (const run of runs.values()) {
      if (!run.committed) continue;
      run.scratchXid ??= xidOf.get(run.unit.invocations[0]?.id ?? "") ?? null;
      if (run.scratchXid !== null) order.set(run.scratchXid, run.commitOrder ?? 0);
    }
    const all = await readAllChanges(c, order);
    const byXid = new Map<number, RowChange[]>();
    for (const ch of all) {
      const list = byXid.get(ch.xid);
      if (list) list.push(ch);
      else byXid.set(ch.xid, [ch]);
    }
    for (const run of runs.values()) if (run.committed && run.changes === null) run.changes = byXid.get(run.scratchXid ?? -1) ?? [];
    return all;
  } finally {
    await c.end();
  }
}

/** Recorded changes of the units that ran, in recorded commit order, then seq. */
function chain(rec: Recording, runs: Map<number, UnitRun>): RowChange[] {
  const ran = rec.units.filter((u) => runs.get(u.index)?.committed);
  ran.sort((a, b) => (a.commitUs ?? a.xid) - (b.commitUs ?? b.xid) || a.xid - b.xid);
  return ran.flatMap((u) => u.changes);
}

/** The report without timings, final state and checks; a stopped run compares only the transactions it reached. */
function buildReport(
  mode: "replay" | "retro",
  o: RetroOptions,
  rec: Recording,
  runs: Map<number, UnitRun>,
  scratch: Scratch,
  keep: boolean,
  partial: boolean,
): ReplayReport {
  const unitOf = new Map<string, number>();
  for (const u of rec.units) for (const inv of u.invocations) unitOf.set(inv.id, u.index);
  const reached = (inv: RecordedInvocation) => {
    const run = runs.get(unitOf.get(inv.id)!);
    return run !== undefined && (run.committed || (run.failure !== undefined && !run.failure.startsWith("rolled back: the run stopped")));
  };
  const compared = partial ? rec.invocations.filter(reached) : rec.invocations;
  const results: InvocationResult[] = compared.map((inv) => compareInvocation(inv, runs.get(unitOf.get(inv.id)!), rec.tables));
  const counts = Object.fromEntries(OUTCOMES.map((k) => [k, 0])) as Record<Outcome, number>;
  for (const r of results) counts[r.outcome]++;
  const changed = results.filter((r) => r.outcome !== "same");
  return {
    mode,
    order: o.order ?? "snapshot",
    source: databaseOf(o.url),
    scratch: { database: scratch.name, url: scratch.url, kept: keep || !scratch.created },
    trace: {
      invocations: rec.invocations.length,
      transactions: rec.units.filter((u) => u.kind === "trace").length,
      external: rec.units.filter((u) => u.kind === "external").length,
      first: rec.invocations[0]?.startedAt.toISOString() ?? null,
      last: rec.invocations[rec.invocations.length - 1]?.startedAt.toISOString() ?? null,
      readCommitted: rec.invocations.filter((i) => i.isolation === "read committed").length,
      nested: rec.nested.length,
    },
    timings: { reconstructMs: 0, runMs: 0, compareMs: 0, originalMs: 0 },
    stats: { roundTrips: 0, sessions: 0 },
    counts,
    invocations: o.all ? results : changed,
    notReached: rec.invocations.length - compared.length,
    firstDivergence: changed[0] ?? null,
    finalState: [],
    finalStateRows: 0,
    checks: [],
    stoppedEarly: false,
    warnings: [],
  };
}
