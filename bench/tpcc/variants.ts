/**
 * bench/tpcc: the implementations under test, each behind one interface — run one terminal's
 * transaction to its outcome, retrying transient failures (40001, 40P01) with DBOS Transact's
 * own policy (1 ms, ×1.5, at most 2 s between attempts), which DBOS applies inside itself:
 *
 *   txfn        txfn.invoke with an idempotency key, provenance capture on (what txfn records by default)
 *   txfn-norec  txfn.invoke without a key, provenance capture off (the harness switches capture per round)
 *   txfn-idem   txfn.invoke with a key, provenance capture off (optional: separates the two recordings)
 *   plpgsql     hand-written PL/pgSQL functions, one round trip, nothing recorded (the limit)
 *   node-pg     BEGIN, the statements one round trip each, the idempotency row, COMMIT (by hand)
 *   dbos        a DBOS Transact transaction (postgres-datasource) in a workflow whose id is the key
 *
 * The SQL-driven variants run on a pg connection the terminal holds for the whole round; DBOS
 * brings its own connections (postgres.js for the transaction, pg for its system database).
 */
import { DBOS } from "@dbos-inc/dbos-sdk";
import { PostgresDataSource } from "@dbos-inc/postgres-datasource";
import type pg from "pg";
import type { Transaction } from "./inputs.ts";
import { ITEM_NOT_FOUND_SQLSTATE, ItemNotFound, newOrder, payment, runAsync, type Row, type SqlStyle, type TransactionLogic } from "./logic.ts";
import type { NewOrderInput, PaymentInput } from "./scale.ts";

export type VariantName = "txfn" | "txfn-norec" | "txfn-idem" | "plpgsql" | "node-pg" | "dbos";
/** The variants a run measures by default. */
export const VARIANTS: readonly VariantName[] = ["txfn", "txfn-norec", "plpgsql", "node-pg", "dbos"];
/** Also selectable: txfn-idem (idempotency keys, provenance capture off), which splits the recording overhead in two. */
export const ALL_VARIANTS: readonly VariantName[] = [...VARIANTS, "txfn-idem"];

/** The versions of DBOS Transact measured (a released pair; the registry serves no node-pg datasource). */
export const DBOS_VERSION = "4.24.16";

/** What one transaction came to. `rolledBack`: New-Order's intended 1% rollback (an unused item id). */
export interface Outcome {
  output: unknown;
  rolledBack: boolean;
  /** Attempts beyond the first (transient failures retried). */
  retries: number;
}

/** Runs transactions of one implementation; `conn` is the terminal's connection (unused by DBOS). */
export interface Variant {
  readonly name: VariantName;
  /** True when the terminal must hold a connection from the harness's pool. */
  readonly usesPool: boolean;
  run(conn: pg.PoolClient | null, tx: Transaction, key: string): Promise<Outcome>;
}

const TRANSIENT = new Set(["40001", "40P01"]);
const isTransient = (e: unknown) => TRANSIENT.has((e as { code?: string } | null)?.code ?? "");

/** Retries `attempt` on 40001/40P01 with DBOS Transact's backoff (1 ms × 1.5ⁿ, ≤ 2 s); at most 100 retries. */
export async function withRetries<T>(attempt: () => Promise<T>): Promise<{ value: T; retries: number }> {
  let wait = 1;
  for (let retries = 0; ; retries++) {
    try {
      return { value: await attempt(), retries };
    } catch (err) {
      if (!isTransient(err) || retries >= 100) throw err;
      await new Promise((r) => setTimeout(r, wait));
      wait = Math.min(wait * 1.5, 2000);
    }
  }
}

/** The txfn function for a transaction (bench/tpcc/functions/tpcc.ts). */
function txfnFunction(tx: Transaction, style: SqlStyle): string {
  return tx.kind === "payment" ? "payment" : style === "set" ? "newOrderSetAtATime" : "newOrder";
}

interface Envelope {
  output?: unknown;
  error?: { name: string; message: string };
}

/**
 * txfn: one statement, `txfn.invoke(fn, input, key)`. `name` says what is recorded: txfn (a key;
 * the harness turns provenance capture on), txfn-idem (a key, capture off), txfn-norec (no key, capture off).
 */
export function txfnVariant(style: SqlStyle, name: "txfn" | "txfn-idem" | "txfn-norec" = "txfn"): Variant {
  const record = name !== "txfn-norec";
  return {
    name,
    usesPool: true,
    async run(conn, tx, key) {
      const { value, retries } = await withRetries(async () => {
        const r = await conn!.query<{ r: Envelope }>({
          name: "tpcc_txfn",
          text: "SELECT txfn.invoke($1, $2::jsonb, $3, '{}'::jsonb) AS r",
          values: [txfnFunction(tx, style), JSON.stringify(tx.input), record ? key : null],
        });
        return r.rows[0]!.r;
      });
      if (value.error) {
        if (value.error.name === "ItemNotFound") return { output: null, rolledBack: true, retries };
        throw new Error(`txfn ${tx.kind}: ${value.error.name}: ${value.error.message}`);
      }
      return { output: value.output, rolledBack: false, retries };
    },
  };
}

/** PL/pgSQL: one statement calling the hand-written function (plpgsql.sql); nothing recorded. */
export function plpgsqlVariant(style: SqlStyle): Variant {
  const fn = (tx: Transaction) => (tx.kind === "payment" ? "payment" : style === "set" ? "new_order_set" : "new_order");
  return {
    name: "plpgsql",
    usesPool: true,
    async run(conn, tx) {
      try {
        const { value, retries } = await withRetries(async () => {
          const name = fn(tx);
          const r = await conn!.query<{ r: unknown }>({ name: `tpcc_plpgsql_${name}`, text: `SELECT tpcc_baseline.${name}($1::jsonb) AS r`, values: [JSON.stringify(tx.input)] });
          return r.rows[0]!.r;
        });
        return { output: value, rolledBack: false, retries };
      } catch (err) {
        if ((err as { code?: string }).code === ITEM_NOT_FOUND_SQLSTATE) return { output: null, rolledBack: true, retries: 0 };
        throw err;
      }
    },
  };
}

/** A prepared-statement name per SQL text, so node-pg prepares each text once per connection. */
const statementNames = new Map<string, string>();
function statementName(sql: string): string {
  let n = statementNames.get(sql);
  if (n === undefined) statementNames.set(sql, (n = `tpcc_${statementNames.size}`));
  return n;
}

function logicOf(tx: Transaction, style: SqlStyle): TransactionLogic<unknown> {
  return tx.kind === "payment" ? payment(tx.input as PaymentInput) : newOrder(style, tx.input as NewOrderInput);
}

/**
 * node-pg by hand: BEGIN, each statement a round trip, the idempotency row with the output,
 * COMMIT. After New-Order's rollback the error is recorded under the key in a second statement.
 */
export function nodePgVariant(style: SqlStyle): Variant {
  return {
    name: "node-pg",
    usesPool: true,
    async run(conn, tx, key) {
      const c = conn!;
      try {
        const { value, retries } = await withRetries(async () => {
          await c.query("BEGIN");
          try {
            const output = await runAsync(logicOf(tx, style), async (sql, params) => (await c.query({ name: statementName(sql), text: sql, values: params })).rows as Row[]);
            await c.query({ name: "tpcc_idem_ok", text: "INSERT INTO tpcc_baseline.idempotency (key, output) VALUES ($1, $2::jsonb)", values: [key, JSON.stringify(output)] });
            await c.query("COMMIT");
            return output;
          } catch (err) {
            await c.query("ROLLBACK");
            throw err;
          }
        });
        return { output: value, rolledBack: false, retries };
      } catch (err) {
        if (!(err instanceof ItemNotFound)) throw err;
        await c.query({
          name: "tpcc_idem_error",
          text: "INSERT INTO tpcc_baseline.idempotency (key, error) VALUES ($1, $2::jsonb)",
          values: [key, JSON.stringify({ name: err.name, message: err.message })],
        });
        return { output: null, rolledBack: true, retries: 0 };
      }
    },
  };
}

/** Connection settings of DBOS's datasource (postgres.js) for a database URL. */
export function dbosDataSourceOptions(url: string, max: number) {
  const u = new URL(url);
  return {
    host: u.hostname,
    port: Number(u.port),
    database: decodeURIComponent(u.pathname.slice(1)),
    username: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    max,
    connection: { application_name: "bench-tpcc-dbos" },
  };
}

/**
 * DBOS Transact: the same logic as a datasource transaction (postgres.js, prepared statements),
 * inside a workflow whose id is the idempotency key (DBOS records the transaction's output in
 * dbos.transaction_completion and the workflow in its system database). DBOS must be launched
 * (launchDbos) after this is made: registration comes first. One per style and process.
 */
export function dbosVariant(style: SqlStyle, appUrl: string, poolSize: number): Variant {
  const ds = new PostgresDataSource(`tpcc-${style}`, dbosDataSourceOptions(appUrl, poolSize));
  const attempts = new Map<string, number>(); // workflow id → attempts of its transaction (DBOS retries inside)
  const count = () => {
    const id = DBOS.workflowID ?? "";
    attempts.set(id, (attempts.get(id) ?? 0) + 1);
  };
  const exec = async (sql: string, params: unknown[]) => (await ds.client.unsafe(sql, params as never[], { prepare: true })) as unknown as Row[];
  const newOrderTx = ds.registerTransaction(
    async (input: NewOrderInput) => {
      count();
      return runAsync(newOrder(style, input), exec);
    },
    { name: `tpccNewOrder-${style}`, isolationLevel: "REPEATABLE READ" },
  );
  const paymentTx = ds.registerTransaction(
    async (input: PaymentInput) => {
      count();
      return runAsync(payment(input), exec);
    },
    { name: `tpccPayment-${style}`, isolationLevel: "REPEATABLE READ" },
  );
  const workflow = DBOS.registerWorkflow(async (tx: Transaction) => (tx.kind === "payment" ? paymentTx(tx.input) : newOrderTx(tx.input)), { name: `tpcc-${style}` });
  return {
    name: "dbos",
    usesPool: false,
    async run(_conn, tx, key) {
      const retries = () => {
        const n = attempts.get(key) ?? 1;
        attempts.delete(key);
        return n - 1;
      };
      try {
        const output = await DBOS.withNextWorkflowID(key, () => workflow(tx));
        return { output, rolledBack: false, retries: retries() };
      } catch (err) {
        if ((err as Error).name === "ItemNotFound") return { output: null, rolledBack: true, retries: retries() };
        retries();
        throw err;
      }
    },
  };
}

/** Launches DBOS with its system database at `systemUrl` (call after dbosVariant). */
export async function launchDbos(systemUrl: string, poolSize: number): Promise<void> {
  // DBOS logs every error a workflow throws; New-Order's intended rollbacks are not news.
  const error = (e: unknown) => {
    if ((e as Error | null)?.name !== "ItemNotFound" && !String((e as Error | null)?.message ?? e).startsWith("Item number is not valid")) console.error("DBOS:", e);
  };
  const logger = { info: () => {}, debug: () => {}, warn: (e: unknown) => console.error("DBOS:", e), error };
  DBOS.setConfig({ name: "txfn-bench-tpcc", systemDatabaseUrl: systemUrl, systemDatabasePoolSize: poolSize, logger, runAdminServer: false });
  await DBOS.launch();
}

/** Shuts DBOS down (its pools and background work). */
export async function shutdownDbos(): Promise<void> {
  await DBOS.shutdown();
}
