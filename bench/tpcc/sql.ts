/**
 * bench/tpcc: the SQL of New-Order and Payment. Every JavaScript implementation (txfn, node-pg,
 * DBOS) runs exactly these texts through the same logic (logic.ts); the PL/pgSQL functions
 * (plpgsql.sql) are written by hand with the same statements.
 *
 * Values come back as float8, int4 and text only, so every driver converts them to the same
 * JavaScript values (node-pg and postgres.js would return numeric as strings, PL/V8 as doubles).
 * Read-modify-write is done in one UPDATE … RETURNING (no SELECT … FOR UPDATE before it).
 */

/** New-Order: the customer's discount, last name and credit with the warehouse's tax (TPC-C's sample program joins them too). */
export const CUSTOMER_WAREHOUSE =
  "SELECT c_discount::float8 AS c_discount, c_last, c_credit, w_tax::float8 AS w_tax" +
  " FROM tpcc.customer, tpcc.warehouse WHERE w_id = $1::int AND c_w_id = w_id AND c_d_id = $2::int AND c_id = $3::int";

/** New-Order: takes the district's next order number. */
export const DISTRICT_NEXT_ORDER =
  "UPDATE tpcc.district SET d_next_o_id = d_next_o_id + 1 WHERE d_w_id = $1::int AND d_id = $2::int" +
  " RETURNING d_next_o_id - 1 AS o_id, d_tax::float8 AS d_tax";

export const INSERT_ORDER =
  "INSERT INTO tpcc.orders (o_id, o_d_id, o_w_id, o_c_id, o_entry_d, o_carrier_id, o_ol_cnt, o_all_local)" +
  " VALUES ($1::int, $2::int, $3::int, $4::int, now(), NULL, $5::int, $6::int)";

export const INSERT_NEW_ORDER = "INSERT INTO tpcc.new_order (no_o_id, no_d_id, no_w_id) VALUES ($1::int, $2::int, $3::int)";

/** The district's S_DIST_xx column for district $n (an expression: one SQL text for every district). */
const distInfo = (n: string) =>
  `CASE ${n} WHEN 1 THEN s_dist_01 WHEN 2 THEN s_dist_02 WHEN 3 THEN s_dist_03 WHEN 4 THEN s_dist_04 WHEN 5 THEN s_dist_05` +
  ` WHEN 6 THEN s_dist_06 WHEN 7 THEN s_dist_07 WHEN 8 THEN s_dist_08 WHEN 9 THEN s_dist_09 ELSE s_dist_10 END`;

// --- New-Order, row at a time (TPC-C's profile: per line an item read, a stock update, an insert)

export const ITEM = "SELECT i_price::float8 AS i_price, i_name, i_data FROM tpcc.item WHERE i_id = $1::int";

/** TPC-C 2.4.2.2: S_QUANTITY − qty if that leaves at least 10, else + 91; S_YTD, S_ORDER_CNT, S_REMOTE_CNT. */
export const STOCK =
  "UPDATE tpcc.stock SET s_quantity = CASE WHEN s_quantity >= $3::int + 10 THEN s_quantity - $3::int ELSE s_quantity - $3::int + 91 END," +
  " s_ytd = s_ytd + $3::int, s_order_cnt = s_order_cnt + 1, s_remote_cnt = s_remote_cnt + $4::int" +
  ` WHERE s_i_id = $1::int AND s_w_id = $2::int RETURNING s_quantity, s_data, ${distInfo("$5::int")} AS dist_info`;

export const INSERT_ORDER_LINE =
  "INSERT INTO tpcc.order_line (ol_o_id, ol_d_id, ol_w_id, ol_number, ol_i_id, ol_supply_w_id, ol_delivery_d, ol_quantity, ol_amount, ol_dist_info)" +
  " VALUES ($1::int, $2::int, $3::int, $4::int, $5::int, $6::int, NULL, $7::int, $7::int * $8::numeric, $9::text)";

// --- New-Order, set at a time (the same reads and writes in three statements for all lines)

export const ITEMS = "SELECT i_id, i_price::float8 AS i_price, i_name, i_data FROM tpcc.item WHERE i_id = ANY ($1::int[])";

export const STOCKS =
  "UPDATE tpcc.stock SET s_quantity = CASE WHEN s_quantity >= x.qty + 10 THEN s_quantity - x.qty ELSE s_quantity - x.qty + 91 END," +
  " s_ytd = s_ytd + x.qty, s_order_cnt = s_order_cnt + 1, s_remote_cnt = s_remote_cnt + CASE WHEN x.w_id <> $4::int THEN 1 ELSE 0 END" +
  " FROM unnest($1::int[], $2::int[], $3::int[]) AS x (i_id, w_id, qty) WHERE s_i_id = x.i_id AND s_w_id = x.w_id" +
  ` RETURNING s_i_id, s_w_id, s_quantity, s_data, ${distInfo("$5::int")} AS dist_info`;

export const INSERT_ORDER_LINES =
  "INSERT INTO tpcc.order_line (ol_o_id, ol_d_id, ol_w_id, ol_number, ol_i_id, ol_supply_w_id, ol_delivery_d, ol_quantity, ol_amount, ol_dist_info)" +
  " SELECT $1::int, $2::int, $3::int, x.n::int, x.i, x.w, NULL, x.q, x.q * x.p, x.d" +
  " FROM unnest($4::int[], $5::int[], $6::int[], $7::numeric[], $8::text[]) WITH ORDINALITY AS x (i, w, q, p, d, n)";

// --- Payment (TPC-C 2.5.2.2)

export const WAREHOUSE_PAY =
  "UPDATE tpcc.warehouse SET w_ytd = w_ytd + $2::numeric WHERE w_id = $1::int" +
  " RETURNING w_name, w_street_1, w_city, w_state, w_zip";

export const DISTRICT_PAY =
  "UPDATE tpcc.district SET d_ytd = d_ytd + $3::numeric WHERE d_w_id = $1::int AND d_id = $2::int" +
  " RETURNING d_name, d_street_1, d_city, d_state, d_zip";

/** Customers with a last name, by first name: the payment goes to the one in the middle (position ⌈n/2⌉). */
export const CUSTOMERS_BY_NAME = "SELECT c_id FROM tpcc.customer WHERE c_w_id = $1::int AND c_d_id = $2::int AND c_last = $3::text ORDER BY c_first";

/** The payment; a bad-credit customer's C_DATA gets the payment's ids and amount in front, kept to 500 characters. */
export const CUSTOMER_PAY =
  "UPDATE tpcc.customer SET c_balance = c_balance - $4::numeric, c_ytd_payment = c_ytd_payment + $4::numeric," +
  " c_payment_cnt = c_payment_cnt + 1," +
  " c_data = CASE WHEN c_credit = 'BC' THEN left(format('%s %s %s %s %s %s | ', c_id, c_d_id, c_w_id, $5::int, $6::int, $4::numeric) || c_data, 500) ELSE c_data END" +
  " WHERE c_w_id = $1::int AND c_d_id = $2::int AND c_id = $3::int" +
  " RETURNING c_first, c_middle, c_last, c_street_1, c_city, c_state, c_zip, c_phone, c_since::text AS c_since, c_credit," +
  " c_credit_lim::float8 AS c_credit_lim, c_discount::float8 AS c_discount, c_balance::float8 AS c_balance," +
  " CASE WHEN c_credit = 'BC' THEN left(c_data, 200) END AS c_data";

export const INSERT_HISTORY =
  "INSERT INTO tpcc.history (h_c_id, h_c_d_id, h_c_w_id, h_d_id, h_w_id, h_date, h_amount, h_data)" +
  " VALUES ($1::int, $2::int, $3::int, $4::int, $5::int, now(), $6::numeric, $7::text)";
