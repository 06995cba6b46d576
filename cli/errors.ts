/** An error meant for the person at the terminal: printed without a stack, exit code 1 (or `exitCode`). */
export class CliError extends Error {
  override name = "CliError";
  constructor(
    message: string,
    readonly hint?: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}
