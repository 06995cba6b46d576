/**
 * bench/tpcc: New-Order and Payment written once, as generators that yield SQL statements and
 * receive their rows, so the txfn function (synchronous ctx.query inside PostgreSQL), the
 * node-pg transaction and the DBOS transaction (asynchronous, in Node) run the same statements
 * with the same logic; only the driver differs (runSync / runAsync). Pure: no Node API, so the
 * bundler can put it in a txfn bundle.
 */
import type { NewOrderInput, NewOrderOutput, OrderLineOutput, PaymentInput, PaymentOutput } from "./scale.ts";
import * as SQL from "./sql.ts";

/** One statement: SQL text and its parameters. */
export interface Statement {
  sql: string;
  params: unknown[];
}

/** A row as the drivers return it (column name → float8/int4 as number, text as string, NULL as null). */
export type Row = Record<string, unknown>;

/** A transaction's logic: yields statements, receives each one's rows, returns the output. */
export type TransactionLogic<O> = Generator<Statement, O, Row[]>;

/** Thrown for New-Order's 1% with an unused item id (TPC-C 2.4.2.3): the whole transaction rolls back. */
export class ItemNotFound extends Error {
  constructor(readonly i_id: number) {
    super(`Item number is not valid: ${i_id}`);
    this.name = "ItemNotFound";
  }
}

/** The SQLSTATE the PL/pgSQL implementation raises for ItemNotFound. */
export const ITEM_NOT_FOUND_SQLSTATE = "TPC01";

/** Runs a transaction's logic with a synchronous executor (txfn's ctx.query). */
export function runSync<O>(logic: TransactionLogic<O>, exec: (sql: string, params: unknown[]) => Row[]): O {
  let step = logic.next();
  while (!step.done) step = logic.next(exec(step.value.sql, step.value.params));
  return step.value;
}

/** Runs a transaction's logic with an asynchronous executor (node-pg, postgres.js). */
export async function runAsync<O>(logic: TransactionLogic<O>, exec: (sql: string, params: unknown[]) => Promise<Row[]>): Promise<O> {
  let step = logic.next();
  while (!step.done) step = logic.next(await exec(step.value.sql, step.value.params));
  return step.value;
}

function one(rows: Row[], what: string): Row {
  const r = rows[0];
  if (r === undefined) throw new Error(`tpcc: no ${what}`);
  return r;
}

const hasOriginal = (s: unknown) => typeof s === "string" && s.includes("ORIGINAL");

/** The common start of New-Order: customer and warehouse, the order number, the order rows. */
function* newOrderHeader(input: NewOrderInput): Generator<Statement, { cw: Row; o_id: number; d_tax: number }, Row[]> {
  const { w_id, d_id, c_id, lines } = input;
  const cw = one(yield { sql: SQL.CUSTOMER_WAREHOUSE, params: [w_id, d_id, c_id] }, `customer ${w_id}/${d_id}/${c_id}`);
  const d = one(yield { sql: SQL.DISTRICT_NEXT_ORDER, params: [w_id, d_id] }, `district ${w_id}/${d_id}`);
  const o_id = d.o_id as number;
  const allLocal = lines.every((l) => l.supply_w_id === w_id) ? 1 : 0;
  yield { sql: SQL.INSERT_ORDER, params: [o_id, d_id, w_id, c_id, lines.length, allLocal] };
  yield { sql: SQL.INSERT_NEW_ORDER, params: [o_id, d_id, w_id] };
  return { cw, o_id, d_tax: d.d_tax as number };
}

function newOrderOutput(input: NewOrderInput, cw: Row, o_id: number, d_tax: number, lines: OrderLineOutput[]): NewOrderOutput {
  let sum = 0;
  for (const l of lines) sum += l.ol_amount;
  const c_discount = cw.c_discount as number;
  const w_tax = cw.w_tax as number;
  return {
    w_id: input.w_id,
    d_id: input.d_id,
    c_id: input.c_id,
    o_id,
    c_last: cw.c_last as string,
    c_credit: cw.c_credit as string,
    c_discount,
    w_tax,
    d_tax,
    ol_cnt: input.lines.length,
    total: sum * (1 - c_discount) * (1 + w_tax + d_tax),
    lines,
  };
}

/**
 * New-Order, row at a time (TPC-C 2.4.2.2): per line an item read, a stock update and an
 * order-line insert. An unused item id throws ItemNotFound (the caller rolls back).
 */
export function* newOrderRows(input: NewOrderInput): TransactionLogic<NewOrderOutput> {
  const { w_id, d_id } = input;
  const { cw, o_id, d_tax } = yield* newOrderHeader(input);
  const out: OrderLineOutput[] = [];
  for (let n = 0; n < input.lines.length; n++) {
    const l = input.lines[n]!;
    const item = (yield { sql: SQL.ITEM, params: [l.i_id] })[0];
    if (item === undefined) throw new ItemNotFound(l.i_id);
    const s = one(yield { sql: SQL.STOCK, params: [l.i_id, l.supply_w_id, l.qty, l.supply_w_id === w_id ? 0 : 1, d_id] }, `stock ${l.supply_w_id}/${l.i_id}`);
    const i_price = item.i_price as number;
    yield { sql: SQL.INSERT_ORDER_LINE, params: [o_id, d_id, w_id, n + 1, l.i_id, l.supply_w_id, l.qty, i_price, s.dist_info] };
    out.push({
      supply_w_id: l.supply_w_id,
      i_id: l.i_id,
      i_name: item.i_name as string,
      qty: l.qty,
      s_quantity: s.s_quantity as number,
      brand: hasOriginal(item.i_data) && hasOriginal(s.s_data) ? "B" : "G",
      i_price,
      ol_amount: l.qty * i_price,
    });
  }
  return newOrderOutput(input, cw, o_id, d_tax, out);
}

/**
 * New-Order, set at a time: the same reads and writes as newOrderRows, with one statement for
 * all items, one for all stock rows and one for all order lines (lines must have distinct item
 * ids per supplying warehouse, as the generator makes them).
 */
export function* newOrderSet(input: NewOrderInput): TransactionLogic<NewOrderOutput> {
  const { w_id, d_id, lines } = input;
  const { cw, o_id, d_tax } = yield* newOrderHeader(input);
  const ids = lines.map((l) => l.i_id);
  const items = new Map<number, Row>();
  for (const r of yield { sql: SQL.ITEMS, params: [ids] }) items.set(r.i_id as number, r);
  const missing = lines.find((l) => !items.has(l.i_id));
  if (missing) throw new ItemNotFound(missing.i_id);
  const stock = new Map<string, Row>();
  const rows = yield { sql: SQL.STOCKS, params: [ids, lines.map((l) => l.supply_w_id), lines.map((l) => l.qty), w_id, d_id] };
  for (const r of rows) stock.set(`${r.s_w_id}/${r.s_i_id}`, r);
  const out: OrderLineOutput[] = lines.map((l) => {
    const item = items.get(l.i_id)!;
    const s = stock.get(`${l.supply_w_id}/${l.i_id}`);
    if (s === undefined) throw new Error(`tpcc: no stock ${l.supply_w_id}/${l.i_id}`);
    const i_price = item.i_price as number;
    return {
      supply_w_id: l.supply_w_id,
      i_id: l.i_id,
      i_name: item.i_name as string,
      qty: l.qty,
      s_quantity: s.s_quantity as number,
      brand: hasOriginal(item.i_data) && hasOriginal(s.s_data) ? "B" : "G",
      i_price,
      ol_amount: l.qty * i_price,
    };
  });
  yield {
    sql: SQL.INSERT_ORDER_LINES,
    params: [o_id, d_id, w_id, ids, lines.map((l) => l.supply_w_id), lines.map((l) => l.qty), out.map((l) => l.i_price), lines.map((l) => stock.get(`${l.supply_w_id}/${l.i_id}`)!.dist_info)],
  };
  return newOrderOutput(input, cw, o_id, d_tax, out);
}

/** Payment (TPC-C 2.5.2.2): warehouse and district year-to-date, the customer's balance, a history row. */
export function* payment(input: PaymentInput): TransactionLogic<PaymentOutput> {
  const { w_id, d_id, c_w_id, c_d_id, h_amount } = input;
  const w = one(yield { sql: SQL.WAREHOUSE_PAY, params: [w_id, h_amount] }, `warehouse ${w_id}`);
  const d = one(yield { sql: SQL.DISTRICT_PAY, params: [w_id, d_id, h_amount] }, `district ${w_id}/${d_id}`);
  let c_id = input.c_id;
  if (c_id === null) {
    const found = yield { sql: SQL.CUSTOMERS_BY_NAME, params: [c_w_id, c_d_id, input.c_last] };
    if (found.length === 0) throw new Error(`tpcc: no customer named ${input.c_last} in ${c_w_id}/${c_d_id}`);
    c_id = found[Math.ceil(found.length / 2) - 1]!.c_id as number;
  }
  const c = one(yield { sql: SQL.CUSTOMER_PAY, params: [c_w_id, c_d_id, c_id, h_amount, d_id, w_id] }, `customer ${c_w_id}/${c_d_id}/${c_id}`);
  const w_name = w.w_name as string;
  const d_name = d.d_name as string;
  yield { sql: SQL.INSERT_HISTORY, params: [c_id, c_d_id, c_w_id, d_id, w_id, h_amount, `${w_name}    ${d_name}`] };
  return {
    w_id,
    d_id,
    c_w_id,
    c_d_id,
    c_id,
    h_amount,
    w_name,
    w_street_1: w.w_street_1 as string,
    w_city: w.w_city as string,
    w_state: w.w_state as string,
    w_zip: w.w_zip as string,
    d_name,
    d_street_1: d.d_street_1 as string,
    d_city: d.d_city as string,
    d_state: d.d_state as string,
    d_zip: d.d_zip as string,
    c_first: c.c_first as string,
    c_middle: c.c_middle as string,
    c_last: c.c_last as string,
    c_street_1: c.c_street_1 as string,
    c_city: c.c_city as string,
    c_state: c.c_state as string,
    c_zip: c.c_zip as string,
    c_phone: c.c_phone as string,
    c_since: c.c_since as string,
    c_credit: c.c_credit as string,
    c_credit_lim: c.c_credit_lim as number,
    c_discount: c.c_discount as number,
    c_balance: c.c_balance as number,
    c_data: (c.c_data as string | null) ?? null,
  };
}

/** New-Order logic for a SQL style. */
export type SqlStyle = "row" | "set";
export const newOrder = (style: SqlStyle, input: NewOrderInput): TransactionLogic<NewOrderOutput> =>
  style === "set" ? newOrderSet(input) : newOrderRows(input);
