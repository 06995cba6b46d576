/** `txfn invoke <fn> --input <json> [--key K]`, `txfn invocations [--fn F] [--since T] [--json]`. */
import type { Command } from "commander";
import pg from "pg";
import { TxfnClient, TxfnError, listInvocations } from "../../client/index.ts";
import { isMissingSchema } from "../../client/errors.ts";
import { databaseUrl } from "../../db/connection.ts";
import { CliError, explainConnectionError, notInstalled } from "../errors.ts";

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CliError(`${what} is not valid JSON: ${(err as Error).message}`, `e.g. --input '{"orderId":"o1"}'`);
  }
}

export function registerInvokeCommands(program: Command): void {
  program
    .command("invoke")
    .description(
      "invoke a deployed function once (exactly once per --key): prints the output JSON; for an application error " +
        "prints the recorded error and exits 1. Transient errors are retried with the same key.",
    )
    .argument("<fn>", "function name (its export name, e.g. reserveInventory)")
    .option("--input <json>", "the function's input as JSON; without --input the function is called with null (its input schema, if any, decides whether null is accepted)", "null")
    .option("--key <key>", "idempotency key: calling again with it returns the recorded outcome")
    .option("--timeout <ms>", "statement_timeout for the call in ms")
    .option("--meta", "print the whole result (invocation id, version, replayed, attempts) as JSON")
    .action(async (fn: string, opts: { input: string; key?: string; timeout?: string; meta?: boolean }) => {
      const input = parseJson(opts.input, "--input");
      let timeout: number | undefined;
      if (opts.timeout !== undefined) {
        timeout = Number(opts.timeout);
        if (!Number.isInteger(timeout) || timeout < 0) throw new CliError(`--timeout must be a non-negative integer, got ${opts.timeout}`);
      }
      const client = new TxfnClient({ url: await databaseUrl(), poolSize: 1, applicationName: "txfn-cli" });
      try {
        const r = await client.invoke(fn, input, {
          ...(opts.key !== undefined ? { key: opts.key } : {}),
          ...(timeout !== undefined ? { statementTimeoutMs: timeout } : {}),
        });
        if (opts.meta) console.log(JSON.stringify(r, null, 2));
        else if (r.ok) console.log(r.output === undefined ? "" : JSON.stringify(r.output, null, 2));
        else console.error(JSON.stringify(r.error, null, 2));
        if (!r.ok) process.exitCode = 1;
      } catch (err) {
        if (isMissingSchema(err) || (err instanceof TxfnError && isMissingSchema({ code: err.sqlstate }))) throw notInstalled();
        // A server it cannot reach or log in to is explained by the CLI's handler (cli/main.ts).
        if (err instanceof TxfnError && !explainConnectionError(err, undefined, false)) throw new CliError(err.message, err.hint);
        throw err;
      } finally {
        await client.close();
      }
    });

  program
    .command("invocations")
    .description("list recorded invocations, newest first")
    .option("--fn <name>", "only this function")
    .option("--since <time>", "only those started at or after this time (ISO-8601, or a duration like 10m, 2h, 1d)")
    .option("--limit <n>", "at most this many", "100")
    .option("--json", "print JSON (input, output and error included)")
    .action(async (opts: { fn?: string; since?: string; limit: string; json?: boolean }) => {
      const limit = Number(opts.limit);
      if (!Number.isInteger(limit) || limit <= 0) throw new CliError(`--limit must be a positive integer, got ${opts.limit}`);
      const since = opts.since === undefined ? undefined : parseSince(opts.since);
      const url = await databaseUrl();
      const rows = await listInvocations(url, {
        ...(opts.fn !== undefined ? { fn: opts.fn } : {}),
        ...(since ? { since } : {}),
        limit,
      });
      if (rows.length === 0 && !(await hasInvocationsTable(url))) throw notInstalled();
      if (opts.json) return console.log(JSON.stringify(rows, null, 2));
      if (rows.length === 0) return console.log("no invocations");
      for (const r of rows) {
        const what = r.status === "error" ? `error: ${(r.error as { message?: string } | null)?.message ?? ""}` : r.status;
        console.log(
          `${r.id.padStart(7)}  ${r.startedAt.toISOString()}  ${r.function}  v${r.version ?? "?"}  ${r.idempotencyKey ?? "(no key)"}  ${what}`,
        );
      }
    });
}

/** Whether txfn.invocations exists (listInvocations reads a database without it as having none). */
async function hasInvocationsTable(url: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: url, application_name: "txfn-cli" });
  await c.connect();
  try {
    return (await c.query<{ t: string | null }>("SELECT to_regclass('txfn.invocations')::text AS t")).rows[0]!.t !== null;
  } finally {
    await c.end();
  }
}

/** ISO-8601 time, or a duration back from now: 30s, 10m, 2h, 1d. */
function parseSince(text: string): Date {
  const m = /^(\d+)(s|m|h|d)$/.exec(text);
  if (m) {
    const unit = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[m[2] as "s" | "m" | "h" | "d"];
    return new Date(Date.now() - Number(m[1]) * unit);
  }
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new CliError(`--since: cannot read ${JSON.stringify(text)} as a time`, "use ISO-8601 (2024-05-01T12:00:00Z) or 10m, 2h, 1d");
  return new Date(t);
}
