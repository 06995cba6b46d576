/**
 * bench/tpcc's implementations, for correctness only (never timings): from one loaded database
 * (cloned per implementation), the same sequence of New-Orders and Payments — by id and by last
 * name, remote customers and supply warehouses, a rolled-back New-Order — run through txfn,
 * PL/pgSQL, node-pg and DBOS Transact, row at a time and set at a time. TPC-C's consistency
 * conditions 1–4 hold after each, every implementation returns the same outputs and leaves the
 * same rows.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { tableDigests, violatedConditions } from "../bench/tpcc/consistency.ts";
import { Terminal, type Transaction } from "../bench/tpcc/inputs.ts";
import type { SqlStyle } from "../bench/tpcc/logic.ts";
import { testScale, type NewOrderOutput } from "../bench/tpcc/scale.ts";
import { databaseUrlFor, dropDatabase, prepareDatabase, setCapture, withClient } from "../bench/tpcc/setup.ts";
import { dbosVariant, launchDbos, nodePgVariant, plpgsqlVariant, shutdownDbos, txfnVariant, type Variant } from "../bench/tpcc/variants.ts";

const admin = () => databaseUrlFor(inject("adminUrl"), "postgres");
const SCALE = testScale(2);
const suffix = Math.random().toString(36).slice(2, 8);
const TEMPLATE = `t_tpcc_${suffix}`;
const SYS = `t_tpcc_sys_${suffix}`;
const STYLES: SqlStyle[] = ["row", "set"];
const KINDS = ["txfn", "plpgsql", "node-pg", "dbos"] as const;
const clone = (kind: string, style: SqlStyle) => `t_tpcc_${suffix}_${kind.replace("-", "")}_${style}`;

/** 40 transactions from two terminals (one per warehouse), plus a New-Order made to roll back. */
function transactions(constants: ConstructorParameters<typeof Terminal>[2]): Transaction[] {
  const terminals = [new Terminal(SCALE, 1, constants, 11), new Terminal(SCALE, 2, constants, 12)];
  const out: Transaction[] = [];
  for (let i = 0; i < 40; i++) out.push(terminals[i % 2]!.next());
  const rb = terminals[0]!.newOrder();
  if (rb.kind === "newOrder" && !rb.rollback) {
    rb.input.lines.push({ i_id: SCALE.items + 1, supply_w_id: 1, qty: 3 });
    rb.rollback = true;
  }
  out.splice(10, 0, rb);
  // every path is exercised: by name and by id, a remote customer, a remote supply warehouse
  const pays = out.filter((t) => t.kind === "payment").map((t) => t.input);
  if (!pays.some((p) => "c_last" in p && p.c_last !== null) || !pays.some((p) => "c_id" in p && p.c_id !== null)) throw new Error("seed gives no payment by name or by id");
  return out;
}

const variants = new Map<string, Variant>();
let txs: Transaction[] = [];

beforeAll(async () => {
  const templateUrl = databaseUrlFor(admin(), TEMPLATE);
  await withClient(admin(), async (c) => {
    await c.query(`CREATE DATABASE ${TEMPLATE}`);
    await c.query(`CREATE DATABASE ${SYS}`);
  });
  const db = await prepareDatabase(templateUrl, SCALE, 7);
  txs = transactions(db.constants);
  await withClient(admin(), async (c) => {
    for (const style of STYLES) for (const kind of KINDS) await c.query(`CREATE DATABASE ${clone(kind, style)} TEMPLATE ${TEMPLATE}`);
  });
  for (const style of STYLES) {
    const url = (kind: string) => databaseUrlFor(admin(), clone(kind, style));
    variants.set(`txfn/${style}`, txfnVariant(style, "txfn"));
    variants.set(`plpgsql/${style}`, plpgsqlVariant(style));
    variants.set(`node-pg/${style}`, nodePgVariant(style));
    variants.set(`dbos/${style}`, dbosVariant(style, url("dbos"), 2));
    await setCapture(url("txfn"), true);
  }
  await launchDbos(databaseUrlFor(admin(), SYS), 4);
}, 300_000);

afterAll(async () => {
  await shutdownDbos().catch(() => {});
  for (const style of STYLES) for (const kind of KINDS) await dropDatabase(admin(), clone(kind, style));
  await dropDatabase(admin(), TEMPLATE);
  await dropDatabase(admin(), SYS);
}, 120_000);

/** Runs the sequence through one implementation on its own clone; returns outputs, digests, conditions. */
async function runAll(kind: (typeof KINDS)[number], style: SqlStyle) {
  const url = databaseUrlFor(admin(), clone(kind, style));
  const conn = new pg.Client({ connectionString: url, options: "-c default_transaction_isolation=repeatable\\ read" });
  await conn.connect();
  try {
    const v = variants.get(`${kind}/${style}`)!;
    const outputs: unknown[] = [];
    for (const [i, tx] of txs.entries()) {
      const o = await v.run(conn as unknown as pg.PoolClient, tx, `test-${kind}-${style}-${i}`);
      expect(o.rolledBack, `transaction ${i} (${tx.kind}) rolled back`).toBe(tx.kind === "newOrder" && tx.rollback);
      outputs.push(o.output);
    }
    return { outputs, digests: await tableDigests(conn), violated: await violatedConditions(conn) };
  } finally {
    await conn.end();
  }
}

/** Outputs with New-Order's total rounded to cents (PL/pgSQL and JavaScript sum the same doubles, but say so explicitly). */
const normalised = (outputs: unknown[]) =>
  outputs.map((o) => (o && typeof o === "object" && "total" in o ? { ...(o as NewOrderOutput), total: Math.round((o as NewOrderOutput).total * 100) / 100 } : o));

describe("bench/tpcc implementations", () => {
  it("hold TPC-C's consistency conditions and agree on outputs and effects", async () => {
    const runs: Record<string, Awaited<ReturnType<typeof runAll>>> = {};
    for (const style of STYLES) for (const kind of KINDS) runs[`${kind}/${style}`] = await runAll(kind, style);

    const ref = runs["plpgsql/row"]!;
    const rollbacks = txs.filter((t) => t.kind === "newOrder" && t.rollback).length;
    expect(rollbacks).toBeGreaterThan(0);
    expect(ref.outputs.filter((o) => o === null)).toHaveLength(rollbacks); // the rolled-back New-Orders
    for (const [name, r] of Object.entries(runs)) {
      expect(r.violated, `${name}: violated conditions`).toEqual([]);
      expect(normalised(r.outputs), `${name}: outputs`).toEqual(normalised(ref.outputs));
      expect(r.digests, `${name}: table contents`).toEqual(ref.digests);
    }

    // The work happened: New-Orders added orders, and txfn recorded its invocations and their row changes.
    await withClient(databaseUrlFor(admin(), clone("txfn", "row")), async (c) => {
      const done = txs.filter((t) => t.kind === "newOrder" && !t.rollback).length;
      const [o] = (await c.query(`SELECT count(*)::int AS n FROM tpcc.orders`)).rows;
      expect(o.n).toBe(SCALE.warehouses * SCALE.districts * SCALE.customers + done);
      const [inv] = (await c.query(`SELECT count(*)::int AS n, count(*) FILTER (WHERE status = 'error')::int AS errors FROM txfn.invocations WHERE idempotency_key LIKE 'test-%'`)).rows;
      expect(inv).toEqual({ n: txs.length, errors: rollbacks });
      const [p] = (await c.query(`SELECT count(DISTINCT invocation_id)::int AS n FROM txfn.provenance WHERE invocation_id IS NOT NULL`)).rows;
      expect(p.n).toBe(txs.length - rollbacks);
    });
  }, 300_000);
});
