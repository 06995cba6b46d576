/**
 * `txfn replay` (faithful replay of a recorded trace, or `--until` to stop just before an
 * invocation) and `txfn retro` (retroaction: the same trace with new code) — replay/.
 */
import { Command, Option } from "commander";
import cliProgress from "cli-progress";
import { databaseUrl } from "../../db/connection.ts";
import { BuildError } from "../../bundler/index.ts";
import { DeployError } from "../../client/index.ts";
import { ReplayError, renderReport, replayTrace, retroTrace, type ReplayReport, type TraceSelector } from "../../replay/index.ts";
import { ProvenanceError } from "../../provenance/index.ts";
import { CliError } from "../errors.ts";
import { parseTime } from "./provenance.ts";

interface SelectFlags {
  from?: string;
  to?: string;
  invocations?: string;
  workflows?: string;
  function?: string;
  row?: string;
  until?: string;
  target?: string;
  keep?: boolean;
  check: string[];
  json?: boolean;
  all?: boolean;
  maxConnections?: string;
  progress?: boolean;
}

interface ReplayFlags extends SelectFlags {
  stopAtDivergence?: boolean;
  order: "snapshot" | "commit";
}

interface RetroFlags extends SelectFlags {
  bundle?: string;
  bundleVersion?: string;
  functions?: string;
}

const list = (text: string, option: string): string[] => {
  const items = text.split(",").map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new CliError(`${option} needs at least one value`);
  return items;
};

function ids(text: string, option: string): string[] {
  const items = list(text, option);
  const bad = items.filter((x) => !/^[1-9]\d{0,18}$/.test(x));
  if (bad.length) throw new CliError(`${option}: not an invocation id: ${bad.join(", ")}`, "ids are the numbers txfn invocations prints");
  return items;
}

function positiveInt(text: string, option: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new CliError(`${option} must be a positive integer, got ${text}`);
  return n;
}

/** The trace selector of the flags. @throws CliError for bad values or no selection at all. */
export function selectorOf(f: SelectFlags): TraceSelector {
  const s: TraceSelector = {};
  if (f.from !== undefined) s.from = parseTime(f.from, "--from");
  if (f.to !== undefined) s.to = parseTime(f.to, "--to");
  if (s.from && s.to && s.from > s.to) throw new CliError("--from is after --to");
  if (f.invocations !== undefined) s.invocationIds = ids(f.invocations, "--invocations");
  if (f.workflows !== undefined) s.workflowIds = list(f.workflows, "--workflows");
  if (f.function !== undefined) s.functions = list(f.function, "--function");
  if (f.row !== undefined) {
    const colon = f.row.indexOf(":");
    if (colon <= 0 || colon === f.row.length - 1) throw new CliError(`--row must be <table>:<key>, got ${f.row}`, `e.g. --row shop.inventory:sku-001 or --row 'orders:{"id":7}'`);
    s.row = { table: f.row.slice(0, colon), key: f.row.slice(colon + 1) };
  }
  if (Object.keys(s).length === 0 && f.until === undefined) {
    throw new CliError("select a trace", "--from <time> [--to <time>], --invocations <ids>, --workflows <ids>, --function <names> or --row <table>:<key>");
  }
  return s;
}

/** A progress bar on stderr for long traces on a terminal; a no-op otherwise. */
function progressBar(enabled: boolean): { update: (done: number, total: number) => void; stop: () => void } {
  if (!enabled || !process.stderr.isTTY) return { update: () => {}, stop: () => {} };
  let bar: cliProgress.SingleBar | null = null;
  return {
    update(done, total) {
      if (!bar) {
        if (total < 200) return;
        bar = new cliProgress.SingleBar(
          { stream: process.stderr, format: "replaying [{bar}] {value}/{total} invocations, {eta_formatted} left", hideCursor: true },
          cliProgress.Presets.shades_classic,
        );
        bar.start(total, 0);
      }
      bar.update(done);
    },
    stop: () => bar?.stop(),
  };
}

async function explained<T>(body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (err) {
    if (err instanceof ReplayError || err instanceof ProvenanceError) throw new CliError(err.message, err.hint);
    if (err instanceof BuildError || err instanceof DeployError) throw new CliError(err.message);
    throw err;
  }
}

/** Prints the report; the exit code is 1 when a replay diverged or a check failed. */
function finish(report: ReplayReport, json: boolean | undefined): void {
  process.stdout.write((json ? JSON.stringify(report, null, 2) : renderReport(report)) + "\n");
  const failed = report.checks.some((c) => !c.ok) || (report.mode === "replay" && report.firstDivergence !== null);
  if (failed) process.exitCode = 1;
}

async function withSignal<T>(body: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once("SIGINT", stop);
  try {
    return await body(controller.signal);
  } finally {
    process.removeListener("SIGINT", stop);
  }
}

function common(cmd: Command): Command {
  return cmd
    .option("--from <time>", "trace: invocations started at or after this time (ISO-8601, or 10m, 2h, 7d ago)")
    .option("--to <time>", "trace: invocations started at or before this time")
    .option("--invocations <ids>", "trace: these invocation ids (comma-separated)")
    .option("--workflows <ids>", "trace: every invocation of these workflows (comma-separated ids)")
    .option("--function <names>", "trace: only invocations of these functions (comma-separated)")
    .option("--row <table:key>", "trace: every invocation that wrote this row (key as txfn history takes it)")
    .option("--target <url>", "reconstruct into this existing empty database (never dropped) instead of a new one on the same cluster")
    .option("--keep", "keep the scratch database (its URL is printed)")
    .option("--check <sql>", "an invariant: SQL that must return no rows on the final state (repeatable)", (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option("--all", "list every invocation, not only those whose outcome changed")
    .option("--max-connections <n>", "sessions on the scratch database (default 24)")
    .option("--no-progress", "no progress bar")
    .option("--json", "print the report as JSON");
}

export function registerReplayCommands(program: Command): void {
  common(
    program
      .command("replay")
      .description(
        "replay a recorded trace faithfully in a scratch database (after R3, PVLDB 16(11)): rows reconstructed as they were before " +
          "the trace from provenance, each transaction started with exactly the recorded transactions visible to its snapshot, " +
          "pinned time and seed restored; every output, error and write compared with the record, the first divergence shown " +
          "with both values. --until <id> instead leaves the scratch database just before that invocation and prints its URL. " +
          "Exit code 1 when the replay diverged or a --check failed.",
      ),
  )
    .option("--until <id>", "stop just before this invocation and keep the scratch database (alone: the trace is that invocation)")
    .option("--stop-at-divergence", "stop at the first transaction whose replay differs from the record")
    .addOption(new Option("--order <order>", "snapshot: recorded snapshots decide; commit: one at a time in commit order (shows what snapshots fix)").choices(["snapshot", "commit"]).default("snapshot"))
    .action(async (flags: ReplayFlags) => {
      const selector = selectorOf(flags);
      if (flags.until !== undefined) ids(flags.until, "--until");
      if (flags.until !== undefined && flags.order === "commit") {
        throw new CliError("--until and --order commit cannot be combined: --until stops the snapshot-order schedule", "drop --order commit (snapshot order is the default)");
      }
      const maxConnections = flags.maxConnections !== undefined ? positiveInt(flags.maxConnections, "--max-connections") : undefined;
      const bar = progressBar(flags.progress !== false);
      const report = await explained(() =>
        withSignal(async (signal) =>
          replayTrace({
            url: await databaseUrl(),
            selector,
            order: flags.order,
            checks: flags.check,
            signal,
            onProgress: bar.update,
            ...(flags.until !== undefined ? { until: flags.until } : {}),
            ...(flags.target !== undefined ? { target: flags.target } : {}),
            ...(flags.keep ? { keep: true } : {}),
            ...(flags.all ? { all: true } : {}),
            ...(flags.stopAtDivergence ? { stopAtDivergence: true } : {}),
            ...(maxConnections !== undefined ? { maxConnections } : {}),
          }).finally(() => bar.stop()),
        ),
      );
      finish(report, flags.json);
    });

  common(
    program
      .command("retro")
      .description(
        "retroaction (after R3): run a recorded trace again with new code — --bundle <dir> (built and deployed into the scratch " +
          "database only) or --bundle-version <n> (a deployed version), for every function or only --functions — in the recorded " +
          "snapshot order, originally failed invocations included; reports per invocation same / output changed / writes " +
          "changed / now fails / now succeeds, the final state per table against the record, and each --check. " +
          "Exit code 1 when a check failed.",
      ),
  )
    .option("--bundle <dir>", "function project with the new code")
    .option("--bundle-version <n>", "or a bundle version deployed in the source database")
    .option("--functions <names>", "only these functions run the new code (comma-separated)")
    .action(async (flags: RetroFlags) => {
      const selector = selectorOf(flags);
      const codeHint = "--bundle <dir> builds a function project; --bundle-version <n> runs a version deployed in the source (txfn versions lists them)";
      if (flags.bundle !== undefined && flags.bundleVersion !== undefined) {
        throw new CliError("--bundle and --bundle-version are mutually exclusive: give one of them", codeHint);
      }
      if (flags.bundle === undefined && flags.bundleVersion === undefined) throw new CliError("give the new code: --bundle <dir> or --bundle-version <n>", codeHint);
      const version = flags.bundleVersion !== undefined ? positiveInt(flags.bundleVersion, "--bundle-version") : undefined;
      const functions = flags.functions !== undefined ? list(flags.functions, "--functions") : undefined;
      const maxConnections = flags.maxConnections !== undefined ? positiveInt(flags.maxConnections, "--max-connections") : undefined;
      const bar = progressBar(flags.progress !== false);
      const report = await explained(() =>
        withSignal(async (signal) =>
          retroTrace({
            url: await databaseUrl(),
            selector,
            checks: flags.check,
            signal,
            onProgress: bar.update,
            ...(flags.bundle !== undefined ? { bundleDir: flags.bundle } : {}),
            ...(version !== undefined ? { version } : {}),
            ...(functions !== undefined ? { functions } : {}),
            ...(flags.target !== undefined ? { target: flags.target } : {}),
            ...(flags.keep ? { keep: true } : {}),
            ...(flags.all ? { all: true } : {}),
            ...(maxConnections !== undefined ? { maxConnections } : {}),
          }).finally(() => bar.stop()),
        ),
      );
      finish(report, flags.json);
    });
}
