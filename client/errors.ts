/**
 * Errors of the Node client, one class per thing a caller handles differently
 * (the proxy maps them to HTTP statuses; workflows decide whether to retry).
 */

/** What txfn records for an application error (runtime-sql/README.md "Recorded errors"). */
export interface RecordedError {
  name: string;
  message: string;
  sqlstate?: string;
  detail?: string;
  hint?: string;
  schema?: string;
  table?: string;
  column?: string;
  constraint?: string;
  datatype?: string;
  /** V8 stack with bundle positions mapped to the TypeScript sources. */
  stack?: string;
  /** The error's own enumerable properties (e.g. `sku` of an OutOfStock), JSON-encoded. */
  data?: Record<string, unknown>;
  /** A thrown non-Error value. */
  thrown?: unknown;
}

/** SQLSTATEs raised by the runtime (never recorded). */
export const TXF = {
  FUNCTION_NOT_FOUND: "TXF01",
  KEY_REUSED: "TXF02",
  ISOLATION: "TXF03",
  BAD_OPTIONS: "TXF04",
  NO_BUNDLE: "TXF05",
  BAD_BUNDLE: "TXF06",
  REENTRANT: "TXF07",
} as const;

/** Base class: an invocation failed without a recorded outcome. `sqlstate` when the database said so. */
export class TxfnError extends Error {
  override name = "TxfnError";
  constructor(
    message: string,
    readonly sqlstate?: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

/** TXF01/TXF05: no such function in the bundle (or nothing deployed). Proxy: 404. */
export class FunctionNotFoundError extends TxfnError {
  override name = "FunctionNotFoundError";
}

/** TXF02: the idempotency key was used with another function or input. Proxy: 409/422. */
export class KeyReusedError extends TxfnError {
  override name = "KeyReusedError";
}

/** Transient errors kept failing after every retry (the outcome is unknown-but-unrecorded). */
export class RetriesExhaustedError extends TxfnError {
  override name = "RetriesExhaustedError";
  constructor(
    message: string,
    readonly attempts: number,
    readonly lastError: unknown,
  ) {
    super(message, (lastError as { code?: string } | undefined)?.code);
  }
}

/** Client options or invoke options that are wrong. */
export class ClientOptionsError extends TxfnError {
  override name = "ClientOptionsError";
}

/** An SQL error that is neither transient nor one of txfn's own (e.g. a missing grant). */
export class DatabaseError extends TxfnError {
  override name = "DatabaseError";
}

/**
 * Transient failures that a retry with the same key can fix (DESIGN rule 5): serialization
 * failure, deadlock, admin/crash shutdown, cannot-connect-now, connection exceptions, too many
 * connections, and lost connections (Node socket errors, no SQLSTATE).
 */
export function isTransientError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === "string" ? e.code : undefined;
  if (code) {
    if (code === "40001" || code === "40P01" || code === "57P01" || code === "57P02" || code === "57P03" || code === "53300") return true;
    if (code.startsWith("08")) return true;
    if (/^E[A-Z]+$/.test(code)) return ["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "ENOTCONN", "EHOSTUNREACH"].includes(code);
    return false;
  }
  const msg = typeof e?.message === "string" ? e.message : "";
  return /Connection terminated|connection is closed|Client has encountered a connection error|terminating connection/i.test(msg);
}

/** True for errors after which the connection must not be reused. */
export function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === "string" && (code.startsWith("08") || code.startsWith("57P") || /^E[A-Z]+$/.test(code))) return true;
  return isTransientError(err) && typeof code !== "string";
}

/** True for "schema txfn / its tables do not exist yet": nothing has been deployed to this database. */
export function isMissingSchema(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === "3F000" || code === "42P01";
}
