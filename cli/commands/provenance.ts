/**
 * `txfn history <table> <key>`, `txfn audit [--follow] …`, `txfn prune --before <time>`, and
 * `txfn provenance status|sync|config|reads|hold|release` (provenance/).
 */
import type { Command } from "commander";
import { databaseUrl } from "../../db/connection.ts";
import {
  OP_NAMES,
  ProvenanceError,
  configure,
  diffRows,
  followChanges,
  invocationReads,
  listHolds,
  parseCursor,
  provenanceStatus,
  prune,
  recentChanges,
  releaseHold,
  rowHistory,
  setHold,
  syncCapture,
  type CaptureTriggerStatus,
  type Change,
  type ColumnDiff,
  type InvocationReads,
  type ProvenanceConfig,
} from "../../provenance/index.ts";
import { CliError, StdoutClosedError } from "../errors.ts";

/** ISO-8601 time, or a duration back from now (forward with `ahead`): 30s, 10m, 2h, 7d. */
export function parseTime(text: string, option: string, ahead = false): Date {
  const m = /^(\d+)(s|m|h|d)$/.exec(text);
  if (m) {
    const unit = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[m[2] as "s" | "m" | "h" | "d"];
    return new Date(Date.now() + (ahead ? 1 : -1) * Number(m[1]) * unit);
  }
  const t = Date.parse(text);
  if (Number.isNaN(t)) {
    throw new CliError(`${option}: cannot read ${JSON.stringify(text)} as a time`, `use ISO-8601 (2024-05-01T12:00:00Z) or a duration ${ahead ? "from now" : "ago"}: 30s, 10m, 2h, 7d`);
  }
  return new Date(t);
}

function positiveInt(text: string, option: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new CliError(`${option} must be a positive integer, got ${text}`);
  return n;
}

/** Runs `body`, turning ProvenanceError into a CLI error (message + hint). */
async function explained<T>(body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (err) {
    if (err instanceof ProvenanceError) throw new CliError(err.message, err.hint);
    const code = (err as { code?: string }).code;
    if (code === "42P01" || code === "3F000") throw new CliError("provenance is not installed in this database", "txfn deploy <dir> installs it");
    throw err;
  }
}

const show = (v: unknown) => (v === undefined ? "(none)" : JSON.stringify(v));

/** What made a change: invocation/function/version/workflow or "outside txfn", role, application. */
export function madeBy(ch: Change): string {
  const parts: string[] = [];
  if (ch.invocationId) {
    let s = `invocation ${ch.invocationId} ${ch.function ?? "?"} v${ch.version ?? "?"}`;
    if (ch.workflowId) s += ` workflow ${ch.workflowId}${ch.workflowStep !== null ? `#${ch.workflowStep}` : ""}`;
    parts.push(s);
  } else {
    parts.push(ch.claimedInvocationId ? `outside txfn (claims invocation ${ch.claimedInvocationId}, which did not run in this transaction)` : "outside txfn");
  }
  parts.push(`role ${ch.role}`);
  if (ch.applicationName) parts.push(`app ${ch.applicationName}`);
  return parts.join(", ");
}

function diffText(d: ColumnDiff[], op: Change["op"]): string {
  if (op === "U") return d.map((x) => `${x.column}: ${show(x.before)} → ${show(x.after)}`).join(", ");
  return d.map((x) => `${x.column}: ${show(op === "I" ? x.after : x.before)}`).join(", ");
}

/** One line per change for `txfn audit`. */
export function changeLine(ch: Change): string {
  const when = (ch.committedAt ?? ch.txTime).toISOString();
  const what = diffText(diffRows(ch.oldRow, ch.newRow), ch.op);
  return `${when}  ${OP_NAMES[ch.op].padEnd(8)} ${ch.table} ${JSON.stringify(ch.key)}  ${what}  — ${madeBy(ch)}  (xid ${ch.xid}.${ch.seq})`;
}

/**
 * Writes to stdout, waiting when the pipe is full. @throws StdoutClosedError once the reader has
 * gone (EPIPE: `txfn history … | head`), which ends the command quietly with exit 0; CliError for
 * other write errors.
 */
function out(line: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const gone = (err: NodeJS.ErrnoException) => reject(err.code === "EPIPE" ? new StdoutClosedError() : new CliError(`cannot write to stdout: ${err.message}`));
    process.stdout.once("error", gone);
    const done = () => {
      process.stdout.removeListener("error", gone);
      resolve();
    };
    if (process.stdout.write(line + "\n")) done();
    else process.stdout.once("drain", done);
  });
}

/** Which row trigger captures: C (txfn_capture) or PL/pgSQL, on how many tables. */
export function captureTriggerText(t: CaptureTriggerStatus): string {
  const ext = t.extension !== null ? `txfn_capture ${t.extension}` : null;
  const noExt = "the txfn_capture extension is not installed in this database: the same rows at about 3x the cost per change";
  if (t.c > 0 && t.plpgsql > 0) return `MIXED: C on ${t.c} table(s), PL/pgSQL on ${t.plpgsql} (txfn provenance sync makes them one)`;
  if (t.c > 0) return `C (${ext ?? "txfn_capture"}) on ${t.c} table(s)`;
  if (t.plpgsql > 0) {
    return ext !== null ? `PL/pgSQL on ${t.plpgsql} table(s), although ${ext} is installed (txfn provenance sync switches to it)` : `PL/pgSQL on ${t.plpgsql} table(s) (${noExt})`;
  }
  return ext !== null ? `C (${ext}), no table captured yet` : `PL/pgSQL (${noExt}), no table captured yet`;
}

interface AuditFlags {
  follow?: boolean;
  table?: string;
  role?: string;
  outsideFunctions?: boolean;
  json?: boolean;
  since?: string;
  limit: string;
  cursor?: string;
  pollMs?: string;
}

async function audit(flags: AuditFlags): Promise<void> {
  const filter = {
    ...(flags.table !== undefined ? { table: flags.table } : {}),
    ...(flags.role !== undefined ? { role: flags.role } : {}),
    ...(flags.outsideFunctions ? { outsideFunctions: true } : {}),
  };
  const url = await databaseUrl();
  if (!flags.follow) {
    if (flags.cursor !== undefined) throw new CliError("--cursor needs --follow");
    const changes = await explained(() =>
      recentChanges(url, { ...filter, limit: positiveInt(flags.limit, "--limit"), ...(flags.since ? { since: parseTime(flags.since, "--since") } : {}) }),
    );
    if (flags.json) return out(JSON.stringify(changes, null, 2));
    if (changes.length === 0) return out("no changes");
    for (const ch of changes) await out(changeLine(ch));
    return;
  }
  if (flags.since !== undefined) throw new CliError("--since does not apply to --follow", "use --cursor to resume where a follower stopped");
  const cursor = flags.cursor !== undefined ? await explained(async () => parseCursor(flags.cursor!)) : undefined;
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    const last = await explained(() =>
      followChanges(
        url,
        (ch, cur) => out(flags.json ? JSON.stringify({ ...ch, cursor: cur }) : changeLine(ch)),
        {
          ...filter,
          ...(cursor ? { cursor } : {}),
          ...(flags.pollMs !== undefined ? { pollMs: positiveInt(flags.pollMs, "--poll-ms") } : {}),
          signal: controller.signal,
          onReconnect: (err, attempt) => console.error(`txfn audit: connection lost (${err.message}); reconnecting (attempt ${attempt})`),
        },
      ),
    );
    console.error(`cursor: ${last}`);
  } finally {
    process.removeListener("SIGINT", stop);
    process.removeListener("SIGTERM", stop);
  }
}

/** Text form of `txfn provenance reads`: a header, then one line per statement in the order it ran. */
export function readsText(r: InvocationReads): string[] {
  const head = `invocation ${r.invocationId} ${r.function} v${r.version} (${r.status}), xid ${r.xid}: ${r.reads.length} read(s)`;
  if (r.reads.length === 0) {
    const why = r.status === "error" ? "an application error's reads are rolled back with its body"
      : r.captureReads ? "it ran no ctx.query/ctx.execute, or ran before read provenance was turned on"
      : "read provenance is off (txfn provenance config --reads on)";
    return [`${head} — ${why}`];
  }
  const lines = [head];
  for (const x of r.reads) {
    const rows = x.rowCount === null ? "" : `${x.rowCount} row(s)  `;
    const params = x.params !== null && x.params.length > 0 ? `  ${JSON.stringify(x.params)}` : "";
    lines.push(`  #${String(x.seq).padEnd(4)} ${rows}${x.sql.replace(/\s+/g, " ").trim()}${params}`);
  }
  return lines;
}

function parseBool(text: string, option: string): boolean {
  if (/^(on|true|yes|1)$/i.test(text)) return true;
  if (/^(off|false|no|0)$/i.test(text)) return false;
  throw new CliError(`${option} must be on or off, got ${text}`);
}

export function registerProvenanceCommands(program: Command): void {
  program
    .command("history")
    .description(
      "a row's whole life, oldest first: every captured change with the invocation, function, bundle version, workflow, " +
        "time and role that made it, and a column-by-column diff",
    )
    .argument("<table>", "schema.table (or table when unambiguous)")
    .argument("<key>", `primary key as JSON ('{"sku":"sku-001"}'), or the bare value for a one-column key (sku-001)`)
    .option("--json", "print JSON")
    .action(async (table: string, key: string, opts: { json?: boolean }) => {
      const h = await explained(async () => rowHistory(await databaseUrl(), table, key));
      if (opts.json) return out(JSON.stringify(h, null, 2));
      const keyText = JSON.stringify(h.key);
      if (h.versions.length === 0) return out(`${h.table} ${keyText}: no captured changes`);
      await out(`${h.table} ${keyText}: ${h.versions.length} change(s)${h.formerKeys.length ? `; earlier key(s) ${h.formerKeys.map((k) => JSON.stringify(k)).join(", ")}` : ""}`);
      for (const v of h.versions) {
        const ch = v.change;
        await out(`#${v.version}  ${OP_NAMES[ch.op].padEnd(8)} ${(ch.committedAt ?? ch.txTime).toISOString()}  ${madeBy(ch)}  (xid ${ch.xid}.${ch.seq})`);
        if (ch.oldKey && ch.op === "U") await out(`      key: ${JSON.stringify(ch.oldKey)} → ${JSON.stringify(ch.key)}`);
        for (const d of v.diff) {
          const text = ch.op === "U" ? `${show(d.before)} → ${show(d.after)}` : show(ch.op === "I" ? d.after : d.before);
          await out(`      ${d.column}: ${text}`);
        }
      }
    });

  program
    .command("audit")
    .description(
      "recent row changes (oldest of them first); --follow streams changes live as they commit, each exactly once, " +
        "also across reconnects; --outside-functions lists writes made outside txfn (psql, other applications): the security monitor",
    )
    .option("--follow", "stream changes as their transactions commit (Ctrl-C stops and prints the resume cursor on stderr)")
    .option("--table <table>", "only this table (schema.table, or table when unambiguous)")
    .option("--role <role>", "only changes made by this role")
    .option("--outside-functions", "only changes made outside txfn invocations")
    .option("--json", "print JSON (with --follow: one object per line, each with the cursor that resumes after it)")
    .option("--since <time>", "only changes of transactions started at or after this time (ISO-8601, or 10m, 2h, 7d ago)")
    .option("--limit <n>", "at most this many recent changes", "100")
    .option("--cursor <cursor>", "with --follow: resume right after this cursor (as printed by an earlier follow)")
    .option("--poll-ms <ms>", "with --follow: pause between polls when caught up (default 200)")
    .action((flags: AuditFlags) => audit(flags));

  program
    .command("prune")
    .description(
      "remove provenance of transactions started before <time>; never what the retention window " +
        "(txfn provenance config --retention) or an active hold (an unfinished replay) still needs",
    )
    .requiredOption("--before <time>", "ISO-8601 time, or a duration ago: 30d, 12h")
    .option("--dry-run", "count what would be removed")
    .option("--batch <n>", "rows per delete transaction", "10000")
    .action(async (opts: { before: string; dryRun?: boolean; batch: string }) => {
      const before = parseTime(opts.before, "--before");
      if (before.getTime() > Date.now()) throw new CliError(`--before ${opts.before} is in the future`);
      const r = await explained(async () =>
        prune(await databaseUrl(), { before, batchSize: positiveInt(opts.batch, "--batch"), ...(opts.dryRun ? { dryRun: true } : {}) }),
      );
      const kept = r.limitedBy.length ? `; kept by ${r.limitedBy.join(", ")}` : "";
      const xid = r.keepFromXid ? ` and xid < ${r.keepFromXid}` : "";
      await out(
        `${opts.dryRun ? "would remove" : "removed"} ${r.deleted} change(s) and ${r.deletedReads} read record(s) of transactions started before ${r.cutoff.toISOString()}${xid}${kept}`,
      );
    });

  const prov = program.command("provenance").description("capture settings, status and holds (see txfn history / audit / prune)");

  prov
    .command("status")
    .description("settings, captured tables with their keys, the DDL event trigger, size")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }) => {
      const s = await explained(async () => provenanceStatus(await databaseUrl()));
      const holds = await listHolds(await databaseUrl());
      if (opts.json) return out(JSON.stringify({ ...s, holds }, null, 2));
      const c = s.config;
      await out(`capture ${c.enabled ? "on" : "OFF"}; include ${c.include.join(" ")}; exclude ${c.exclude.join(" ") || "(none)"}; TRUNCATE ${c.truncate}; ` +
        `retention ${c.retention ?? "none"}; read provenance ${c.captureReads ? "on" : "off"}`);
      await out(`DDL event trigger: ${s.eventTrigger ? "on (tables created or altered anywhere are kept in step)" : "MISSING (capture follows new tables only at deploy / txfn provenance sync)"}`);
      await out(`row trigger: ${captureTriggerText(s.captureTrigger)}`);
      await out(`${s.changes} change(s) (estimate), ${(s.bytes / 1048576).toFixed(1)} MiB with indexes`);
      for (const t of s.tables) {
        const state = t.droppedAt ? `dropped ${t.droppedAt.toISOString()}` : t.captured ? `captured since ${t.capturedSince?.toISOString()}` : "not captured";
        await out(`  ${t.table.padEnd(32)} key (${t.keyColumns.join(", ") || "whole row: no primary key"})  ${state}`);
      }
      for (const h of holds) {
        await out(`  hold ${h.name}: from ${h.fromXid ? `xid ${h.fromXid}` : ""}${h.fromXid && h.fromTime ? " / " : ""}${h.fromTime?.toISOString() ?? ""}` +
          `${h.expiresAt ? `, expires ${h.expiresAt.toISOString()}` : ""}${h.reason ? ` (${h.reason})` : ""}`);
      }
    });

  prov
    .command("sync")
    .description("bring capture in step with the tables now (deploy and the DDL event trigger do this by themselves)")
    .action(async () => {
      const r = await explained(async () => syncCapture(await databaseUrl()));
      for (const w of r.warnings) console.error(`warning: ${w}`);
      for (const t of r.tables) await out(`${t.action.padEnd(9)} ${t.table}  key (${t.keyColumns.join(", ") || "whole row"})`);
    });

  prov
    .command("config")
    .description("change capture settings (only those given) and re-sync capture; prints the settings")
    .option("--enable", "capture on")
    .option("--disable", "capture off: triggers removed from every table")
    .option("--include <globs...>", "tables to capture: globs on schema.table (* and ?; a bare name is a schema); default *")
    .option("--exclude <globs...>", "tables never captured (use --exclude '' to clear)")
    .option("--truncate <mode>", "TRUNCATE of a captured table: record (every removed row) or refuse")
    .option("--retention <interval>", "prune keeps changes younger than this (PostgreSQL interval: '30 days'), or none")
    .option("--reads <on|off>", "read provenance: SQL, params and row count of each query an invocation runs")
    .action(async (opts: { enable?: boolean; disable?: boolean; include?: string[]; exclude?: string[]; truncate?: string; retention?: string; reads?: string }) => {
      if (opts.enable && opts.disable) throw new CliError("--enable and --disable together");
      const change: Partial<ProvenanceConfig> = {};
      if (opts.enable) change.enabled = true;
      if (opts.disable) change.enabled = false;
      if (opts.include) change.include = opts.include.filter((g) => g !== "");
      if (opts.exclude) change.exclude = opts.exclude.filter((g) => g !== "");
      if (opts.truncate !== undefined) change.truncate = opts.truncate as ProvenanceConfig["truncate"];
      if (opts.retention !== undefined) change.retention = opts.retention === "none" ? null : opts.retention;
      if (opts.reads !== undefined) change.captureReads = parseBool(opts.reads, "--reads");
      const r = await explained(async () => configure(await databaseUrl(), change));
      for (const w of r.warnings) console.error(`warning: ${w}`);
      await out(JSON.stringify(r.config));
      for (const t of r.tables) if (t.action !== "unchanged") await out(`${t.action.padEnd(9)} ${t.table}`);
    });

  prov
    .command("reads")
    .description(
      "read provenance of one invocation: the SQL text, parameters and row count of each ctx.query/ctx.execute it ran, " +
        "in order (recorded while txfn provenance config --reads is on)",
    )
    .requiredOption("--invocation <id>", "invocation id (the invocationId of its envelope)")
    .option("--json", "print JSON")
    .addHelpText(
      "after",
      "\nText: a header, then per statement `#<seq> <n> row(s)  <sql>  <params as JSON>` (seq: the transaction's sequence,\n" +
        "shared with captured writes, so `txfn audit` changes of the same xid interleave with it).\n" +
        "JSON: {\"invocationId\": \"42\", \"function\": \"getItem\", \"version\": 3, \"status\": \"ok\"|\"error\", \"xid\": \"1234\",\n" +
        "       \"captureReads\": true, \"reads\": [{\"seq\": 1, \"sql\": \"SELECT …\", \"params\": [\"a\", \"9007199254740993\"], \"rowCount\": 1}]}\n" +
        "params are encoded as outputs are (bigint → decimal string, Date → ISO-8601, bytea → \"\\\\x…\"); rowCount is rows returned,\n" +
        "else rows affected, null when the statement reported neither.",
    )
    .action(async (opts: { invocation: string; json?: boolean }) => {
      const r = await explained(async () => invocationReads(await databaseUrl(), opts.invocation));
      if (opts.json) return out(JSON.stringify(r, null, 2));
      for (const line of readsText(r)) await out(line);
    });

  prov
    .command("hold")
    .description("keep provenance from a point on, whatever prune is asked (a replay holds what it needs while it runs)")
    .argument("<name>", "hold name (setting it again moves the hold)")
    .option("--from-xid <xid>", "keep changes of transactions with xid >= this (e.g. pg_snapshot_xmin of a trace's first snapshot)")
    .option("--from-time <time>", "keep changes of transactions started at or after this time")
    .option("--expires <time>", "the hold lapses at this time (ISO-8601, or a duration from now: 2h, 7d)")
    .option("--reason <text>", "why (shown by status)")
    .action(async (name: string, opts: { fromXid?: string; fromTime?: string; expires?: string; reason?: string }) => {
      await explained(async () =>
        setHold(await databaseUrl(), {
          name,
          ...(opts.fromXid !== undefined ? { fromXid: opts.fromXid } : {}),
          ...(opts.fromTime !== undefined ? { fromTime: parseTime(opts.fromTime, "--from-time") } : {}),
          ...(opts.expires !== undefined ? { expiresAt: parseTime(opts.expires, "--expires", true) } : {}),
          ...(opts.reason !== undefined ? { reason: opts.reason } : {}),
        }),
      );
      await out(`hold ${name} set`);
    });

  prov
    .command("release")
    .description("remove a hold")
    .argument("<name>", "hold name")
    .action(async (name: string) => {
      const had = await explained(async () => releaseHold(await databaseUrl(), name));
      if (!had) throw new CliError(`no hold named ${JSON.stringify(name)}`, "txfn provenance status lists them");
      await out(`hold ${name} released`);
    });
}
