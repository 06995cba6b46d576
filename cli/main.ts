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
import { CliError } from "./errors.ts";
import { ClusterError } from "../db/errors.ts";

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

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode;
      return;
    }
    if (err instanceof CliError) {
      console.error(`txfn: ${err.message}${err.hint ? `\nhint: ${err.hint}` : ""}`);
      process.exitCode = err.exitCode;
      return;
    }
    if (err instanceof ClusterError) {
      console.error(`txfn: ${err.message}`);
      process.exitCode = 1;
      return;
    }
    console.error(`txfn: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exitCode = 1;
  }
}
