/**
 * The reference checkout workflow (DESIGN's running example), run by `txfn worker functions`:
 *
 *   1. reserveInventory   transaction, exactly once        undo: releaseInventory (same input)
 *   2. processPayment     external step, at least once     undo: refundPayment (external)
 *      against the fake payment service (functions/services/payment-service.ts), with the
 *      step's stable idempotency key, so a retry or a recovery never charges twice
 *   3. markPaid           transaction
 *   4. markReadyToFulfil  transaction
 *
 * A declined card fails step 2 at once (NonRetryableError); the saga then releases the inventory
 * and the workflow ends COMPENSATED. The service's URL comes from TXFN_PAYMENT_URL.
 */
import { NonRetryableError, workflow, type StepContext } from "txfn";
import { markPaid, markReadyToFulfil, releaseInventory, reserveInventory, type Order } from "../checkout.ts";

export interface CheckoutInput {
  order: Order;
  amountCents: number;
  /** Card token; the fake service declines "declined". */
  card: string;
}

export interface CheckoutResult {
  orderId: string;
  chargeId: string;
  status: "ready";
}

interface Charge {
  chargeId: string;
  idempotencyKey: string;
}

function paymentUrl(): string {
  const url = process.env.TXFN_PAYMENT_URL;
  if (!url) throw new NonRetryableError("TXFN_PAYMENT_URL is not set: start the payment service (functions/services/payment-service.ts) and point the worker at it");
  return url;
}

async function post(path: string, body: unknown, signal: AbortSignal): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${paymentUrl()}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal,
  });
  return { status: res.status, json: (await res.json().catch(() => ({}))) as Record<string, unknown> };
}

/** Charges the order; 402 (declined) and 409 are final, anything else is retried with the same key. */
async function charge(step: StepContext, input: CheckoutInput): Promise<Charge> {
  const { status, json } = await post(
    "/charges",
    { idempotencyKey: step.idempotencyKey, orderId: input.order.orderId, amountCents: input.amountCents, card: input.card },
    step.signal,
  );
  if (status === 200) return { chargeId: String(json.chargeId), idempotencyKey: step.idempotencyKey };
  if (status === 402 || status === 409 || status === 400) throw new NonRetryableError(`payment refused (${status}): ${json.status ?? json.error}`, json);
  throw new Error(`payment service answered ${status}: ${json.error ?? ""}`);
}

async function refund(step: StepContext, paid: Charge): Promise<void> {
  const { status, json } = await post("/refunds", { idempotencyKey: paid.idempotencyKey }, step.signal);
  if (status !== 200) throw new Error(`refund of ${paid.chargeId} answered ${status}: ${json.error ?? ""}`);
}

export const checkout = workflow("checkout", async (ctx, input: CheckoutInput): Promise<CheckoutResult> => {
  const { order } = input;
  await ctx.transaction(reserveInventory, order, { compensate: releaseInventory });
  const paid = await ctx.step("processPayment", (step) => charge(step, input), {
    retries: 10,
    backoff: { initialMs: 50, factor: 2, maxMs: 1000 },
    timeoutMs: 3000,
    compensate: (c) => ctx.step("refundPayment", (step) => refund(step, c), { retries: 10, backoff: { initialMs: 50, maxMs: 1000 }, timeoutMs: 3000 }),
  });
  await ctx.transaction(markPaid, { orderId: order.orderId, amountCents: input.amountCents });
  await ctx.transaction(markReadyToFulfil, { orderId: order.orderId });
  return { orderId: order.orderId, chargeId: paid.chargeId, status: "ready" };
});
