/** The `txfn` command line: one registration per command group (cli/commands/*.ts). */
import { Command, CommanderError } from "commander";
import { registerDbCommands } from "./commands/db.ts";
import { registerDeployCommands } from "./commands/deploy.ts";
import { registerInvokeCommands } from "./commands/invoke.ts";
import { registerServeCommands } from "./commands/serve.ts";
import { registerTokenCommands } from "./commands/token.ts";
import { registerProvenanceCommands } from "./commands/provenance.ts";
import { registerWorkflowCommands } from "./commands/workflow.ts";
import { registerReplayCommands } from "./commands/replay.ts";
import { CliError, StdoutClosedError, explainConnectionError } from "./errors.ts";
import { ClusterError } from "../db/errors.ts";
import { DatabaseUrlError, describeUrl, lastDatabaseUrl } from "../db/connection.ts";

export function buildProgram(): Command {
  const program = new Command()
    .name("txfn")
    .description(
      "txfn: transaction functions written in TypeScript, run inside PostgreSQL exactly once, " +
        "with provenance for every change and faithful replay. Commands other than `db` use " +
        "DATABASE_URL when it is set, else the private cluster (started when needed).",
    )
    .version("0.1.0")
    .showHelpAfterError()
    .exitOverride();
  registerDbCommands(program);
  registerDeployCommands(program);
  registerInvokeCommands(program);
  registerServeCommands(program);
  registerTokenCommands(program);
  registerWorkflowCommands(program);
  registerProvenanceCommands(program);
  registerReplayCommands(program);
  return program;
}

/** One line (and a hint) on stderr. */
function report(message: string, hint?: string): void {
  // The runtime's own errors already start with "txfn: " (they are read in psql too): one prefix is enough.
  console.error(`txfn: ${message.replace(/^(txfn: )+/, "")}${hint ? `\nhint: ${hint}` : ""}`);
}

export async function main(argv: string[]): Promise<void> {
  // A closed stdout (`txfn history … | head`) ends the command quietly, exit 0, as git and coreutils do.
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code !== "EPIPE") throw err;
    process.exit(0);
  });
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode;
      return;
    }
    if (err instanceof StdoutClosedError) {
      process.exitCode = 0;
      return;
    }
    if (err instanceof CliError) {
      report(err.message, err.hint);
      process.exitCode = err.exitCode;
      return;
    }
    if (err instanceof ClusterError || err instanceof DatabaseUrlError) {
      report(err.message, err instanceof DatabaseUrlError ? err.hint : undefined);
      process.exitCode = 1;
      return;
    }
    const url = lastDatabaseUrl() ?? process.env.DATABASE_URL;
    const connection = explainConnectionError(err, url ? describeUrl(url) : undefined, Boolean(process.env.DATABASE_URL));
    if (connection) {
      report(connection.message, connection.hint);
      process.exitCode = 1;
      return;
    }
    report(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exitCode = 1;
  }
}
