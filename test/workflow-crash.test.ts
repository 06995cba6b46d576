// The workflow crash test: 200 checkout workflows (functions/workflows/checkout.ts) run by a
// `txfn worker` process that is killed with SIGKILL every few hundred milliseconds and restarted,
// against the fake payment service (its own process, misbehaving on purpose). Afterwards every
// workflow is terminal, stock and orders agree with the payment ledger, no transaction step ran
// twice, and every payment retry reused its idempotency key.
import { spawn, type ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WorkflowClient } from "../workflows/index.ts";
import { useTestDatabase } from "./support/database.ts";
import { deployProject } from "./support/deployed.ts";
import { startWorker, type WorkerProcess } from "./support/worker.ts";

const db = useTestDatabase();
const TOTAL = 200;
let client: WorkflowClient;
let payments: ChildProcess | undefined;
let paymentUrl = "";
let worker: WorkerProcess | undefined;

interface Item {
  sku: string;
  qty: number;
}

/** Deterministic orders: 1–3 items over 20 SKUs (so orders contend), every 10th card declined. */
function orderOf(i: number): { items: Item[]; amountCents: number; card: string } {
  let s = (i * 2654435761) >>> 0;
  const next = (n: number) => ((s = (s * 1103515245 + 12345) >>> 0) >>> 8) % n;
  const skus = new Set<number>();
  const count = 1 + next(3);
  while (skus.size < count) skus.add(1 + next(20));
  const items = [...skus].sort((a, b) => a - b).map((n) => ({ sku: `sku-${String(n).padStart(3, "0")}`, qty: 1 + next(3) }));
  return { items, amountCents: 100 * (1 + next(50)), card: i % 10 === 0 ? "declined" : "ok" };
}

beforeAll(async () => {
  await deployProject(db.url, "functions", { schemas: false });
  client = new WorkflowClient({ databaseUrl: db.url });
  // The "external" payment service: its own process, with injected faults (503 before and after
  // charging, hangs past the step timeout, slow answers).
  const faults = { failRate: 0.1, failAfterChargeRate: 0.1, hangRate: 0.01, slowRate: 0.2, slowMs: 100 };
  payments = spawn(process.execPath, ["--import", "tsx", "functions/services/payment-service.ts", "--database-url", db.url, "--faults", JSON.stringify(faults)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  paymentUrl = await new Promise<string>((resolve, reject) => {
    let out = "";
    payments!.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /\{"listening":"([^"]+)"\}/.exec(out);
      if (m) resolve(m[1]!);
    });
    payments!.on("exit", (code) => reject(new Error(`payment service exited with ${code}`)));
  });
});

afterAll(async () => {
  await worker?.kill();
  payments?.kill("SIGKILL");
  await client?.close();
});

describe("workflow crash safety", () => {
  it(`${TOTAL} checkout workflows with the executor SIGKILLed every few hundred ms end consistent with the payment ledger`, { timeout: 600_000 }, async () => {
    const stock0 = new Map((await db.query<{ sku: string; stock: number }>("SELECT sku, stock FROM shop.inventory")).map((r) => [r.sku, r.stock]));
    for (let i = 0; i < TOTAL; i++) {
      const o = orderOf(i);
      await client.start("checkout", { order: { orderId: `order-${i}`, items: o.items }, amountCents: o.amountCents, card: o.card }, { id: `co-${i}`, allowUnregistered: true }); // no worker yet
    }
    const pending = async () => Number((await db.query<{ n: string }>("SELECT count(*) AS n FROM txfn.workflows WHERE status = 'PENDING'"))[0]!.n);
    let kills = 0;
    let lives = 0;
    const env = { TXFN_PAYMENT_URL: paymentUrl };
    const args = ["--executor-id", "crash", "--lease-ms", "3000", "--poll-ms", "100", "--concurrency", "40", "--max-recovery-attempts", "1000"];
    while ((await pending()) > 0) {
      if (++lives > 60) throw new Error("the workflows did not finish in 60 worker lives");
      worker = startWorker(db.url, "functions", args, env);
      await worker.ready;
      if (kills >= 20) {
        // Enough crashes: let the last worker drain what is left.
        while ((await pending()) > 0) await new Promise((r) => setTimeout(r, 100));
        break;
      }
      await new Promise((r) => setTimeout(r, 200 + Math.floor(Math.random() * 500)));
      await worker.kill("SIGKILL");
      kills++;
      if (process.env.TXFN_TEST_VERBOSE) console.log(`kill ${kills}: ${await pending()} pending`);
    }
    await worker?.kill("SIGTERM");

    // 1. Every workflow is terminal: SUCCESS, or COMPENSATED for a declined card.
    const wfs = await db.query<{ id: string; status: string; attempts: number }>("SELECT id, status, attempts FROM txfn.workflows WHERE name = 'checkout'");
    expect(wfs).toHaveLength(TOTAL);
    for (const w of wfs) {
      const i = Number(w.id.slice(3));
      expect(w.status, w.id).toBe(orderOf(i).card === "declined" ? "COMPENSATED" : "SUCCESS");
    }
    const recovered = wfs.filter((w) => w.attempts > 1).length;

    // 2. The ledger: one charge per order, keyed by the payment step's key; approved for SUCCESS.
    const charges = await db.query<{ idempotency_key: string; order_id: string; amount_cents: string; status: string; refunded: boolean; requests: number }>(
      "SELECT idempotency_key, order_id, amount_cents::text, status, refunded, requests FROM payment_service.charges",
    );
    expect(charges).toHaveLength(TOTAL);
    for (const c of charges) {
      const i = Number(c.order_id.slice(6));
      const o = orderOf(i);
      expect(c.idempotency_key).toBe(`co-${i}:2`);
      expect(c).toMatchObject({ amount_cents: String(o.amountCents), status: o.card === "declined" ? "declined" : "approved", refunded: false });
    }
    // 3. Every retry (after a 503, a lost reply, a hang, or a crash) reused the key.
    const keysPerOrder = await db.query<{ order_id: string; keys: string }>(
      "SELECT order_id, count(DISTINCT idempotency_key) AS keys FROM payment_service.requests WHERE kind = 'charge' GROUP BY order_id",
    );
    expect(keysPerOrder).toHaveLength(TOTAL);
    expect(keysPerOrder.every((r) => r.keys === "1")).toBe(true);
    const requests = await db.query<{ outcome: string; n: string }>("SELECT outcome, count(*) AS n FROM payment_service.requests GROUP BY outcome ORDER BY 1");
    const retried = charges.filter((c) => c.requests > 1).length;
    expect(retried).toBeGreaterThan(0);

    // 4. Orders and stock agree with the ledger: approved ⇔ ready order ⇔ stock taken.
    const orders = await db.query<{ order_id: string; status: string; amount_cents: string }>("SELECT order_id, status, amount_cents::text FROM shop.orders");
    const approved = new Set(charges.filter((c) => c.status === "approved").map((c) => c.order_id));
    expect(new Set(orders.map((o) => o.order_id))).toEqual(approved);
    expect(orders.every((o) => o.status === "ready")).toBe(true);
    const taken = new Map<string, number>();
    for (let i = 0; i < TOTAL; i++) {
      if (!approved.has(`order-${i}`)) continue;
      for (const it of orderOf(i).items) taken.set(it.sku, (taken.get(it.sku) ?? 0) + it.qty);
    }
    const stock1 = await db.query<{ sku: string; stock: number }>("SELECT sku, stock FROM shop.inventory");
    for (const r of stock1) expect(stock0.get(r.sku)! - r.stock, r.sku).toBe(taken.get(r.sku) ?? 0);

    // 5. No transaction step ran twice: one invocation per transaction step, and the steps recorded are exactly the plan.
    const inv = await db.query<{ workflow_id: string; fns: string }>(
      "SELECT workflow_id, string_agg(function, ',' ORDER BY workflow_step) AS fns FROM txfn.invocations WHERE workflow_id LIKE 'co-%' GROUP BY workflow_id",
    );
    expect(inv).toHaveLength(TOTAL);
    for (const r of inv) {
      const declined = orderOf(Number(r.workflow_id.slice(3))).card === "declined";
      expect(r.fns, r.workflow_id).toBe(declined ? "reserveInventory,releaseInventory" : "reserveInventory,markPaid,markReadyToFulfil");
    }
    const steps = await db.query<{ plan: string; n: string }>(
      `SELECT plan, count(*) AS n FROM (SELECT workflow_id, string_agg(name || ':' || status, ',' ORDER BY step) AS plan
       FROM txfn.workflow_steps WHERE workflow_id LIKE 'co-%' GROUP BY workflow_id) p GROUP BY plan ORDER BY plan`,
    );
    expect(steps).toEqual([
      { plan: "reserveInventory:ok,processPayment:error,releaseInventory:ok", n: String(TOTAL / 10) },
      { plan: "reserveInventory:ok,processPayment:ok,markPaid:ok,markReadyToFulfil:ok", n: String(TOTAL - TOTAL / 10) },
    ]);
    expect(kills).toBeGreaterThanOrEqual(3);
    console.log(
      `workflow crash test: ${TOTAL} workflows, ${kills} SIGKILLs over ${lives} worker lives, ${recovered} workflows recovered at least once, ` +
        `${retried} charges requested more than once (same key); payment requests by outcome: ${requests.map((r) => `${r.outcome} ${r.n}`).join(", ")}`,
    );
  });
});
