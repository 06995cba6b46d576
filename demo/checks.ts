/**
 * The exactly-once checks, computed from the database after the load: the workflows' final
 * states, one invocation per transaction step (no double reservation), one charge per order
 * and every retry under the order's one key (no double payment), stock moved by exactly the
 * completed orders, and the ledger agreeing with the orders, order by order and in cents.
 */
import type pg from "pg";
import { outcomeClass, type WorkflowView } from "./load.ts";

export interface OutcomeCounts {
  completed: number;
  compensated: number;
  outOfStock: number;
  failed: number;
  pending: number;
}

export interface CheckReport {
  workflows: OutcomeCounts & { total: number };
  /** Workflows an executor began more than once (recovered after the SIGKILL). */
  recovered: number;
  invocations: { total: number; byFunction: Record<string, number>; duplicateSteps: number; doubleReservations: number };
  payments: {
    charges: number;
    approved: number;
    declined: number;
    refunded: number;
    requests: number;
    /** Charges asked for more than once (503, lost reply, hang, crash) and charged once. */
    retriedCharges: number;
    doublePayments: number;
    /** Orders whose charge requests used more than one idempotency key. */
    ordersWithSeveralKeys: number;
    byOutcome: Record<string, number>;
  };
  stock: { skus: number; unitsSold: number; soldOut: string[]; mismatches: { sku: string; start: number; sold: number; now: number }[] };
  ledger: { readyOrders: number; revenueCents: number; chargedCents: number; mismatchedOrders: string[] };
  /** Orders whose final state the API answered differently from the database. */
  apiMismatches: string[];
  failures: string[];
}

const count = (v: unknown) => Number(v ?? 0);

async function rows<R extends pg.QueryResultRow>(c: pg.ClientBase, sql: string, params: unknown[] = []): Promise<R[]> {
  return (await c.query<R>(sql, params)).rows;
}

/** The workflows' final states, classified as the summary counts them. */
async function workflowCounts(c: pg.ClientBase): Promise<{ counts: OutcomeCounts & { total: number }; recovered: number; byId: Map<string, WorkflowView> }> {
  const ws = await rows<{ id: string; status: WorkflowView["status"]; error: WorkflowView["error"]; attempts: number }>(
    c,
    "SELECT id, status, error, attempts FROM txfn.workflows WHERE name = 'checkout'",
  );
  const counts = { total: ws.length, completed: 0, compensated: 0, outOfStock: 0, failed: 0, pending: 0 };
  const byId = new Map<string, WorkflowView>();
  let recovered = 0;
  for (const w of ws) {
    const view: WorkflowView = { id: w.id, status: w.status, error: w.error };
    byId.set(w.id, view);
    const k = outcomeClass(view);
    counts[k === "out of stock" ? "outOfStock" : k]++;
    if (w.attempts > 1) recovered++;
  }
  return { counts, recovered, byId };
}

/** Runs every check; `startStock` is the stock each SKU was given before the load. */
export async function runChecks(c: pg.ClientBase, startStock: Map<string, number>, api: Map<string, WorkflowView>): Promise<CheckReport> {
  const failures: string[] = [];
  const { counts, recovered, byId } = await workflowCounts(c);
  if (counts.pending) failures.push(`${counts.pending} workflows are still PENDING`);
  if (counts.failed) failures.push(`${counts.failed} workflows ended ERROR for another reason than OutOfStock`);
  if (counts.total !== api.size) failures.push(`${counts.total} checkout workflows in the database, ${api.size} orders sent`);
  const apiMismatches = [...api].filter(([id, w]) => byId.get(id)?.status !== w.status).map(([id]) => id);
  if (apiMismatches.length) failures.push(`the API answered another final state than the database for ${apiMismatches.join(", ")}`);

  // One invocation per transaction step; at most one reservation per workflow.
  const byFn = await rows<{ function: string; n: string }>(c, "SELECT function, count(*) AS n FROM txfn.invocations WHERE workflow_id IS NOT NULL GROUP BY 1 ORDER BY 1");
  const [dup] = await rows<{ steps: string; reservations: string }>(
    c,
    `SELECT (SELECT count(*) FROM (SELECT 1 FROM txfn.invocations WHERE workflow_id IS NOT NULL
                                   GROUP BY workflow_id, workflow_step HAVING count(*) > 1) d) AS steps,
            (SELECT count(*) FROM (SELECT 1 FROM txfn.invocations WHERE function = 'reserveInventory'
                                   GROUP BY workflow_id HAVING count(*) > 1) r) AS reservations`,
  );
  const invocations = {
    total: byFn.reduce((a, r) => a + count(r.n), 0),
    byFunction: Object.fromEntries(byFn.map((r) => [r.function, count(r.n)])),
    duplicateSteps: count(dup!.steps),
    doubleReservations: count(dup!.reservations),
  };
  if (invocations.duplicateSteps) failures.push(`${invocations.duplicateSteps} workflow steps ran more than one invocation`);
  if (invocations.doubleReservations) failures.push(`${invocations.doubleReservations} workflows reserved stock twice`);

  // The payment ledger: one charge per order under the payment step's key, retries deduplicated.
  const [p] = await rows<Record<string, string>>(
    c,
    `SELECT count(*) AS charges, count(*) FILTER (WHERE status = 'approved') AS approved,
            count(*) FILTER (WHERE status = 'declined') AS declined, count(*) FILTER (WHERE refunded) AS refunded,
            coalesce(sum(requests), 0) AS requests, count(*) FILTER (WHERE requests > 1) AS retried,
            (SELECT count(*) FROM (SELECT 1 FROM payment_service.charges WHERE status = 'approved' AND NOT refunded
                                   GROUP BY order_id HAVING count(*) > 1) d) AS double_payments,
            (SELECT count(*) FROM (SELECT 1 FROM payment_service.requests WHERE kind = 'charge'
                                   GROUP BY order_id HAVING count(DISTINCT idempotency_key) > 1) k) AS several_keys
       FROM payment_service.charges`,
  );
  const outcomes = await rows<{ outcome: string; n: string }>(c, "SELECT outcome, count(*) AS n FROM payment_service.requests GROUP BY 1 ORDER BY 2 DESC");
  const payments = {
    charges: count(p!.charges),
    approved: count(p!.approved),
    declined: count(p!.declined),
    refunded: count(p!.refunded),
    requests: count(p!.requests),
    retriedCharges: count(p!.retried),
    doublePayments: count(p!.double_payments),
    ordersWithSeveralKeys: count(p!.several_keys),
    byOutcome: Object.fromEntries(outcomes.map((r) => [r.outcome, count(r.n)])),
  };
  if (payments.doublePayments) failures.push(`${payments.doublePayments} orders were charged twice`);
  if (payments.ordersWithSeveralKeys) failures.push(`${payments.ordersWithSeveralKeys} orders' charge requests used more than one key`);
  if (payments.approved - payments.refunded !== counts.completed) failures.push(`${payments.approved - payments.refunded} kept charges for ${counts.completed} completed orders`);
  if (payments.declined !== counts.compensated) failures.push(`${payments.declined} declined charges for ${counts.compensated} compensated orders`);

  // Stock: each SKU moved by exactly the items of the completed orders.
  const stock = await rows<{ sku: string; start: number; sold: string; now: number }>(
    c,
    `WITH start AS (SELECT key AS sku, value::int AS stock FROM jsonb_each_text($1::jsonb)),
          sold AS (SELECT it->>'sku' AS sku, sum((it->>'qty')::int) AS qty
                     FROM txfn.workflows w, jsonb_array_elements(w.input->'order'->'items') it
                    WHERE w.name = 'checkout' AND w.status = 'SUCCESS' GROUP BY 1)
     SELECT s.sku, s.stock AS start, coalesce(sold.qty, 0) AS sold, i.stock AS now
       FROM start s JOIN shop.inventory i USING (sku) LEFT JOIN sold USING (sku) ORDER BY s.sku`,
    [JSON.stringify(Object.fromEntries(startStock))],
  );
  const mismatches = stock.filter((r) => r.now !== r.start - count(r.sold)).map((r) => ({ sku: r.sku, start: r.start, sold: count(r.sold), now: r.now }));
  if (stock.length !== startStock.size) failures.push(`${startStock.size} SKUs stocked, ${stock.length} found`);
  if (mismatches.length) failures.push(`stock does not match the completed orders for ${mismatches.map((m) => m.sku).join(", ")}`);
  const stockReport = {
    skus: stock.length,
    unitsSold: stock.reduce((a, r) => a + count(r.sold), 0),
    soldOut: stock.filter((r) => r.now === 0).map((r) => r.sku),
    mismatches,
  };

  // The ledger against the orders: the same order ids, the same amounts.
  const diff = await rows<{ order_id: string }>(
    c,
    `(SELECT order_id, amount_cents FROM shop.orders WHERE status = 'ready'
      EXCEPT SELECT order_id, amount_cents FROM payment_service.charges WHERE status = 'approved' AND NOT refunded)
     UNION
     (SELECT order_id, amount_cents FROM payment_service.charges WHERE status = 'approved' AND NOT refunded
      EXCEPT SELECT order_id, amount_cents FROM shop.orders WHERE status = 'ready')
     UNION
     (SELECT id, NULL::bigint FROM txfn.workflows WHERE name = 'checkout' AND status = 'SUCCESS'
      EXCEPT SELECT order_id, NULL::bigint FROM shop.orders WHERE status = 'ready')
     ORDER BY 1`,
  );
  const [money] = await rows<{ ready: string; revenue: string; charged: string }>(
    c,
    `SELECT (SELECT count(*) FROM shop.orders WHERE status = 'ready') AS ready,
            (SELECT coalesce(sum(amount_cents), 0) FROM shop.orders WHERE status = 'ready') AS revenue,
            (SELECT coalesce(sum(amount_cents), 0) FROM payment_service.charges WHERE status = 'approved' AND NOT refunded) AS charged`,
  );
  const ledger = {
    readyOrders: count(money!.ready),
    revenueCents: count(money!.revenue),
    chargedCents: count(money!.charged),
    mismatchedOrders: [...new Set(diff.map((r) => r.order_id))],
  };
  if (ledger.mismatchedOrders.length) failures.push(`orders and ledger disagree on ${ledger.mismatchedOrders.join(", ")}`);
  if (ledger.revenueCents !== ledger.chargedCents) failures.push(`orders total ${ledger.revenueCents} cents, the ledger ${ledger.chargedCents}`);

  return { workflows: counts, recovered, invocations, payments, stock: stockReport, ledger, apiMismatches, failures };
}
