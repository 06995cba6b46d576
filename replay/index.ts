/** Time-travel debugging (issue 8, after R3, PVLDB 16(11)): faithful replay of recorded traces and retroaction with new code. */
export { replayTrace, retroTrace, type ReplayOptions, type RetroOptions } from "./run.ts";
export { ReplayError } from "./record.ts";
export { renderReport } from "./report.ts";
export { canonical } from "./compare.ts";
export { parseSnapshot, visible, intersectSnapshots, type Snapshot } from "./snapshot.ts";
export type { CheckResult, InvocationResult, Outcome, ReplayReport, TableDiff, TraceSelector } from "./types.ts";
