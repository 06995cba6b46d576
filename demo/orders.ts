/**
 * The demo's order generator: a fixed seed gives the same orders, SKU popularity and stock
 * levels on every run, so runs are comparable and the end-to-end test can recompute them.
 *
 * Orders have 1–3 items over `skus` SKUs whose popularity falls off with their number (sku-001
 * is the most wanted). Stock is set from the generated demand: the scarce SKUs (the three most
 * popular and every seventh) get about half of what is asked for them, so they run out mid-run
 * whatever the order count; the others get more than enough. Some cards are declined (the saga
 * releases the stock), and every twentieth order is submitted twice with one Idempotency-Key (a client
 * retry or a double click).
 */
import type { CheckoutInput } from "../functions/workflows/checkout.ts";

export interface PlanOptions {
  orders: number;
  /** SKUs used, sku-001…; at most 100 (the reference app's seed). */
  skus: number;
  seed: number;
}

export interface DemoOrder {
  /** The order id, the workflow id and the Idempotency-Key. */
  id: string;
  input: CheckoutInput;
  /** Sent twice at once with the same key. */
  duplicate: boolean;
}

export interface OrderPlan {
  orders: DemoOrder[];
  /** The stock each used SKU starts with. */
  stock: Map<string, number>;
  /** SKUs given less stock than their demand. */
  scarce: string[];
  /** Units asked per SKU over all orders. */
  demand: Map<string, number>;
}

export const DECLINE_RATE = 0.08;
/** Every this-many-th order is also submitted a second time (order 7, 27, 47, …). */
export const DUPLICATE_EVERY = 20;

/** mulberry32: a small, fast, well-mixed 32-bit PRNG. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const skuName = (n: number): string => `sku-${String(n).padStart(3, "0")}`;

/** Price of a SKU in cents: 5.00 to 49.99, fixed per SKU. */
export const priceCents = (n: number): number => 500 + ((n * 7919) % 4500);

function pickWeighted(random: () => number, weights: number[]): number {
  const total = weights.reduce((a, b) => a + b, 0);
  let r = random() * total;
  for (let i = 0; i < weights.length; i++) {
    r -= weights[i]!;
    if (r < 0) return i;
  }
  return weights.length - 1;
}

/** The orders and stock levels of one demo run (the same for the same options). */
export function planOrders(options: PlanOptions): OrderPlan {
  if (!Number.isInteger(options.skus) || options.skus < 5 || options.skus > 100) throw new Error("skus must be an integer from 5 to 100");
  const random = prng(options.seed);
  const popularity = Array.from({ length: options.skus }, (_, i) => 1 / Math.pow(i + 1, 0.8));
  const orders: DemoOrder[] = [];
  const demand = new Map<string, number>();
  const width = Math.max(4, String(options.orders).length);
  for (let i = 1; i <= options.orders; i++) {
    const count = 1 + pickWeighted(random, [50, 35, 15]);
    const chosen = new Set<number>();
    while (chosen.size < count) chosen.add(1 + pickWeighted(random, popularity));
    const items = [...chosen]
      .sort((a, b) => a - b)
      .map((n) => ({ sku: skuName(n), qty: 1 + pickWeighted(random, [60, 30, 10]) }));
    let amountCents = 0;
    for (const it of items) {
      amountCents += priceCents(Number(it.sku.slice(4))) * it.qty;
      demand.set(it.sku, (demand.get(it.sku) ?? 0) + it.qty);
    }
    const card = random() < DECLINE_RATE ? "declined" : `tok_${Math.floor(random() * 1e6).toString(36)}`;
    const id = `order-${String(i).padStart(width, "0")}`;
    orders.push({ id, input: { order: { orderId: id, items }, amountCents, card }, duplicate: i % DUPLICATE_EVERY === 7 % DUPLICATE_EVERY });
  }
  const stock = new Map<string, number>();
  const scarce: string[] = [];
  for (let n = 1; n <= options.skus; n++) {
    const sku = skuName(n);
    const asked = demand.get(sku) ?? 0;
    const isScarce = asked >= 4 && (n <= 3 || n % 7 === 0);
    if (isScarce) scarce.push(sku);
    stock.set(sku, isScarce ? Math.floor(asked / 2) : asked + 20);
  }
  return { orders, stock, scarce, demand };
}
