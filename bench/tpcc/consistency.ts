/**
 * bench/tpcc: TPC-C's consistency conditions 1–4 (clause 3.3.2), which must hold before and
 * after any mix of New-Order and Payment, and a digest of the tables for comparing the effects of
 * two implementations.
 */
import type pg from "pg";

/** The conditions, each a query returning the rows that violate it (none when it holds). */
export const CONDITIONS: Record<string, string> = {
  "1: W_YTD = sum(D_YTD)": `
    SELECT w_id, w_ytd, s FROM tpcc.warehouse JOIN (SELECT d_w_id, sum(d_ytd) AS s FROM tpcc.district GROUP BY d_w_id) d ON d_w_id = w_id
    WHERE w_ytd <> s`,
  "2: D_NEXT_O_ID − 1 = max(O_ID) = max(NO_O_ID)": `
    SELECT d_w_id, d_id FROM tpcc.district
    WHERE d_next_o_id - 1 IS DISTINCT FROM (SELECT max(o_id) FROM tpcc.orders WHERE o_w_id = d_w_id AND o_d_id = d_id)
       OR d_next_o_id - 1 IS DISTINCT FROM (SELECT max(no_o_id) FROM tpcc.new_order WHERE no_w_id = d_w_id AND no_d_id = d_id)`,
  "3: max(NO_O_ID) − min(NO_O_ID) + 1 = count(NEW-ORDER rows)": `
    SELECT no_w_id, no_d_id FROM tpcc.new_order GROUP BY no_w_id, no_d_id HAVING max(no_o_id) - min(no_o_id) + 1 <> count(*)`,
  "4: sum(O_OL_CNT) = count(ORDER-LINE rows)": `
    SELECT o_w_id, o_d_id FROM (SELECT o_w_id, o_d_id, sum(o_ol_cnt) AS n FROM tpcc.orders GROUP BY 1, 2) o
    FULL JOIN (SELECT ol_w_id, ol_d_id, count(*) AS n FROM tpcc.order_line GROUP BY 1, 2) l ON ol_w_id = o_w_id AND ol_d_id = o_d_id
    WHERE o.n IS DISTINCT FROM l.n`,
};

/** Checks conditions 1–4; returns the names of those violated (empty when all hold). */
export async function violatedConditions(c: pg.ClientBase): Promise<string[]> {
  const out: string[] = [];
  for (const [name, sql] of Object.entries(CONDITIONS)) if ((await c.query(sql)).rows.length > 0) out.push(name);
  return out;
}

/**
 * md5 of each TPC-C table's rows in key order, leaving out the times New-Order and Payment
 * stamp with now() (O_ENTRY_D, H_DATE): equal digests mean equal effects.
 */
export async function tableDigests(c: pg.ClientBase): Promise<Record<string, string>> {
  const tables: Record<string, string> = {
    warehouse: "SELECT t FROM tpcc.warehouse t ORDER BY w_id",
    district: "SELECT t FROM tpcc.district t ORDER BY d_w_id, d_id",
    customer: "SELECT t FROM tpcc.customer t ORDER BY c_w_id, c_d_id, c_id",
    history: "SELECT (h_c_id, h_c_d_id, h_c_w_id, h_d_id, h_w_id, h_amount, h_data) AS t FROM tpcc.history ORDER BY 1",
    orders: "SELECT (o_id, o_d_id, o_w_id, o_c_id, o_carrier_id, o_ol_cnt, o_all_local) AS t FROM tpcc.orders ORDER BY o_w_id, o_d_id, o_id",
    new_order: "SELECT t FROM tpcc.new_order t ORDER BY no_w_id, no_d_id, no_o_id",
    order_line: "SELECT t FROM tpcc.order_line t ORDER BY ol_w_id, ol_d_id, ol_o_id, ol_number",
    stock: "SELECT t FROM tpcc.stock t ORDER BY s_w_id, s_i_id",
  };
  const out: Record<string, string> = {};
  for (const [name, sql] of Object.entries(tables)) {
    const r = await c.query<{ md5: string }>(`SELECT md5(coalesce(string_agg(t::text, E'\\n'), '')) AS md5 FROM (${sql}) x`);
    out[name] = r.rows[0]!.md5;
  }
  return out;
}
