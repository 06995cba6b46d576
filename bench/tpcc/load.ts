/**
 * bench/tpcc: fills the TPC-C tables by the data-generation rules of TPC-C 4.3.3.1, scaled as
 * `Scale` says, with INSERT … SELECT in the server (one session, seeded: the same seed gives the
 * same rows). Random strings are windows of one random alphanumeric pool.
 */
import type pg from "pg";
import type { NURandConstants } from "./inputs.ts";
import { prng, uniform } from "./inputs.ts";
import type { Scale } from "./scale.ts";

const POOL = 4096;

/** A random a-string of lo..hi characters (an SQL expression over `pool.p`). */
const astr = (lo: number, hi: number) =>
  `substr(pool.p, 1 + floor(random() * ${POOL - hi})::int, ${lo} + floor(random() * ${hi - lo + 1})::int)`;
/** A random n-string (digits) of exactly n characters. */
const nstr = (n: number) => `lpad(floor(random() * 1e${n})::bigint::text, ${n}, '0')`;
/** A random two-letter state. */
const STATE = "chr(65 + floor(random() * 26)::int) || chr(65 + floor(random() * 26)::int)";
/** Uniform integer in [lo, hi]. */
const rint = (lo: number, hi: number) => `(${lo} + floor(random() * ${hi - lo + 1})::int)`;
/** An a-string of 26..50 characters, 10% of them with "ORIGINAL" at a random position (I_DATA, S_DATA). */
const dataWithOriginal = `(SELECT CASE WHEN random() < 0.1 THEN overlay(s PLACING 'ORIGINAL' FROM 1 + floor(random() * (length(s) - 7))::int FOR 8) ELSE s END
                           FROM (SELECT ${astr(26, 50)} AS s) z)`;
/** The random pool: a CTE every insert joins. */
const WITH_POOL = `WITH pool AS (SELECT string_agg(substr('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789', 1 + floor(random() * 62)::int, 1), '') AS p
                                 FROM generate_series(1, ${POOL}))`;

/**
 * Loads every table for `scale` on `client` (which must not be in a transaction); returns the
 * NURand constants the load used, which the terminals must use too (C_LAST's C is shared).
 * Provenance capture should be off while loading (it would record every row).
 */
export async function loadData(client: pg.ClientBase, scale: Scale, seed = 1): Promise<NURandConstants> {
  const r = prng(seed);
  const constants: NURandConstants = { cLast: uniform(r, 0, scale.aLast), cId: uniform(r, 0, scale.aCustomer), olIId: uniform(r, 0, scale.aItem) };
  const { warehouses: W, districts: D, customers: C, items: I, lastNames: L } = scale;
  const delivered = Math.round(C * 0.7); // orders 1..delivered are delivered; the rest are new orders
  const q = async (sql: string, params: unknown[] = []) => client.query(sql, params);

  await q("SELECT setseed($1)", [((seed % 1000) / 1000) * 2 - 1]);
  await q(`INSERT INTO tpcc.item (i_id, i_im_id, i_name, i_price, i_data)
           ${WITH_POOL}
           SELECT i, ${rint(1, 10_000)}, ${astr(14, 24)}, ${rint(100, 10_000)} / 100.0, ${dataWithOriginal}
           FROM pool, generate_series(1, ${I}) i`);
  await q(`INSERT INTO tpcc.warehouse (w_id, w_name, w_street_1, w_street_2, w_city, w_state, w_zip, w_tax, w_ytd)
           ${WITH_POOL}
           SELECT w, ${astr(6, 10)}, ${astr(10, 20)}, ${astr(10, 20)}, ${astr(10, 20)}, ${STATE}, ${nstr(4)} || '11111',
                  floor(random() * 2001) / 10000.0, 300000.00
           FROM pool, generate_series(1, ${W}) w`);
  await q(`INSERT INTO tpcc.stock (s_i_id, s_w_id, s_quantity, s_dist_01, s_dist_02, s_dist_03, s_dist_04, s_dist_05, s_dist_06,
                                   s_dist_07, s_dist_08, s_dist_09, s_dist_10, s_ytd, s_order_cnt, s_remote_cnt, s_data)
           ${WITH_POOL}
           SELECT i, w, ${rint(10, 100)}, ${Array.from({ length: 10 }, () => astr(24, 24)).join(", ")}, 0, 0, 0, ${dataWithOriginal}
           FROM pool, generate_series(1, ${W}) w, generate_series(1, ${I}) i`);
  await q(`INSERT INTO tpcc.district (d_id, d_w_id, d_name, d_street_1, d_street_2, d_city, d_state, d_zip, d_tax, d_ytd, d_next_o_id)
           ${WITH_POOL}
           SELECT d, w, ${astr(6, 10)}, ${astr(10, 20)}, ${astr(10, 20)}, ${astr(10, 20)}, ${STATE}, ${nstr(4)} || '11111',
                  floor(random() * 2001) / 10000.0, 30000.00, ${C + 1}
           FROM pool, generate_series(1, ${W}) w, generate_series(1, ${D}) d`);
  // C_LAST: the first L customers of a district take the numbers 0..L-1 in order, the others NURand(A, 0, L-1).
  const syllable = (expr: string) => `(ARRAY['BAR','OUGHT','ABLE','PRI','PRES','ESE','ANTI','CALLY','ATION','EING'])[(${expr}) + 1]`;
  const lastNumber = `CASE WHEN c <= ${L} THEN c - 1 ELSE ((floor(random() * ${scale.aLast + 1})::int | floor(random() * ${L})::int) + ${constants.cLast}) % ${L} END`;
  await q(`INSERT INTO tpcc.customer (c_id, c_d_id, c_w_id, c_first, c_middle, c_last, c_street_1, c_street_2, c_city, c_state, c_zip,
                                      c_phone, c_since, c_credit, c_credit_lim, c_discount, c_balance, c_ytd_payment, c_payment_cnt,
                                      c_delivery_cnt, c_data)
           ${WITH_POOL}
           SELECT c, d, w, ${astr(8, 16)}, 'OE', ${syllable("n / 100 % 10")} || ${syllable("n / 10 % 10")} || ${syllable("n % 10")},
                  ${astr(10, 20)}, ${astr(10, 20)}, ${astr(10, 20)}, ${STATE}, ${nstr(4)} || '11111', ${nstr(16)}, localtimestamp,
                  CASE WHEN random() < 0.1 THEN 'BC' ELSE 'GC' END, 50000.00, floor(random() * 5001) / 10000.0, -10.00, 10.00, 1, 0,
                  ${astr(300, 500)}
           FROM pool, generate_series(1, ${W}) w, generate_series(1, ${D}) d, generate_series(1, ${C}) c,
                LATERAL (SELECT ${lastNumber} AS n) ln`);
  await q(`INSERT INTO tpcc.history (h_c_id, h_c_d_id, h_c_w_id, h_d_id, h_w_id, h_date, h_amount, h_data)
           ${WITH_POOL}
           SELECT c, d, w, d, w, localtimestamp, 10.00, ${astr(12, 24)}
           FROM pool, generate_series(1, ${W}) w, generate_series(1, ${D}) d, generate_series(1, ${C}) c`);
  // Orders: customer ids a random permutation per district; 5..15 lines each.
  await q(`INSERT INTO tpcc.orders (o_id, o_d_id, o_w_id, o_c_id, o_entry_d, o_carrier_id, o_ol_cnt, o_all_local)
           SELECT row_number() OVER (PARTITION BY w, d ORDER BY random()), d, w, c, localtimestamp, NULL, ${rint(5, 15)}, 1
           FROM generate_series(1, ${W}) w, generate_series(1, ${D}) d, generate_series(1, ${C}) c`);
  await q(`UPDATE tpcc.orders SET o_carrier_id = ${rint(1, 10)} WHERE o_id <= ${delivered}`);
  await q(`INSERT INTO tpcc.order_line (ol_o_id, ol_d_id, ol_w_id, ol_number, ol_i_id, ol_supply_w_id, ol_delivery_d, ol_quantity,
                                        ol_amount, ol_dist_info)
           ${WITH_POOL}
           SELECT o.o_id, o.o_d_id, o.o_w_id, n, ${rint(1, I)}, o.o_w_id, CASE WHEN o.o_id <= ${delivered} THEN o.o_entry_d END, 5,
                  CASE WHEN o.o_id <= ${delivered} THEN 0.00 ELSE ${rint(1, 999_999)} / 100.0 END, ${astr(24, 24)}
           FROM pool, tpcc.orders o, generate_series(1, o.o_ol_cnt) n`);
  await q(`INSERT INTO tpcc.new_order (no_o_id, no_d_id, no_w_id) SELECT o_id, o_d_id, o_w_id FROM tpcc.orders WHERE o_id > ${delivered}`);
  await q("VACUUM (ANALYZE) tpcc.item, tpcc.warehouse, tpcc.stock, tpcc.district, tpcc.customer, tpcc.history, tpcc.orders, tpcc.new_order, tpcc.order_line");
  return constants;
}
