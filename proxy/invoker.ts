/**
 * One HTTP request → one `txfn.invoke` statement on a pooled connection, retried with the same
 * idempotency key on transient errors (DESIGN rule 5), and the mapping of what fails to HTTP.
 *
 * Why not TxfnClient: the proxy passes the request body through as the jsonb input TEXT (so the
 * recorded input keeps every digit the caller sent), bounds retries by the request's deadline,
 * and takes each function's isolation from the same catalog it validated the input with.
 * Connections are taken with connect()/release() and kept across SQL errors (a new backend
 * reloads V8); only a broken connection is released with its error, which discards it.
 */
import pg from "pg";
import { TXF, isConnectionError, isTransientError, type RecordedError } from "../client/index.ts";
import type { CatalogFunction } from "./catalog.ts";

/** What `txfn.invoke` returns (runtime-sql/README.md "The envelope"). */
export interface Envelope {
  output?: unknown;
  error?: RecordedError;
  invocationId: string;
  version: number;
  replayed: boolean;
}

/** One invocation to run. */
export interface InvokeRequest {
  fn: CatalogFunction;
  /** The input as JSON text (the request body, unchanged). */
  inputJson: string;
  /** Idempotency key; null = none (at most once per attempt; only safe retries). */
  key: string | null;
  /** Invoke options (runtime-sql/README.md "Invoke options"), e.g. workflowId. */
  options?: Record<string, unknown>;
  /** Epoch ms after which no retry is started; undefined = no deadline. */
  deadline?: number;
}

/** Retry policy of an Invoker. */
export interface InvokerOptions {
  maxRetries: number;
  /** First backoff ceiling, ms (doubles per retry, full jitter). */
  baseDelayMs?: number;
  /** Largest backoff, ms. */
  maxDelayMs?: number;
  /** Called once per retry (metrics). */
  onRetry?: (err: unknown) => void;
}

/** No pool connection became free within the request timeout. */
export class PoolTimeoutError extends Error {
  override name = "PoolTimeoutError";
}

/** A failure mapped to HTTP: status, a stable `code`, and the message for the body. */
export interface HttpFailure {
  status: number;
  code: string;
  message: string;
  hint?: string;
  sqlstate?: string;
  /** Seconds for the Retry-After header (503). */
  retryAfter?: number;
}

const INVOKE3 = "SELECT txfn.invoke($1, $2::jsonb, $3) AS r";
const INVOKE4 = "SELECT txfn.invoke($1, $2::jsonb, $3, $4::jsonb) AS r";

/** Runs invocations on a pool: one statement per attempt, isolation set per connection when it changes. */
export class Invoker {
  private readonly isolation = new WeakMap<pg.PoolClient, string>();
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;

  constructor(
    private readonly pool: pg.Pool,
    private readonly options: InvokerOptions,
  ) {
    this.baseDelayMs = options.baseDelayMs ?? 5;
    this.maxDelayMs = options.maxDelayMs ?? 250;
  }

  /**
   * Runs the invocation; retries transient errors while attempts and the deadline allow: with a
   * key always, without one only when nothing can have committed (no connection yet, or a
   * serialization failure/deadlock, which roll back).
   * @returns the envelope and the number of attempts.
   * @throws the last database error (see `httpFailure`), or PoolTimeoutError.
   */
  async invoke(req: InvokeRequest): Promise<Envelope & { attempts: number }> {
    const optionsJson = req.options && Object.keys(req.options).length ? JSON.stringify(req.options) : undefined;
    for (let attempt = 1; ; attempt++) {
      let connected = false;
      try {
        const conn = await this.connect();
        connected = true;
        return { ...(await this.attempt(conn, req, optionsJson)), attempts: attempt };
      } catch (err) {
        if (!isTransientError(err)) throw err;
        const safe = req.key !== null || !connected || !isConnectionError(err);
        if (!safe || attempt > this.options.maxRetries) throw err;
        const delay = Math.random() * Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** attempt);
        if (req.deadline !== undefined && Date.now() + delay >= req.deadline) throw err;
        this.options.onRetry?.(err);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  private async connect(): Promise<pg.PoolClient> {
    try {
      return await this.pool.connect();
    } catch (err) {
      if (/timeout exceeded when trying to connect/i.test((err as Error).message ?? "")) {
        throw new PoolTimeoutError("no database connection became free within the request timeout");
      }
      throw err;
    }
  }

  private async attempt(conn: pg.PoolClient, req: InvokeRequest, optionsJson: string | undefined): Promise<Envelope> {
    let broken: Error | undefined;
    try {
      // PostgreSQL fixes a transaction's isolation before its first statement: set it on the
      // connection, only when this function needs another level than the last one.
      if (this.isolation.get(conn) !== req.fn.isolation) {
        await conn.query(`SET default_transaction_isolation = ${pg.escapeLiteral(req.fn.isolation)}`);
        this.isolation.set(conn, req.fn.isolation);
      }
      const res = optionsJson
        ? await conn.query<{ r: Envelope }>({ name: "txfn_proxy_invoke4", text: INVOKE4, values: [req.fn.name, req.inputJson, req.key, optionsJson] })
        : await conn.query<{ r: Envelope }>({ name: "txfn_proxy_invoke3", text: INVOKE3, values: [req.fn.name, req.inputJson, req.key] });
      return res.rows[0]!.r;
    } catch (err) {
      if (isConnectionError(err)) broken = err as Error;
      throw err;
    } finally {
      conn.release(broken);
    }
  }
}

/** Maps an error of an invocation (or of any database access) to an HTTP status and body. */
export function httpFailure(err: unknown): HttpFailure {
  const e = err as { code?: unknown; message?: unknown; hint?: unknown };
  const code = typeof e?.code === "string" ? e.code : undefined;
  const message = typeof e?.message === "string" ? e.message : String(err);
  const hint = typeof e?.hint === "string" ? { hint: e.hint } : {};
  if (err instanceof PoolTimeoutError) return { status: 503, code: "busy", message, retryAfter: 1 };
  if (code === TXF.FUNCTION_NOT_FOUND || code === TXF.NO_BUNDLE) return { status: 404, code: "function_not_found", message, ...hint };
  if (code === TXF.KEY_REUSED) return { status: 409, code: "idempotency_key_reused", message, ...hint };
  if (code === TXF.BAD_OPTIONS) return { status: 400, code: "bad_options", message, ...hint };
  if (code === "57014") {
    return { status: 504, code: "timeout", message: "the request timeout (statement_timeout) expired; nothing was recorded, retry with the same Idempotency-Key", sqlstate: code };
  }
  if (isTransientError(err) || (code !== undefined && code.startsWith("53"))) {
    return { status: 503, code: "database_unavailable", message: `the database is unavailable or overloaded (${message}); nothing was recorded, retry with the same Idempotency-Key`, retryAfter: 1, ...(code && /^[0-9A-Z]{5}$/.test(code) ? { sqlstate: code } : {}) };
  }
  if (code !== undefined && /^[0-9A-Z]{5}$/.test(code)) return { status: 500, code: "database_error", message, sqlstate: code, ...hint };
  return { status: 500, code: "internal", message };
}
