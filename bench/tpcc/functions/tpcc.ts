// bench/tpcc's transaction functions: TPC-C New-Order (row at a time and set at a time) and
// Payment, as a txfn user deploys them. The logic and SQL are ../logic.ts and ../sql.ts, which
// the node-pg and DBOS implementations run too. REPEATABLE READ (snapshot isolation, under which
// New-Order and Payment execute serializably: Fekete et al., TODS 2005), like every other variant.
import { transaction } from "txfn";
import { newOrderRows, newOrderSet, payment as paymentLogic, runSync } from "../logic.ts";
import type { NewOrderInput, NewOrderOutput, PaymentInput, PaymentOutput } from "../scale.ts";

/** New-Order, one statement per item read, stock update and order line (TPC-C's profile as written). */
export const newOrder = transaction({ isolation: "repeatable read" }, (ctx, input: NewOrderInput): NewOrderOutput =>
  runSync(newOrderRows(input), (sql, params) => ctx.query(sql, params)),
);

/** New-Order with one statement for all items, one for all stock rows, one for all order lines. */
export const newOrderSetAtATime = transaction({ isolation: "repeatable read" }, (ctx, input: NewOrderInput): NewOrderOutput =>
  runSync(newOrderSet(input), (sql, params) => ctx.query(sql, params)),
);

/** Payment by customer id or last name. */
export const payment = transaction({ isolation: "repeatable read" }, (ctx, input: PaymentInput): PaymentOutput =>
  runSync(paymentLogic(input), (sql, params) => ctx.query(sql, params)),
);
