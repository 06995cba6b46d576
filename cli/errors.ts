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

/** stdout's reader has gone (`txfn history … | head`): the command ends quietly with exit 0, as git and coreutils do. */
export class StdoutClosedError extends Error {
  override name = "StdoutClosedError";
}

/** "txfn is not installed in this database": for a command reading txfn's tables where there are none. */
export function notInstalled(): CliError {
  return new CliError("txfn is not installed in this database", "txfn deploy <dir> installs it");
}

interface ErrorLike {
  code?: unknown;
  /** TxfnError's name for the SQLSTATE. */
  sqlstate?: unknown;
  message?: unknown;
  address?: unknown;
  port?: unknown;
  hostname?: unknown;
  user?: unknown;
  cause?: unknown;
  lastError?: unknown;
  errors?: unknown;
}

/** The error itself, then what it wraps (cause, a retried call's lastError, an AggregateError's errors). */
function chain(err: unknown): ErrorLike[] {
  const out: ErrorLike[] = [];
  const seen = new Set<unknown>();
  const visit = (e: unknown) => {
    if (!e || typeof e !== "object" || seen.has(e) || out.length > 8) return;
    seen.add(e);
    out.push(e as ErrorLike);
    const x = e as ErrorLike;
    visit(x.cause);
    visit(x.lastError);
    if (Array.isArray(x.errors)) x.errors.forEach(visit);
  };
  visit(err);
  return out;
}

/**
 * A one-line explanation of a failure to reach or log in to PostgreSQL (connection refused, unknown
 * host, password authentication failed, no such database…), naming `target` (host:port/database,
 * never a password) when known; undefined for any other error.
 */
export function explainConnectionError(err: unknown, target: string | undefined, fromEnv: boolean): CliError | undefined {
  const where = (e: ErrorLike) =>
    target ?? (typeof e.address === "string" ? `${e.address}${e.port !== undefined ? `:${String(e.port)}` : ""}` : typeof e.hostname === "string" ? e.hostname : "the database server");
  const fix = fromEnv ? "check DATABASE_URL, or unset it to use the private cluster (txfn db start)" : "txfn db status says whether the private cluster runs; txfn db start starts it";
  for (const e of chain(err)) {
    const code = typeof e.code === "string" ? e.code : typeof e.sqlstate === "string" ? e.sqlstate : undefined;
    const text = typeof e.message === "string" ? e.message : "";
    switch (code) {
      case "ECONNREFUSED":
        return new CliError(`cannot connect to PostgreSQL at ${where(e)}: connection refused (is the server running, on that port?)`, fix);
      case "ENOTFOUND":
      case "EAI_AGAIN":
        return new CliError(`cannot connect to PostgreSQL at ${where(e)}: unknown host${typeof e.hostname === "string" ? ` ${e.hostname}` : ""}`, fix);
      case "ETIMEDOUT":
      case "EHOSTUNREACH":
      case "ENETUNREACH":
        return new CliError(`cannot connect to PostgreSQL at ${where(e)}: ${code === "ETIMEDOUT" ? "timed out" : "host unreachable"}`, fix);
      case "28P01":
        return new CliError(`cannot log in to PostgreSQL at ${where(e)}: ${text || "password authentication failed"}`, fromEnv ? "check the user and password in DATABASE_URL" : fix);
      case "28000":
        return new CliError(`cannot log in to PostgreSQL at ${where(e)}: ${text}`, fromEnv ? "check the user in DATABASE_URL and the server's pg_hba.conf" : fix);
      case "3D000":
        return new CliError(`cannot connect to PostgreSQL at ${where(e)}: ${text || "the database does not exist"}`, fromEnv ? "create it (createdb), or fix the database name in DATABASE_URL" : fix);
      case "57P03":
        return new CliError(`cannot connect to PostgreSQL at ${where(e)}: ${text || "the database system is starting up"}`, "try again in a moment");
    }
    if (!code && /Connection terminated due to connection timeout/i.test(text)) return new CliError(`cannot connect to PostgreSQL at ${where(e)}: timed out`, fix);
  }
  return undefined;
}
