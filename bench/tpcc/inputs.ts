/**
 * bench/tpcc: the terminals' inputs, drawn by TPC-C's rules (clauses 2.4.1 and 2.5.1) from a
 * seeded PRNG, so a test can replay the same sequence against every implementation.
 */
import { lastName, type NewOrderInput, type OrderLineInput, type PaymentInput, type Scale } from "./scale.ts";

/** A seeded PRNG (sfc32 seeded through splitmix32): uniform doubles in [0, 1). */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  const split = () => {
    s = (s + 0x9e3779b9) | 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = split(), b = split(), c = split(), d = split();
  return () => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
}

/** The run-time constants C of NURand (TPC-C 2.1.6), one per field. */
export interface NURandConstants {
  cLast: number;
  cId: number;
  olIId: number;
}

/** Uniform integer in [lo, hi]. */
export function uniform(rand: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rand() * (hi - lo + 1));
}

/** NURand(A, x, y) = (((random(0, A) | random(x, y)) + C) % (y − x + 1)) + x (TPC-C 2.1.6). */
export function nurand(rand: () => number, a: number, c: number, x: number, y: number): number {
  return (((uniform(rand, 0, a) | uniform(rand, x, y)) + c) % (y - x + 1)) + x;
}

/** One transaction a terminal submits. */
export type Transaction = { kind: "newOrder"; input: NewOrderInput; rollback: boolean } | { kind: "payment"; input: PaymentInput };

/** Shares of the mix: New-Order 45, Payment 43 (TPC-C 5.2.3's minimum shares of the full mix). */
export const MIX = { newOrder: 45, payment: 43 } as const;

/**
 * A terminal: draws transactions for its home warehouse by TPC-C's rules.
 * `next()` picks New-Order or Payment by MIX; `newOrder()` / `payment()` draw one of each.
 */
export class Terminal {
  private readonly rand: () => number;

  constructor(
    readonly scale: Scale,
    readonly homeWarehouse: number,
    readonly constants: NURandConstants,
    seed: number,
  ) {
    this.rand = prng(seed);
  }

  next(): Transaction {
    return uniform(this.rand, 1, MIX.newOrder + MIX.payment) <= MIX.newOrder ? this.newOrder() : this.payment();
  }

  /** New-Order (2.4.1): 5–15 distinct items by NURand, 1% with an unused item id last (rolled back), 1% remote supply lines. */
  newOrder(): Transaction {
    const s = this.scale;
    const r = this.rand;
    const count = uniform(r, 5, 15);
    const rollback = uniform(r, 1, 100) === 1;
    const ids = new Set<number>();
    while (ids.size < (rollback ? count - 1 : count)) ids.add(nurand(r, s.aItem, this.constants.olIId, 1, s.items));
    const lines: OrderLineInput[] = [...ids].map((i_id) => ({
      i_id,
      supply_w_id: s.warehouses > 1 && uniform(r, 1, 100) === 1 ? this.otherWarehouse() : this.homeWarehouse,
      qty: uniform(r, 1, 10),
    }));
    if (rollback) lines.push({ i_id: s.items + 1, supply_w_id: this.homeWarehouse, qty: uniform(r, 1, 10) }); // an unused item id
    lines.sort((a, b) => a.i_id - b.i_id);
    return {
      kind: "newOrder",
      rollback,
      input: { w_id: this.homeWarehouse, d_id: uniform(r, 1, s.districts), c_id: nurand(r, s.aCustomer, this.constants.cId, 1, s.customers), lines },
    };
  }

  /** Payment (2.5.1): 85% home district's customer, 15% a remote warehouse's; 60% by last name; $1.00–$5,000.00. */
  payment(): Transaction {
    const s = this.scale;
    const r = this.rand;
    const d_id = uniform(r, 1, s.districts);
    const home = s.warehouses === 1 || uniform(r, 1, 100) <= 85;
    const byName = uniform(r, 1, 100) <= 60;
    return {
      kind: "payment",
      input: {
        w_id: this.homeWarehouse,
        d_id,
        c_w_id: home ? this.homeWarehouse : this.otherWarehouse(),
        c_d_id: home ? d_id : uniform(r, 1, s.districts),
        c_id: byName ? null : nurand(r, s.aCustomer, this.constants.cId, 1, s.customers),
        c_last: byName ? lastName(nurand(r, s.aLast, this.constants.cLast, 0, s.lastNames - 1)) : null,
        h_amount: uniform(r, 100, 500_000) / 100,
      },
    };
  }

  private otherWarehouse(): number {
    const w = uniform(this.rand, 1, this.scale.warehouses - 1);
    return w >= this.homeWarehouse ? w + 1 : w;
  }
}
