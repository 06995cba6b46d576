/**
 * The Node client of txfn: invokes transaction functions through `txfn.invoke`, one round trip
 * per attempt, and retries transient failures with the SAME idempotency key, bounded, with
 * full-jitter exponential backoff (AWS architecture blog, "Exponential Backoff And Jitter").
 *
 * Connections come from a pg.Pool with connect()/release() (never pool.query(), which throws a
 * connection away on any error and makes the next backend reload V8). The isolation level a
 * function declares is set per connection (`default_transaction_isolation`), changed only when
 * the next call needs another one, so an invocation stays a single statement.
 */
import pg from "pg";
import {
  ClientOptionsError,
  DatabaseError,
  FunctionNotFoundError,
  KeyReusedError,
  RetriesExhaustedError,
  TXF,
  TxfnError,
  isConnectionError,
  isMissingSchema,
  isTransientError,
  type RecordedError,
} from "./errors.ts";
import type { IsolationLevel } from "../types.ts";

export interface ClientOptions {
  /** Connection URL (one of url / pool). */
  url?: string;
  /** An existing pool (not closed by `close()`). */
  pool?: pg.Pool;
  /** Pool size when the client makes the pool. Default 8. */
  poolSize?: number;
  /** Retries after the first attempt for transient errors. Default 8. */
  maxRetries?: number;
  /** First backoff ceiling in ms (doubles per retry). Default 5. */
  baseDelayMs?: number;
  /** Largest backoff in ms. Default 1000. */
  maxDelayMs?: number;
  /** application_name of the connections (recorded with each invocation). Default "txfn-client". */
  applicationName?: string;
}

export interface InvokeOptions {
  /** Idempotency key: a retry with the same key returns the recorded outcome. */
  key?: string;
  /** statement_timeout for this call, ms (0 = none). Default: the server's. */
  statementTimeoutMs?: number;
  /** Workflow id / step recorded with the invocation (the workflow engine sets them). */
  workflowId?: string;
  workflowStep?: number;
  /** Run against this bundle version instead of the active one (replay, retroaction). */
  version?: number;
  /** Pinned clock (epoch ms or ISO) and PRNG seed (uint32) instead of fresh ones (replay). */
  pinnedTime?: number | string;
  seed?: number;
  /** Isolation to run at; default: the one the function declares. */
  isolation?: IsolationLevel;
}

/** Outcome of an invocation: recorded output or recorded application error. */
export type InvokeResult<O = unknown> = {
  invocationId: string;
  version: number;
  /** true when this outcome was recorded by an earlier call with the same key. */
  replayed: boolean;
  /** Attempts made (1 = no retry). */
  attempts: number;
} & ({ ok: true; output: O } | { ok: false; error: RecordedError });

interface Envelope {
  output?: unknown;
  error?: RecordedError;
  invocationId: string;
  version: number;
  replayed: boolean;
}

const CLIENT_KEYS = ["url", "pool", "poolSize", "maxRetries", "baseDelayMs", "maxDelayMs", "applicationName"];
const INVOKE_KEYS = ["key", "statementTimeoutMs", "workflowId", "workflowStep", "version", "pinnedTime", "seed", "isolation"];
const ISOLATIONS: IsolationLevel[] = ["serializable", "repeatable read", "read committed"];

function rejectUnknown(what: string, given: object, allowed: string[]): void {
  const unknown = Object.keys(given).filter((k) => !allowed.includes(k));
  if (unknown.length) throw new ClientOptionsError(`${what}: unknown option(s) ${unknown.join(", ")} (allowed: ${allowed.join(", ")})`);
}

/** Per-connection session state, so SETs are sent only when they change. */
interface SessionState {
  isolation?: string;
  statementTimeout?: number;
}

const INVOKE_SQL = "SELECT txfn.invoke($1, $2::jsonb, $3, $4::jsonb) AS r";

export class TxfnClient {
  readonly pool: pg.Pool;
  private readonly ownsPool: boolean;
  private readonly maxRetries: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly sessions = new WeakMap<pg.PoolClient, SessionState>();
  /** Declared isolation per function of the active bundle; refreshed on TXF01/TXF03. */
  private isolations: Promise<Map<string, IsolationLevel>> | undefined;

  constructor(options: ClientOptions) {
    rejectUnknown("TxfnClient", options, CLIENT_KEYS);
    if (!options.pool === !options.url) throw new ClientOptionsError("TxfnClient: give exactly one of url or pool");
    const int = (name: keyof ClientOptions, dflt: number, min: number) => {
      const v = options[name] ?? dflt;
      if (typeof v !== "number" || !Number.isInteger(v) || v < min) throw new ClientOptionsError(`TxfnClient: ${name} must be an integer ≥ ${min}`);
      return v;
    };
    this.maxRetries = int("maxRetries", 8, 0);
    this.baseDelayMs = int("baseDelayMs", 5, 0);
    this.maxDelayMs = int("maxDelayMs", 1000, 0);
    this.ownsPool = !options.pool;
    this.pool =
      options.pool ??
      new pg.Pool({
        connectionString: options.url,
        max: int("poolSize", 8, 1),
        application_name: options.applicationName ?? "txfn-client",
      });
    // An idle connection dying (server restart) must not crash the process.
    if (this.ownsPool) this.pool.on("error", () => {});
  }

  /**
   * Invokes `fn` with `input` and returns its recorded outcome (output or application error).
   * Retries transient errors with the same key. Without `key`, a key is NOT invented: the
   * call is then at-most-once per attempt and is retried only if it never reached the body.
   * @throws FunctionNotFoundError, KeyReusedError, RetriesExhaustedError, ClientOptionsError, DatabaseError
   */
  async invoke<O = unknown>(fn: string, input: unknown, options: InvokeOptions = {}): Promise<InvokeResult<O>> {
    rejectUnknown("invoke", options, INVOKE_KEYS);
    if (typeof fn !== "string" || fn === "") throw new ClientOptionsError("invoke: fn must be a non-empty string");
    if (options.isolation !== undefined && !ISOLATIONS.includes(options.isolation)) {
      throw new ClientOptionsError(`invoke: isolation must be one of ${ISOLATIONS.join(", ")}`);
    }
    const inputJson = input === undefined ? "null" : JSON.stringify(input);
    const dbOptions: Record<string, unknown> = {};
    for (const k of ["workflowId", "workflowStep", "version", "pinnedTime", "seed"] as const) {
      if (options[k] !== undefined) dbOptions[k] = options[k];
    }
    const optionsJson = JSON.stringify(dbOptions);
    let isolationRefreshed = false;
    for (let attempt = 1; ; attempt++) {
      let err: unknown;
      try {
        const isolation = options.isolation ?? (await this.isolationOf(fn));
        const env = await this.attempt(isolation, options.statementTimeoutMs, [fn, inputJson, options.key ?? null, optionsJson]);
        const base = { invocationId: env.invocationId, version: env.version, replayed: env.replayed, attempts: attempt };
        return env.error ? { ...base, ok: false, error: env.error } : { ...base, ok: true, output: env.output as O };
      } catch (e) {
        err = e;
      }
      const code = (err as { code?: string }).code;
      if ((code === TXF.ISOLATION || code === TXF.FUNCTION_NOT_FOUND) && !isolationRefreshed) {
        // A deploy may have changed the function's isolation (or added it): reload and retry once.
        isolationRefreshed = true;
        this.isolations = undefined;
        continue;
      }
      if (!isTransientError(err)) throw translate(err);
      // Without a key, a lost connection leaves the outcome unknown (the commit may have
      // happened): only a key makes that retry safe. A 40001/40P01 rolled everything back.
      if (options.key === undefined && isConnectionError(err)) throw translate(err);
      if (attempt > this.maxRetries) {
        throw new RetriesExhaustedError(`${fn}: still failing after ${attempt} attempts: ${(err as Error).message}`, attempt, err);
      }
      await sleep(this.backoff(attempt));
    }
  }

  /** One attempt: a pooled connection, session settings when they differ, one statement. */
  private async attempt(isolation: IsolationLevel, timeout: number | undefined, values: unknown[]): Promise<Envelope> {
    const conn = await this.pool.connect();
    let broken: Error | undefined;
    try {
      const state = this.sessions.get(conn) ?? {};
      this.sessions.set(conn, state);
      if (state.isolation !== isolation) {
        await conn.query(`SET default_transaction_isolation = ${pg.escapeLiteral(isolation)}`);
        state.isolation = isolation;
      }
      if (timeout !== undefined && state.statementTimeout !== timeout) {
        if (!Number.isInteger(timeout) || timeout < 0) throw new ClientOptionsError("invoke: statementTimeoutMs must be an integer ≥ 0");
        await conn.query(`SET statement_timeout = ${timeout}`);
        state.statementTimeout = timeout;
      }
      const res = await conn.query<{ r: Envelope }>({ name: "txfn_invoke", text: INVOKE_SQL, values });
      return res.rows[0]!.r;
    } catch (e) {
      if (isConnectionError(e)) broken = e as Error;
      throw e;
    } finally {
      conn.release(broken);
    }
  }

  /** Declared isolation of `fn` in the active bundle (serializable when unknown). */
  private async isolationOf(fn: string): Promise<IsolationLevel> {
    if (!this.isolations) {
      const loading = this.pool
        .query<{ name: string; isolation: IsolationLevel }>(
          "SELECT name, options->>'isolation' AS isolation FROM txfn.functions WHERE active",
        )
        .then(
          (r) => new Map(r.rows.map((row) => [row.name, row.isolation])),
          (e: unknown) => {
            if (isMissingSchema(e)) return new Map<string, IsolationLevel>(); // nothing deployed yet
            throw e;
          },
        );
      loading.catch(() => (this.isolations = undefined));
      this.isolations = loading;
    }
    return (await this.isolations).get(fn) ?? "serializable";
  }

  /** Full jitter: uniform in [0, min(max, base·2^attempt)). */
  private backoff(attempt: number): number {
    return Math.random() * Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** attempt);
  }

  /** Closes the pool if the client made it. */
  async close(): Promise<void> {
    if (this.ownsPool) await this.pool.end();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function translate(err: unknown): Error {
  if (err instanceof TxfnError) return err;
  const e = err as Error & { code?: string; hint?: string };
  const code = e.code;
  if (code === TXF.FUNCTION_NOT_FOUND || code === TXF.NO_BUNDLE) return new FunctionNotFoundError(e.message, code, e.hint);
  if (code === TXF.KEY_REUSED) return new KeyReusedError(e.message, code, e.hint);
  if (code === TXF.BAD_OPTIONS) return new ClientOptionsError(e.message, code, e.hint);
  if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return new DatabaseError(e.message, code, e.hint);
  return e instanceof Error ? e : new Error(String(err));
}
