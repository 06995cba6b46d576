/**
 * The oversell race of DESIGN's "Time travel": a reserve split into a check transaction
 * (checkStock) and an update transaction (takeStock), each correct alone. Shoppers who all check
 * the last widget before any of them takes it all take it: the stock goes negative. The demo
 * records that race in a database of its own, replays it faithfully (the bug comes back), then
 * runs the same trace with the fixed takeStock (retroaction) and shows the oversell gone.
 *
 * The example project (functions/examples/oversell, and oversell-fixed) is shared with replay's
 * tests and bench/replay.
 */
import { join } from "node:path";
import { TxfnClient } from "../client/index.ts";
import { REPO_ROOT } from "./children.ts";
import { DemoError } from "./ui.ts";

/** The buggy shop (checkStock, takeStock, restock, noteStock; inventory seeded with 1 widget). */
export const OVERSELL_PROJECT = join(REPO_ROOT, "functions", "examples", "oversell");
/** The same shop with takeStock fixed (check and take in one statement). */
export const OVERSELL_FIXED = join(REPO_ROOT, "functions", "examples", "oversell-fixed");

/** The invariant the bug breaks: SQL that must return no rows. */
export const NO_OVERSELL = "SELECT sku, stock FROM inventory WHERE stock < 0";

export const SHOPPERS = ["ana", "ben", "chloe"];

export interface RaceResult {
  /** When the recorded traffic began (the trace starts here). */
  from: Date;
  invocations: number;
  /** What each shopper saw and got. */
  shoppers: { name: string; saw: number; took: boolean; left: number | null }[];
  widgetStock: number;
  widgetOrders: number;
}

/** Everyday traffic, then three shoppers racing for the last widget. */
export async function runRace(url: string): Promise<RaceResult> {
  const client = new TxfnClient({ url, poolSize: 8, applicationName: "txfn demo (shop)" });
  let invocations = 0;
  const call = async <O>(fn: string, input: unknown, key: string): Promise<O> => {
    invocations++;
    const r = await client.invoke<O>(fn, input, { key });
    if (!r.ok) throw new DemoError(`${fn}(${JSON.stringify(input)}) failed: ${r.error.name}: ${r.error.message}`);
    return r.output;
  };
  try {
    const [{ now }] = (await client.pool.query<{ now: Date }>("SELECT clock_timestamp() AS now")).rows as [{ now: Date }];
    const from = new Date(now.getTime() - 1000);
    // Everyday traffic: gadgets bought one after another, a restock, a stock note.
    for (let i = 1; i <= 3; i++) {
      const seen = await call<{ available: number }>("checkStock", { sku: "gadget" }, `g${i}:check`);
      if (seen.available > 0) await call("takeStock", { sku: "gadget", orderId: `g${i}` }, `g${i}:take`);
    }
    await call("restock", { sku: "gadget", qty: 5 }, "restock-1");
    await call("noteStock", { sku: "widget", note: "before the rush" }, "note-1");
    // The race: every shopper checks the last widget, then every one who saw it takes it.
    const saw = await Promise.all(SHOPPERS.map((s) => call<{ available: number }>("checkStock", { sku: "widget" }, `${s}:check`)));
    const took = await Promise.all(
      SHOPPERS.map((s, i) =>
        saw[i]!.available > 0 ? call<{ left: number }>("takeStock", { sku: "widget", orderId: `${s}-widget` }, `${s}:take`) : Promise.resolve(null),
      ),
    );
    const [state] = (
      await client.pool.query<{ stock: number; orders: string }>(
        "SELECT stock, (SELECT count(*) FROM orders WHERE sku = 'widget') AS orders FROM inventory WHERE sku = 'widget'",
      )
    ).rows;
    return {
      from,
      invocations,
      shoppers: SHOPPERS.map((name, i) => ({ name, saw: saw[i]!.available, took: took[i] !== null, left: took[i]?.left ?? null })),
      widgetStock: state!.stock,
      widgetOrders: Number(state!.orders),
    };
  } finally {
    await client.close();
  }
}
