/**
 * bench/tpcc: the scale of the database and the shapes of the two transactions' inputs and
 * outputs, shared by the loader, the input generator, every implementation and the checks.
 *
 * TPC-C (revision 5.11) is scaled down for a 2-core machine; every change is listed in
 * SCALE_NOTES, which the benchmark prints and writes with its results.
 */

/** Sizes of the database. TPC-C's values are in the comments. */
export interface Scale {
  /** Warehouses, 1 to 4 (TPC-C: any; the benchmark's unit of scale). */
  warehouses: number;
  /** Districts per warehouse (TPC-C: 10, kept). */
  districts: number;
  /** Customers per district (TPC-C: 3,000). */
  customers: number;
  /** Items, and stock rows per warehouse (TPC-C: 100,000). */
  items: number;
  /** Last-name numbers used, 0..lastNames−1 (TPC-C: 1,000, i.e. 3 customers per name). */
  lastNames: number;
  /** NURand's A for C_LAST, C_ID and OL_I_ID (TPC-C: 255, 1023, 8191), scaled with their ranges. */
  aLast: number;
  aCustomer: number;
  aItem: number;
}

/** The default scale: a tenth of TPC-C's items and customers, 4 warehouses. */
export function defaultScale(warehouses = 4): Scale {
  if (!Number.isInteger(warehouses) || warehouses < 1 || warehouses > 4) throw new Error(`warehouses must be 1 to 4, got ${warehouses}`);
  return { warehouses, districts: 10, customers: 300, items: 10_000, lastNames: 100, aLast: 31, aCustomer: 127, aItem: 1023 };
}

/** A small scale for correctness tests (same rules, fewer rows). */
export function testScale(warehouses = 2): Scale {
  return { warehouses, districts: 10, customers: 30, items: 1_000, lastNames: 10, aLast: 3, aCustomer: 15, aItem: 127 };
}

/** What differs from TPC-C, in words (printed by the benchmark and kept in its JSON). */
export function scaleNotes(s: Scale): string[] {
  return [
    `${s.warehouses} warehouse(s), ${s.districts} districts each (TPC-C: 10)`,
    `items and stock rows per warehouse: ${s.items.toLocaleString("en")} (TPC-C: 100,000)`,
    `customers per district: ${s.customers} (TPC-C: 3,000); initial orders per district: ${s.customers}, of which the last ${Math.round(s.customers * 0.3)} are new orders (TPC-C: 3,000 and 900)`,
    `last names: numbers 0..${s.lastNames - 1} (TPC-C: 0..999), so about 3 customers per name as in TPC-C`,
    `NURand A: C_LAST ${s.aLast}, C_ID ${s.aCustomer}, OL_I_ID ${s.aItem} (TPC-C: 255, 1023, 8191 — scaled with their ranges); C_LAST's run-time C equals the load-time C (the delta rule is defined for A = 255 only)`,
    `the items of one order are distinct and entered in item-id order (TPC-C draws them independently; sorted entry avoids stock-row deadlocks, distinct ids let every implementation use the same statements)`,
    `only New-Order and Payment, mixed 45:43 (TPC-C's minimum shares of the full mix); no Order-Status, Delivery, Stock-Level, no keying or think times`,
    `each client is a terminal with a fixed home warehouse (client i → warehouse 1 + i mod ${s.warehouses})`,
  ];
}

/** One order line as the terminal enters it. */
export interface OrderLineInput {
  i_id: number;
  supply_w_id: number;
  qty: number;
}

/** New-Order input (TPC-C 2.4.1): home warehouse, district, customer, 5–15 lines. */
export interface NewOrderInput {
  w_id: number;
  d_id: number;
  c_id: number;
  lines: OrderLineInput[];
}

/** Payment input (TPC-C 2.5.1): the customer by id or by last name; amount in dollars (2 decimals). */
export interface PaymentInput {
  w_id: number;
  d_id: number;
  c_w_id: number;
  c_d_id: number;
  c_id: number | null;
  c_last: string | null;
  h_amount: number;
}

/** One line of the New-Order output. */
export interface OrderLineOutput {
  supply_w_id: number;
  i_id: number;
  i_name: string;
  qty: number;
  s_quantity: number;
  brand: "B" | "G";
  i_price: number;
  ol_amount: number;
}

/** New-Order output (TPC-C 2.4.3.3). `total` = Σ ol_amount × (1 − c_discount) × (1 + w_tax + d_tax). */
export interface NewOrderOutput {
  w_id: number;
  d_id: number;
  c_id: number;
  o_id: number;
  c_last: string;
  c_credit: string;
  c_discount: number;
  w_tax: number;
  d_tax: number;
  ol_cnt: number;
  total: number;
  lines: OrderLineOutput[];
}

/** Payment output (TPC-C 2.5.3.3): the warehouse's, district's and customer's data after the payment. */
export interface PaymentOutput {
  w_id: number;
  d_id: number;
  c_w_id: number;
  c_d_id: number;
  c_id: number;
  h_amount: number;
  w_name: string;
  w_street_1: string;
  w_city: string;
  w_state: string;
  w_zip: string;
  d_name: string;
  d_street_1: string;
  d_city: string;
  d_state: string;
  d_zip: string;
  c_first: string;
  c_middle: string;
  c_last: string;
  c_street_1: string;
  c_city: string;
  c_state: string;
  c_zip: string;
  c_phone: string;
  c_since: string;
  c_credit: string;
  c_credit_lim: number;
  c_discount: number;
  c_balance: number;
  /** The first 200 characters of C_DATA for a bad-credit ("BC") customer, else null. */
  c_data: string | null;
}

/** The last-name syllables of TPC-C 4.3.2.3. */
export const SYLLABLES = ["BAR", "OUGHT", "ABLE", "PRI", "PRES", "ESE", "ANTI", "CALLY", "ATION", "EING"] as const;

/** C_LAST for a number 0..999: three syllables (TPC-C 4.3.2.3). */
export function lastName(n: number): string {
  return SYLLABLES[Math.floor(n / 100) % 10]! + SYLLABLES[Math.floor(n / 10) % 10]! + SYLLABLES[n % 10]!;
}
