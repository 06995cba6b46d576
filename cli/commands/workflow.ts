/**
 * `txfn workflow start|get|list|cancel|resume|steps` (the workflow client) and `txfn worker`
 * (an executor process). Protocol and tables: workflows/README.md.
 */
import type { Command } from "commander";
import pino from "pino";
import { databaseUrl } from "../../db/connection.ts";
import { TxfnError } from "../../client/index.ts";
import {
  WorkflowClient,
  WorkflowError,
  WorkflowFailedError,
  WorkflowLoadError,
  WorkflowNotRegisteredError,
  WorkflowOptionsError,
  loadProject,
  startExecutor,
  type StepInfo,
  type WorkflowInfo,
  type WorkflowStatus,
} from "../../workflows/index.ts";
import { CliError } from "../errors.ts";

const STATUSES: WorkflowStatus[] = ["PENDING", "SUCCESS", "ERROR", "CANCELLED", "COMPENSATED"];

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CliError(`${what} is not valid JSON: ${(err as Error).message}`, `e.g. --input '{"orderId":"o1"}'`);
  }
}

function positiveInt(text: string, what: string, min = 1): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new CliError(`${what} must be an integer ≥ ${min}, got ${text}`);
  return n;
}

/** ISO-8601 time, or a duration back from now: 30s, 10m, 2h, 1d. */
function parseSince(text: string): Date {
  const m = /^(\d+)(s|m|h|d)$/.exec(text);
  if (m) return new Date(Date.now() - Number(m[1]) * { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[m[2] as "s" | "m" | "h" | "d"]);
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new CliError(`--since: cannot read ${JSON.stringify(text)} as a time`, "use ISO-8601 (2024-05-01T12:00:00Z) or 10m, 2h, 1d");
  return new Date(t);
}

/** Runs `body` with a client, turning workflow and txfn errors into CLI errors. */
async function withClient<T>(body: (c: WorkflowClient) => Promise<T>): Promise<T> {
  const client = new WorkflowClient({ databaseUrl: await databaseUrl(), poolSize: 2, applicationName: "txfn-cli" });
  try {
    return await body(client);
  } catch (err) {
    if (err instanceof WorkflowFailedError) throw err;
    if (err instanceof WorkflowNotRegisteredError) {
      throw new CliError(
        err.message,
        `start an executor that has it (txfn worker <dir>), or queue it for one not up yet: txfn workflow start ${err.workflowName} --allow-unregistered …`,
      );
    }
    if (err instanceof WorkflowError || err instanceof WorkflowOptionsError || err instanceof TxfnError) throw new CliError(err.message);
    throw err;
  } finally {
    await client.close();
  }
}

function describe(w: WorkflowInfo): string {
  const lines = [
    `${w.id}  ${w.name}  ${w.status}${w.parkReason ? ` (parked: ${w.parkReason})` : ""}`,
    `  created ${w.createdAt.toISOString()}${w.endedAt ? `, ended ${w.endedAt.toISOString()}` : ""}; attempts ${w.attempts}; bundle v${w.bundleVersion ?? "?"}; code ${w.codeHash?.slice(0, 12) ?? "?"}; executor ${w.executorId ?? "-"}`,
    `  input:  ${JSON.stringify(w.input)}`,
  ];
  if (w.parentId) lines.push(`  parent: ${w.parentId}`);
  if (w.status === "SUCCESS") lines.push(`  output: ${w.output === undefined ? "(none)" : JSON.stringify(w.output)}`);
  if (w.error) lines.push(`  error:  ${w.error.name}: ${w.error.message}`);
  return lines.join("\n");
}

function stepLine(s: StepInfo): string {
  const what =
    s.status !== "ok"
      ? `error ${s.error?.name}: ${s.error?.message}`
      : s.kind === "sleep"
        ? `until ${new Date(s.output as number).toISOString()}`
        : s.output === undefined
          ? "ok"
          : `ok ${JSON.stringify(s.output)}`;
  const extra = [
    s.invocationId ? `invocation ${s.invocationId}` : "",
    s.attempts && s.attempts > 1 ? `${s.attempts} attempts` : "",
    s.compensates !== null ? `compensates step ${s.compensates}` : "",
  ].filter(Boolean);
  return `${String(s.step).padStart(4)}  ${s.kind.padEnd(11)}  ${s.name}  ${what}${extra.length ? `  (${extra.join(", ")})` : ""}`;
}

function printFailure(err: WorkflowFailedError): void {
  console.error(`workflow ${err.workflowId} ended ${err.status}${err.parkReason ? ` (parked: ${err.parkReason})` : ""}`);
  // The recorded error without stacks (`txfn workflow get <id> --json` has them).
  if (err.failure) console.error(JSON.stringify(err.failure, (k, v) => (k === "stack" ? undefined : v), 2));
  process.exitCode = 1;
}

export function registerWorkflowCommands(program: Command): void {
  const wf = program
    .command("workflow")
    .description("durable workflows: start one (an executor, `txfn worker`, runs it), inspect, cancel, resume");

  wf.command("start")
    .description(
      "start a workflow by name, pinned to the active bundle version; the same --id again returns the existing one. " +
        "A name no executor has registered (live, or stopped within the last hour) is refused as unknown, listing the known ones, " +
        "unless --allow-unregistered queues it for a worker not up yet",
    )
    .argument("<name>", "workflow name (as given to workflow(name, body))")
    .option("--input <json>", "input as JSON", "null")
    .option("--id <id>", "workflow id (default: a random UUID); its steps use keys <id>:<step>")
    .option("--allow-unregistered", "queue it even though no executor has registered this name (it stays PENDING until a `txfn worker` that has it starts)")
    .option("--wait", "wait until it ends and print its output (exit 1 unless SUCCESS); without --timeout it waits as long as it takes")
    .option("--timeout <ms>", "with --wait: give up waiting after this many ms (exit 1; the workflow goes on)")
    .action(async (name: string, opts: { input: string; id?: string; wait?: boolean; timeout?: string; allowUnregistered?: boolean }) => {
      const input = parseJson(opts.input, "--input");
      const timeout = opts.timeout === undefined ? undefined : positiveInt(opts.timeout, "--timeout");
      if (timeout !== undefined && !opts.wait) throw new CliError("--timeout only applies with --wait");
      await withClient(async (c) => {
        const h = await c.start(name, input, { ...(opts.id !== undefined ? { id: opts.id } : {}), ...(opts.allowUnregistered ? { allowUnregistered: true } : {}) });
        if (opts.wait && !(await c.registeredWorkflows()).some((w) => w.name === name && w.live)) {
          console.error(`txfn: no live executor has workflow ${JSON.stringify(name)} now; waiting for one to run ${h.workflowId}${timeout === undefined ? " (no --timeout: Ctrl-C stops waiting, the workflow stays queued)" : ""}`);
        }
        if (!opts.wait) return console.log(h.workflowId);
        try {
          const out = await h.result(timeout !== undefined ? { timeoutMs: timeout } : {});
          console.log(out === undefined ? "" : JSON.stringify(out, null, 2));
        } catch (err) {
          if (err instanceof WorkflowFailedError) return printFailure(err);
          throw err;
        }
      });
    });

  wf.command("get")
    .description("show a workflow: status, input, output or error, pinned bundle version and code hash")
    .argument("<id>")
    .option("--json", "print JSON")
    .action(async (id: string, opts: { json?: boolean }) => {
      const w = await withClient((c) => c.get(id));
      console.log(opts.json ? JSON.stringify(w, null, 2) : describe(w));
    });

  wf.command("list")
    .description("list workflows, newest first")
    .option("--status <status>", `only this status (${STATUSES.join(", ")})`)
    .option("--name <name>", "only this workflow name")
    .option("--since <time>", "created at or after (ISO-8601, or 10m, 2h, 1d)")
    .option("--limit <n>", "at most this many", "100")
    .option("--json", "print JSON")
    .action(async (opts: { status?: string; name?: string; since?: string; limit: string; json?: boolean }) => {
      const status = opts.status?.toUpperCase();
      if (status !== undefined && !STATUSES.includes(status as WorkflowStatus)) throw new CliError(`--status must be one of ${STATUSES.join(", ")}`);
      const rows = await withClient((c) =>
        c.list({
          ...(status ? { status: status as WorkflowStatus } : {}),
          ...(opts.name ? { name: opts.name } : {}),
          ...(opts.since ? { since: parseSince(opts.since) } : {}),
          limit: positiveInt(opts.limit, "--limit"),
        }),
      );
      if (opts.json) return console.log(JSON.stringify(rows, null, 2));
      if (rows.length === 0) return console.log("no workflows");
      for (const w of rows) console.log(`${w.createdAt.toISOString()}  ${w.status.padEnd(11)}  ${w.name}  ${w.id}${w.parkReason ? `  (parked: ${w.parkReason})` : ""}`);
    });

  wf.command("steps")
    .description("the recorded steps of a workflow, in order (what a recovery replays)")
    .argument("<id>")
    .option("--json", "print JSON")
    .action(async (id: string, opts: { json?: boolean }) => {
      const steps = await withClient((c) => c.steps(id));
      if (opts.json) return console.log(JSON.stringify(steps, null, 2));
      if (steps.length === 0) return console.log("no steps recorded");
      for (const s of steps) console.log(stepLine(s));
    });

  wf.command("cancel")
    .description("cancel a PENDING workflow and its pending children: it stops at its next step boundary; no compensation runs")
    .argument("<id>")
    .action(async (id: string) => {
      const w = await withClient((c) => c.cancel(id));
      console.log(describe(w));
    });

  wf.command("resume")
    .description("continue a CANCELLED workflow, or one parked as ERROR (code changed, poison, non-determinism), from its last recorded step")
    .argument("<id>")
    .option("--new-code", "accept the code the next executor has, although it differs from the code the workflow started with")
    .action(async (id: string, opts: { newCode?: boolean }) => {
      const w = await withClient((c) => c.resume(id, { newCode: opts.newCode === true }));
      console.log(describe(w));
    });

  program
    .command("worker")
    .description(
      "run a workflow executor: loads <dir>/workflows/*.ts and the project's functions (anywhere: `import … from \"txfn\"` " +
        "resolves to this txfn), registers their names (what `workflow start` accepts), recovers PENDING workflows, " +
        "claims new ones, and runs them to completion (logs JSON lines; one warning per name of PENDING workflows no executor runs; " +
        "SIGINT/SIGTERM stop it cleanly)",
    )
    .argument("[dir]", "function project with a workflows/ folder", "functions")
    .option("--executor-id <id>", "stable executor id: a restart with the same id recovers its workflows at once (default: host:pid:random)")
    .option("--lease-ms <ms>", "lease: others take over this executor's workflows this long after its last heartbeat", "10000")
    .option("--concurrency <n>", "workflows run at once", "100")
    .option("--max-recovery-attempts <n>", "recoveries without progress before a workflow is parked as poison", "10")
    .option("--poll-ms <ms>", "look for new workflows at least this often", "1000")
    .option("--log-level <level>", "pino level: debug, info, warn, error", "info")
    .action(async (dir: string, opts: { executorId?: string; leaseMs: string; concurrency: string; maxRecoveryAttempts: string; pollMs: string; logLevel: string }) => {
      const logger = pino({ level: opts.logLevel, base: { pid: process.pid } });
      let project;
      try {
        project = await loadProject(dir);
      } catch (err) {
        if (err instanceof WorkflowOptionsError) throw new CliError(err.message);
        if (err instanceof WorkflowLoadError) throw new CliError(err.message);
        throw err;
      }
      const executor = await startExecutor({
        databaseUrl: await databaseUrl(),
        workflows: project,
        ...(opts.executorId !== undefined ? { executorId: opts.executorId } : {}),
        leaseMs: positiveInt(opts.leaseMs, "--lease-ms", 200),
        maxConcurrent: positiveInt(opts.concurrency, "--concurrency"),
        maxRecoveryAttempts: positiveInt(opts.maxRecoveryAttempts, "--max-recovery-attempts"),
        pollMs: positiveInt(opts.pollMs, "--poll-ms", 10),
        applicationName: "txfn-worker",
        logger,
      });
      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          logger.info({ signal }, "stopping");
          process.off("SIGINT", onInt);
          process.off("SIGTERM", onTerm);
          resolve();
        };
        const onInt = () => stop("SIGINT");
        const onTerm = () => stop("SIGTERM");
        process.on("SIGINT", onInt);
        process.on("SIGTERM", onTerm);
      });
      await executor.stop();
    });
}
