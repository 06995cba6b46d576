/** Provenance and audit (issue 5): capture installation, history, audit/follow, prune and holds. Contract: README.md here. */
export { CAPTURE_EXTENSION, EVENT_TRIGGER, captureId, installCapture, type InstallResult, type SyncedTable } from "./install.ts";
export { OP_NAMES, ProvenanceError, diffRows, type Change, type ChangeFilter, type ChangeOp, type ColumnDiff } from "./changes.ts";
export {
  followChanges,
  formatCursor,
  isConnectionLoss,
  parseCursor,
  recentChanges,
  type FollowCursor,
  type FollowOptions,
  type OnChange,
  type RecentOptions,
} from "./audit.ts";
export { changeOrder, parseKey, rowHistory, type RowHistory, type RowVersion } from "./history.ts";
export { invocationReads, type InvocationReads, type ReadRecord } from "./reads.ts";
export { listHolds, prune, releaseHold, setHold, type Hold, type PruneOptions, type PruneResult } from "./prune.ts";
export {
  configure,
  provenanceStatus,
  syncCapture,
  type CaptureTriggerStatus,
  type CapturedTable,
  type ProvenanceConfig,
  type ProvenanceStatus,
} from "./config.ts";
