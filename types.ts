/**
 * txfn's public contract: the types a function project sees when it imports from "txfn".
 *
 * Everything here is shared by three readers: the user's TypeScript (authoring), the bundler
 * (which reads the options and types to write the manifest) and the in-database runtime
 * (runtime-sql/runtime.js), which receives the same descriptor objects from the bundle.
 * Keep it small; the runtime-sql/README.md documents the same contract from the SQL side.
 */

/** Isolation levels a transaction function may ask for (PostgreSQL's names). */
export type IsolationLevel = "serializable" | "repeatable read" | "read committed";

/** Options of `transaction(options, body)`. Unknown keys are rejected. */
export interface TransactionOptions {
  /**
   * The isolation the body needs; default `"serializable"`. The caller's transaction must run
   * at this level or a stronger one (txfn's client sets it per connection); a weaker one is
   * refused with SQLSTATE TXF03. `"read committed"` functions are recorded but marked
   * "replay not guaranteed".
   */
  isolation?: IsolationLevel;
  /** The body only reads: it runs with `transaction_read_only` on (writes fail with 25006, recorded). */
  readOnly?: boolean;
}

/** A row returned by `ctx.query`: column name → value converted as PL/V8 does (int8 → bigint). */
export type Row = Record<string, unknown>;

/** Levels accepted by `ctx.log` (PostgreSQL's message levels below ERROR). */
export type LogLevel = "debug" | "log" | "info" | "notice" | "warning";

/** What a transaction function's body receives besides its input. */
export interface Context {
  /** This invocation's id (decimal text of `txfn.invocations.id`); nested `call`s share it. */
  readonly invocationId: string;
  /** The caller's idempotency key, or null when the call had none. */
  readonly idempotencyKey: string | null;
  /** The workflow that made this call (options.workflowId), or null. */
  readonly workflowId: string | null;
  /** The workflow step number (options.workflowStep), or null. */
  readonly workflowStep: number | null;
  /** Name of the function running now (the callee inside a nested `call`). */
  readonly functionName: string;
  /** Bundle version the invocation runs. */
  readonly version: number;
  /**
   * Runs one SQL statement in the invocation's transaction; returns its rows.
   *
   * Statements run like PL/pgSQL statements outside an `EXCEPTION` block: an SQL error is thrown
   * as an Error carrying `sqlerrcode`, `detail`, `hint`, `constraint_name`, … but the body cannot
   * catch it and go on. Once a statement failed, every further `query`/`execute` throws SQLSTATE
   * 25P02, and the invocation ends with that original error whatever the body does (recorded as
   * an application error, or retried when transient). To catch an SQL error and continue, run
   * the statement inside {@link Context.subtransaction}. (On real plv8 every statement has a
   * subtransaction of its own; code that follows this rule behaves the same on both.)
   */
  query<R extends Row = Row>(sql: string, params?: readonly unknown[]): R[];
  /** Runs one SQL statement that returns no rows; returns the number of rows it affected. Errors as {@link Context.query}. */
  execute(sql: string, params?: readonly unknown[]): number;
  /**
   * Runs `fn` in a subtransaction (a savepoint) and returns its value; if `fn` throws, everything
   * it did in the database is rolled back and the error is rethrown unchanged, so the body can
   * catch it and go on. The model is PL/pgSQL's `BEGIN … EXCEPTION WHEN … END` block: an SQL
   * error inside `fn` fails the subtransaction, which then ends with that error even when `fn`
   * caught it. Costs one subtransaction (an XID if it writes); nest freely.
   *
   * ```ts
   * try {
   *   ctx.subtransaction(() => ctx.execute("INSERT INTO orders (id) VALUES ($1)", [id]));
   * } catch (e) {
   *   if ((e as { sqlerrcode?: string }).sqlerrcode !== "23505") throw e; // unique_violation: already there
   * }
   * ```
   */
  subtransaction<T>(fn: () => T): T;
  /**
   * Calls another transaction function of the same bundle inside this transaction (no new
   * invocation record: its writes belong to this invocation). Its errors propagate as thrown.
   */
  call<I, O>(fn: TransactionFunction<I, O> | string, input: I): O;
  /** Sends a message to the server log / client (PostgreSQL NOTICE etc.); arguments joined by spaces. */
  log: {
    (...args: unknown[]): void;
  } & { [L in LogLevel]: (...args: unknown[]) => void };
}

/** The body of a transaction function: synchronous (PL/V8 is). */
export type TransactionBody<I, O> = (ctx: Context, input: I) => O;

/** Marker property that identifies a transaction function descriptor in a bundle's exports. */
export const TXFN_KIND = "__txfn" as const;

/** What `transaction(...)` returns and what a module exports: a descriptor the runtime runs. */
export interface TransactionFunction<I = unknown, O = unknown> {
  readonly [TXFN_KIND]: "transaction";
  readonly options: Readonly<Required<TransactionOptions>>;
  readonly body: TransactionBody<I, O>;
  /** Phantom fields for type inference of `ctx.call` and clients (never present at runtime). */
  readonly __input?: I;
  readonly __output?: O;
}
