// The demo end to end (`npm run demo` without the set-up): demo/main.ts, reduced to 60 orders,
// against this file's database of the run's throwaway cluster. Its JSON summary must agree with
// the database: workflow outcomes, the payment ledger, stock, the replayed trace, the oversell
// race and its retroaction; and nothing it started may be left running.
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { planOrders } from "../demo/orders.ts";
import type { DemoSummary } from "../demo/summary.ts";
import { adminUrl, useTestDatabase } from "./support/database.ts";
import { runNode } from "./support/cli.ts";

const db = useTestDatabase();
const ORDERS = 60;
const logDir = mkdtempSync(join(tmpdir(), "txfn-demo-test-"));

afterAll(async () => {
  const c = new pg.Client({ connectionString: adminUrl("postgres") });
  await c.connect();
  try {
    await c.query(`DROP DATABASE IF EXISTS ${db.name}_oversell WITH (FORCE)`);
  } finally {
    await c.end();
  }
  rmSync(logDir, { recursive: true, force: true });
});

/** `npm run demo -- <args>` on this file's database, as a child process. */
const runDemo = (args: string[]) => runNode(["--import", "tsx", "demo/main.ts", ...args], { DATABASE_URL: db.url, NO_COLOR: "1" });

/** True when `pid` runs one of the demo's commands (a reused pid running something else does not count). */
function demoProcessAlive(pid: number): boolean {
  const cmdline = `/proc/${pid}/cmdline`;
  if (!existsSync(cmdline)) return false;
  try {
    const cmd = readFileSync(cmdline, "utf8");
    return /txfn\.js|payment-service|esbuild/.test(cmd);
  } catch {
    return false;
  }
}

describe("npm run demo (reduced)", () => {
  it(`${ORDERS} orders: the summary's numbers agree with the database, replay has no divergence, retroaction removes the oversell`, { timeout: 400_000 }, async () => {
    const run = await runDemo(["--orders", String(ORDERS), "--concurrency", "12", "--json", "--log-dir", logDir]);
    const lines = run.stdout.trim().split("\n");
    expect(run.status, `${run.stdout.slice(-4000)}\n${run.stderr.slice(-4000)}`).toBe(0);
    const s = JSON.parse(lines.at(-1)!) as DemoSummary;
    expect(s.ok).toBe(true);
    expect(s.database).toBe(db.name);

    // Every stage said what it was doing.
    for (let i = 1; i <= 12; i++) expect(run.stdout).toContain(`==> [${i}/12]`);

    // Workflows: the summary's counts are the database's.
    const c = s.checks!;
    const statuses = Object.fromEntries(
      (await db.query<{ status: string; n: string }>("SELECT status, count(*) AS n FROM txfn.workflows WHERE name = 'checkout' GROUP BY 1")).map((r) => [r.status, Number(r.n)]),
    );
    expect(c.workflows.total).toBe(ORDERS);
    expect(statuses.SUCCESS ?? 0).toBe(c.workflows.completed);
    expect(statuses.COMPENSATED ?? 0).toBe(c.workflows.compensated);
    expect(statuses.ERROR ?? 0).toBe(c.workflows.outOfStock);
    expect(statuses.PENDING ?? 0).toBe(0);
    expect(c.workflows.completed + c.workflows.compensated + c.workflows.outOfStock).toBe(ORDERS);
    expect(c.workflows.outOfStock).toBeGreaterThan(0); // some SKUs ran out
    expect(c.workflows.compensated).toBeGreaterThan(0); // some cards were declined
    const outOfStock = await db.query<{ n: string }>("SELECT count(*) AS n FROM txfn.workflows WHERE status = 'ERROR' AND error::text LIKE '%OutOfStock%'");
    expect(Number(outOfStock[0]!.n)).toBe(c.workflows.outOfStock);
    expect(s.load.api).toEqual({ completed: c.workflows.completed, compensated: c.workflows.compensated, "out of stock": c.workflows.outOfStock });
    expect(s.load.duplicates.sent).toBeGreaterThan(0);
    expect(s.load.duplicates.sameWorkflow).toBe(s.load.duplicates.sent);

    // The crash: the executor was SIGKILLed and restarted; the recovered count is the database's.
    expect(s.executor.killedPid).toBeGreaterThan(0);
    expect(s.executor.restartedPid).toBeGreaterThan(0);
    const recovered = await db.query<{ n: string }>("SELECT count(*) AS n FROM txfn.workflows WHERE attempts > 1");
    expect(Number(recovered[0]!.n)).toBe(c.recovered);

    // Exactly once: one invocation per step; the ledger; the orders.
    const inv = await db.query<{ n: string; steps: string }>(
      "SELECT count(*) AS n, count(DISTINCT (workflow_id, workflow_step)) AS steps FROM txfn.invocations WHERE workflow_id IS NOT NULL",
    );
    expect(Number(inv[0]!.n)).toBe(c.invocations.total);
    expect(Number(inv[0]!.steps)).toBe(c.invocations.total);
    expect(c.invocations.byFunction.reserveInventory).toBe(ORDERS);
    expect(c.invocations.byFunction.releaseInventory).toBe(c.workflows.compensated);
    expect(c.invocations.byFunction.markReadyToFulfil).toBe(c.workflows.completed);
    const ledger = await db.query<{ approved: string; declined: string; keys_ok: boolean; cents: string }>(
      `SELECT count(*) FILTER (WHERE status = 'approved' AND NOT refunded) AS approved, count(*) FILTER (WHERE status = 'declined') AS declined,
              bool_and(idempotency_key = order_id || ':2') AS keys_ok, coalesce(sum(amount_cents) FILTER (WHERE status = 'approved' AND NOT refunded), 0) AS cents
         FROM payment_service.charges`,
    );
    expect(Number(ledger[0]!.approved)).toBe(c.workflows.completed);
    expect(Number(ledger[0]!.declined)).toBe(c.workflows.compensated);
    expect(ledger[0]!.keys_ok).toBe(true);
    expect(Number(ledger[0]!.cents)).toBe(c.ledger.chargedCents);
    const orders = await db.query<{ n: string; cents: string }>("SELECT count(*) AS n, coalesce(sum(amount_cents), 0) AS cents FROM shop.orders WHERE status = 'ready'");
    expect(Number(orders[0]!.n)).toBe(c.workflows.completed);
    expect(Number(orders[0]!.cents)).toBe(c.ledger.revenueCents);
    expect(c.ledger.revenueCents).toBe(c.ledger.chargedCents);
    expect(c.payments.doublePayments).toBe(0);
    expect(c.failures).toEqual([]);

    // Stock: what the seeded plan stocked, minus the items of the completed orders.
    const plan = planOrders({ orders: ORDERS, skus: s.options.skus, seed: s.options.seed });
    const sold = new Map<string, number>();
    for (const w of await db.query<{ input: { order: { items: { sku: string; qty: number }[] } } }>("SELECT input FROM txfn.workflows WHERE status = 'SUCCESS'")) {
      for (const it of w.input.order.items) sold.set(it.sku, (sold.get(it.sku) ?? 0) + it.qty);
    }
    const stock = await db.query<{ sku: string; stock: number }>("SELECT sku, stock FROM shop.inventory WHERE sku = ANY($1)", [[...plan.stock.keys()]]);
    expect(stock).toHaveLength(plan.stock.size);
    for (const r of stock) expect(r.stock, r.sku).toBe(plan.stock.get(r.sku)! - (sold.get(r.sku) ?? 0));
    expect(c.stock.unitsSold).toBe([...sold.values()].reduce((a, b) => a + b, 0));
    expect(c.stock.soldOut.length).toBeGreaterThan(0);

    // Provenance: the sample row's versions are its captured changes.
    const versions = await db.query<{ n: string }>(
      `SELECT count(*) AS n FROM txfn.provenance p JOIN txfn.provenance_tables t ON t.id = p.table_id
        WHERE t.schema_name = 'shop' AND t.table_name = 'orders' AND p.key = jsonb_build_object('order_id', $1::text)`,
      [s.provenance!.key],
    );
    expect(s.provenance!.versions).toBe(Number(versions[0]!.n));
    expect(s.provenance!.versions).toBe(2);

    // Replay: the whole load's trace, zero divergences.
    const traced = await db.query<{ n: string }>("SELECT count(*) AS n FROM txfn.invocations WHERE started_at BETWEEN $1 AND $2", [s.load.from, s.load.to]);
    expect(s.replay!.invocations).toBe(Number(traced[0]!.n));
    expect(s.replay!.invocations).toBe(c.invocations.total);
    expect(s.replay!.divergences).toBe(0);
    expect(s.replay!.same).toBe(s.replay!.invocations);

    // The oversell: recorded in the sibling database, reproduced by replay, removed by retroaction.
    const o = s.oversell!;
    const oversell = new pg.Client({ connectionString: adminUrl(`${db.name}_oversell`) });
    await oversell.connect();
    try {
      const w = await oversell.query<{ stock: number; orders: string }>("SELECT stock, (SELECT count(*) FROM orders WHERE sku = 'widget') AS orders FROM inventory WHERE sku = 'widget'");
      expect(w.rows[0]!.stock).toBe(o.widgetStock);
      expect(Number(w.rows[0]!.orders)).toBe(o.widgetOrders);
      expect(o.widgetStock).toBeLessThan(0);
      const n = await oversell.query<{ n: string }>("SELECT count(*) AS n FROM txfn.invocations");
      expect(Number(n.rows[0]!.n)).toBe(o.invocations);
    } finally {
      await oversell.end();
    }
    expect(o.replay.divergences).toBe(0);
    expect(o.replay.checkOk).toBe(false);
    expect(o.replay.rows).toEqual([{ sku: "widget", stock: o.widgetStock }]);
    expect(o.retro.checkOk).toBe(true);
    expect(o.retro.nowFails).toBe(o.widgetOrders - 1);

    // Nothing left running: every process the demo started has exited; no scratch database left.
    expect(s.processes.length).toBeGreaterThanOrEqual(8);
    expect(s.processes.filter((p) => demoProcessAlive(p.pid))).toEqual([]);
    const admin = new pg.Client({ connectionString: adminUrl("postgres") });
    await admin.connect();
    try {
      const sessions = await admin.query("SELECT pid, application_name FROM pg_stat_activity WHERE datname IN ($1, $2)", [db.name, `${db.name}_oversell`]);
      expect(sessions.rows.filter((r: { application_name: string }) => /txfn|payment/.test(r.application_name) && !/vitest/.test(r.application_name))).toEqual([]);
    } finally {
      await admin.end();
    }

    // The explore commands are printed.
    expect(run.stdout).toContain("npx txfn workflow list");
    expect(run.stdout).toContain("npx txfn history shop.inventory");
  });
});
