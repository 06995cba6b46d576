/** The readable form of a ReplayReport (`txfn replay` / `txfn retro` without --json). */
import type { InvocationResult, ReplayReport, RunOutcome } from "./types.ts";

const MAX_LISTED = 20;

function outcomeText(o: RunOutcome | null): string {
  if (!o) return "(did not run)";
  if (o.status === "ok") return o.output === undefined ? "ok (no output)" : `ok ${JSON.stringify(o.output)}`;
  const e = o.error as { name?: string; message?: string } | undefined;
  return `error ${e?.name ?? "Error"}: ${e?.message ?? JSON.stringify(o.error)}`;
}

function invocationLines(r: InvocationResult): string[] {
  const lines = [`  #${r.id} ${r.function}: ${r.outcome}${r.notGuaranteed ? " (READ COMMITTED: replay not guaranteed)" : ""}`];
  if (r.reason) lines.push(`      ${r.reason}`);
  if (r.outputChanged && r.replayed) {
    lines.push(`      recorded: ${outcomeText(r.recorded)}`);
    lines.push(`      replayed: ${outcomeText(r.replayed)}`);
  }
  if (r.firstWriteDiff) {
    lines.push(`      write #${r.firstWriteDiff.index + 1} of ${r.writes.recorded} recorded / ${r.writes.replayed} replayed:`);
    lines.push(`        recorded: ${JSON.stringify(r.firstWriteDiff.recorded)}`);
    lines.push(`        replayed: ${JSON.stringify(r.firstWriteDiff.replayed)}`);
  }
  return lines;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** Lines of the report; faithful replays lead with the first divergence, retroaction with the per-outcome counts. */
export function renderReport(r: ReplayReport): string {
  const out: string[] = [];
  const t = r.trace;
  const what = r.mode === "replay" ? `replay (${r.order} order)` : `retroaction with bundle version ${r.retro?.version}${r.retro?.functions ? ` for ${r.retro.functions.join(", ")}` : ""}`;
  out.push(`${what} of ${t.invocations} invocation(s) in ${t.transactions} transaction(s) from ${r.source}` +
    (t.external ? `, ${t.external} other transaction(s) re-applied from provenance` : ""));
  if (t.first) out.push(`trace: ${t.first} … ${t.last}`);
  const counts = Object.entries(r.counts).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(", ");
  out.push(`outcomes: ${counts || "none"}${r.notReached ? `; not reached ${r.notReached}` : ""}`);
  if (r.mode === "replay") {
    if (r.firstDivergence) {
      out.push("FIRST DIVERGENCE:");
      out.push(...invocationLines(r.firstDivergence));
    } else if (r.notReached === 0) {
      out.push("faithful: every output, error and write is the recorded one");
    }
  }
  const listed = r.invocations.filter((x) => x !== r.firstDivergence || r.mode === "retro");
  if (listed.length) {
    out.push(r.mode === "replay" ? "other divergences:" : "changed invocations:");
    for (const x of listed.slice(0, MAX_LISTED)) out.push(...invocationLines(x));
    if (listed.length > MAX_LISTED) out.push(`  … and ${listed.length - MAX_LISTED} more (--json lists all)`);
  }
  if (r.finalState.length) {
    out.push(`final state differs from the record at the trace's end (${r.finalStateRows} row(s) the replay wrote compared):`);
    for (const d of r.finalState) {
      out.push(`  ${d.table}: ${d.count} row(s)`);
      for (const row of d.rows.slice(0, 5)) out.push(`    ${JSON.stringify(row.key)}: recorded ${JSON.stringify(row.recorded)} → now ${JSON.stringify(row.replayed)}`);
    }
  } else if (!r.until) {
    out.push(`final state: the ${r.finalStateRows} row(s) the replay wrote are as recorded at the trace's end`);
  }
  for (const c of r.checks) {
    if (c.ok) out.push(`check passed: ${c.sql}`);
    else if (c.error) out.push(`check FAILED (error): ${c.sql}\n    ${c.error}`);
    else out.push(`check FAILED: ${c.sql} returned ${c.rowCount} row(s), e.g. ${JSON.stringify(c.rows[0])}`);
  }
  for (const w of r.warnings) out.push(`warning: ${w}`);
  const tm = r.timings;
  const ratio = tm.originalMs > 0 ? ` (${(tm.runMs / tm.originalMs).toFixed(2)}× the original ${seconds(tm.originalMs)})` : "";
  const trips = r.stats.roundTrips ? ` (${r.stats.roundTrips} round trips on ${r.stats.sessions} session(s))` : "";
  out.push(`time: reconstruct ${seconds(tm.reconstructMs)}, run ${seconds(tm.runMs)}${ratio}${trips}, compare ${seconds(tm.compareMs)}`);
  if (r.stoppedEarly && !r.until) out.push("stopped early");
  if (r.until) out.push(`the scratch database is just before invocation ${r.until.invocationId}:\n  psql '${r.until.url}'`);
  else out.push(r.scratch.kept ? `scratch database kept: ${r.scratch.database}\n  psql '${r.scratch.url}'` : `scratch database ${r.scratch.database} dropped (--keep keeps it)`);
  return out.join("\n");
}
