/**
 * The reference application: the checkout service of DESIGN's running example.
 *
 * An order reserves inventory, is marked paid, then ready to fulfil; releasing the inventory
 * is the undo of the reservation (a workflow's compensation). Tables: functions/migrations.
 */
import { transaction } from "txfn";

export interface OrderItem {
  sku: string;
  qty: number;
}

export interface Order {
  orderId: string;
  items: OrderItem[];
}

/** Thrown when a SKU has too little stock; recorded as the invocation's error. */
export class OutOfStock extends Error {
  constructor(
    readonly sku: string,
    readonly requested: number,
    readonly available: number,
  ) {
    super(`out of stock: ${sku} (requested ${requested}, available ${available})`);
    this.name = "OutOfStock";
  }
}

/** Thrown for an order in the wrong state for the step asked. */
export class OrderStateError extends Error {
  constructor(
    readonly orderId: string,
    readonly status: string | null,
    readonly expected: string,
  ) {
    super(`order ${orderId} is ${status ?? "unknown"}, expected ${expected}`);
    this.name = "OrderStateError";
  }
}

function checkItems(order: Order): void {
  if (!order || typeof order.orderId !== "string" || !Array.isArray(order.items) || order.items.length === 0) {
    throw new TypeError("input must be { orderId: string, items: [{ sku, qty }, …] } with at least one item");
  }
  for (const it of order.items) {
    if (typeof it.sku !== "string" || !Number.isInteger(it.qty) || it.qty <= 0) {
      throw new TypeError(`bad item ${JSON.stringify(it)}: sku must be a string and qty a positive integer`);
    }
  }
}

/**
 * Takes `qty` of each item out of stock (a select and an update per item).
 *
 * No `FOR UPDATE` on the select: under SERIALIZABLE a concurrent reservation of the same SKU
 * already fails with 40001 (and is retried), and in PL/V8's model every statement is its own
 * subtransaction, so a row locked by one statement and updated by the next costs PostgreSQL a
 * MultiXact per row (measured: about 20 µs per item).
 */
export const reserveInventory = transaction(
  { isolation: "serializable" },
  (ctx, order: Order): { orderId: string; reserved: true } => {
    checkItems(order);
    for (const it of order.items) {
      const [row] = ctx.query<{ stock: number }>("SELECT stock FROM shop.inventory WHERE sku = $1", [it.sku]);
      if (!row || row.stock < it.qty) throw new OutOfStock(it.sku, it.qty, row?.stock ?? 0);
      ctx.execute("UPDATE shop.inventory SET stock = stock - $1 WHERE sku = $2", [it.qty, it.sku]);
    }
    return { orderId: order.orderId, reserved: true };
  },
);

/** The undo of reserveInventory: puts the items back in stock. */
export const releaseInventory = transaction({ isolation: "serializable" }, (ctx, order: Order): { orderId: string; released: true } => {
  checkItems(order);
  for (const it of order.items) {
    const n = ctx.execute("UPDATE shop.inventory SET stock = stock + $1 WHERE sku = $2", [it.qty, it.sku]);
    if (n !== 1) throw new Error(`unknown sku ${it.sku}`);
  }
  return { orderId: order.orderId, released: true };
});

/** Records the payment of an order (creates the order row). */
export const markPaid = transaction(
  { isolation: "serializable" },
  (ctx, input: { orderId: string; amountCents: number }): { orderId: string; status: "paid"; paidAt: Date } => {
    const [prior] = ctx.query<{ status: string }>("SELECT status FROM shop.orders WHERE order_id = $1", [input.orderId]);
    if (prior) throw new OrderStateError(input.orderId, prior.status, "no order yet");
    const paidAt = new Date(); // pinned: the same on replay
    ctx.execute("INSERT INTO shop.orders (order_id, status, amount_cents, paid_at) VALUES ($1, 'paid', $2, $3)", [
      input.orderId,
      input.amountCents,
      paidAt,
    ]);
    return { orderId: input.orderId, status: "paid", paidAt };
  },
);

/** Moves a paid order to ready-to-fulfil. */
export const markReadyToFulfil = transaction(
  { isolation: "serializable" },
  (ctx, input: { orderId: string }): { orderId: string; status: "ready" } => {
    // new Date() is pinned (the same on replay); SQL now() is not: a replay would write another ready_at.
    const readyAt = new Date();
    const n = ctx.execute("UPDATE shop.orders SET status = 'ready', ready_at = $2 WHERE order_id = $1 AND status = 'paid'", [
      input.orderId,
      readyAt,
    ]);
    if (n !== 1) {
      const [row] = ctx.query<{ status: string }>("SELECT status FROM shop.orders WHERE order_id = $1", [input.orderId]);
      throw new OrderStateError(input.orderId, row?.status ?? null, "paid");
    }
    return { orderId: input.orderId, status: "ready" };
  },
);

/** Reads an order and its stock levels (read-only). */
export const orderStatus = transaction(
  { isolation: "repeatable read", readOnly: true },
  (ctx, input: { orderId: string }): { orderId: string; status: string | null } => {
    const [row] = ctx.query<{ status: string }>("SELECT status FROM shop.orders WHERE order_id = $1", [input.orderId]);
    return { orderId: input.orderId, status: row?.status ?? null };
  },
);
