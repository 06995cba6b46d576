-- bench/tpcc: the hand-written PL/pgSQL implementation (no recording: the limit) and the table
-- the node-pg implementation records its idempotency rows in. Same statements as sql.ts, same
-- input and output JSON as the JavaScript implementations (logic.ts). Installed by setup.ts.

CREATE SCHEMA tpcc_baseline;

-- node-pg's idempotency row: written in the transaction with the output, or after a rollback
-- with the error (what txfn records in txfn.invocations and DBOS in dbos.transaction_completion).
CREATE TABLE tpcc_baseline.idempotency (
  key        text PRIMARY KEY,
  output     jsonb,
  error      jsonb,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- The New-Order output (the same JSON as logic.ts builds).
CREATE FUNCTION tpcc_baseline.new_order_output(input jsonb, o_id integer, c_last text, c_credit text, c_discount float8,
                                               w_tax float8, d_tax float8, lines jsonb, total float8) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
  SELECT jsonb_build_object('w_id', (input->>'w_id')::int, 'd_id', (input->>'d_id')::int, 'c_id', (input->>'c_id')::int,
    'o_id', o_id, 'c_last', c_last, 'c_credit', c_credit, 'c_discount', c_discount, 'w_tax', w_tax, 'd_tax', d_tax,
    'ol_cnt', jsonb_array_length(input->'lines'), 'total', total * (1 - c_discount) * (1 + w_tax + d_tax), 'lines', lines)
$$;

-- New-Order, row at a time: per line an item read, a stock update, an order-line insert.
CREATE FUNCTION tpcc_baseline.new_order(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_w integer := (input->>'w_id')::int;
  v_d integer := (input->>'d_id')::int;
  v_c integer := (input->>'c_id')::int;
  v_o_id integer; v_discount float8; v_last text; v_credit text; v_w_tax float8; v_d_tax float8;
  l jsonb;
  n integer := 0;
  v_i integer; v_sw integer; v_qty integer;
  v_price float8; v_name text; v_idata text;
  v_squant integer; v_sdata text; v_dist text;
  v_sum float8 := 0;
  v_amount float8;
  v_lines jsonb := '[]';
BEGIN
  SELECT c_discount::float8, c_last, c_credit, w_tax::float8 INTO v_discount, v_last, v_credit, v_w_tax
    FROM tpcc.customer, tpcc.warehouse WHERE w_id = v_w AND c_w_id = w_id AND c_d_id = v_d AND c_id = v_c;
  IF NOT FOUND THEN RAISE EXCEPTION 'tpcc: no customer %/%/%', v_w, v_d, v_c; END IF;
  UPDATE tpcc.district SET d_next_o_id = d_next_o_id + 1 WHERE d_w_id = v_w AND d_id = v_d
    RETURNING d_next_o_id - 1, d_tax::float8 INTO v_o_id, v_d_tax;
  INSERT INTO tpcc.orders (o_id, o_d_id, o_w_id, o_c_id, o_entry_d, o_carrier_id, o_ol_cnt, o_all_local)
    VALUES (v_o_id, v_d, v_w, v_c, now(), NULL, jsonb_array_length(input->'lines'),
            CASE WHEN jsonb_path_exists(input, '$.lines[*] ? (@.supply_w_id != $w)', jsonb_build_object('w', v_w)) THEN 0 ELSE 1 END);
  INSERT INTO tpcc.new_order (no_o_id, no_d_id, no_w_id) VALUES (v_o_id, v_d, v_w);
  FOR l IN SELECT * FROM jsonb_array_elements(input->'lines') LOOP
    n := n + 1;
    v_i := (l->>'i_id')::int; v_sw := (l->>'supply_w_id')::int; v_qty := (l->>'qty')::int;
    SELECT i_price::float8, i_name, i_data INTO v_price, v_name, v_idata FROM tpcc.item WHERE i_id = v_i;
    IF NOT FOUND THEN RAISE EXCEPTION 'Item number is not valid: %', v_i USING ERRCODE = 'TPC01'; END IF;
    UPDATE tpcc.stock SET s_quantity = CASE WHEN s_quantity >= v_qty + 10 THEN s_quantity - v_qty ELSE s_quantity - v_qty + 91 END,
        s_ytd = s_ytd + v_qty, s_order_cnt = s_order_cnt + 1, s_remote_cnt = s_remote_cnt + CASE WHEN v_sw = v_w THEN 0 ELSE 1 END
      WHERE s_i_id = v_i AND s_w_id = v_sw
      RETURNING s_quantity, s_data, CASE v_d WHEN 1 THEN s_dist_01 WHEN 2 THEN s_dist_02 WHEN 3 THEN s_dist_03 WHEN 4 THEN s_dist_04
        WHEN 5 THEN s_dist_05 WHEN 6 THEN s_dist_06 WHEN 7 THEN s_dist_07 WHEN 8 THEN s_dist_08 WHEN 9 THEN s_dist_09 ELSE s_dist_10 END
      INTO v_squant, v_sdata, v_dist;
    IF NOT FOUND THEN RAISE EXCEPTION 'tpcc: no stock %/%', v_sw, v_i; END IF;
    INSERT INTO tpcc.order_line (ol_o_id, ol_d_id, ol_w_id, ol_number, ol_i_id, ol_supply_w_id, ol_delivery_d, ol_quantity, ol_amount, ol_dist_info)
      VALUES (v_o_id, v_d, v_w, n, v_i, v_sw, NULL, v_qty, v_qty * v_price::numeric, v_dist);
    v_amount := v_qty * v_price;
    v_sum := v_sum + v_amount;
    v_lines := v_lines || jsonb_build_object('supply_w_id', v_sw, 'i_id', v_i, 'i_name', v_name, 'qty', v_qty, 's_quantity', v_squant,
      'brand', CASE WHEN strpos(v_idata, 'ORIGINAL') > 0 AND strpos(v_sdata, 'ORIGINAL') > 0 THEN 'B' ELSE 'G' END,
      'i_price', v_price, 'ol_amount', v_amount);
  END LOOP;
  RETURN tpcc_baseline.new_order_output(input, v_o_id, v_last, v_credit, v_discount, v_w_tax, v_d_tax, v_lines, v_sum);
END $$;

-- New-Order, set at a time: one statement for all items, one for all stock rows, one for all lines.
CREATE FUNCTION tpcc_baseline.new_order_set(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_w integer := (input->>'w_id')::int;
  v_d integer := (input->>'d_id')::int;
  v_c integer := (input->>'c_id')::int;
  v_o_id integer; v_discount float8; v_last text; v_credit text; v_w_tax float8; v_d_tax float8;
  ids int[]; sws int[]; qtys int[];
  cnt integer;
  prices float8[]; names text[]; idatas text[];
  squants int[]; sdatas text[]; dists text[];
  r record;
  k integer;
  v_amount float8;
  v_sum float8 := 0;
  v_lines jsonb := '[]';
BEGIN
  SELECT c_discount::float8, c_last, c_credit, w_tax::float8 INTO v_discount, v_last, v_credit, v_w_tax
    FROM tpcc.customer, tpcc.warehouse WHERE w_id = v_w AND c_w_id = w_id AND c_d_id = v_d AND c_id = v_c;
  IF NOT FOUND THEN RAISE EXCEPTION 'tpcc: no customer %/%/%', v_w, v_d, v_c; END IF;
  UPDATE tpcc.district SET d_next_o_id = d_next_o_id + 1 WHERE d_w_id = v_w AND d_id = v_d
    RETURNING d_next_o_id - 1, d_tax::float8 INTO v_o_id, v_d_tax;
  INSERT INTO tpcc.orders (o_id, o_d_id, o_w_id, o_c_id, o_entry_d, o_carrier_id, o_ol_cnt, o_all_local)
    VALUES (v_o_id, v_d, v_w, v_c, now(), NULL, jsonb_array_length(input->'lines'),
            CASE WHEN jsonb_path_exists(input, '$.lines[*] ? (@.supply_w_id != $w)', jsonb_build_object('w', v_w)) THEN 0 ELSE 1 END);
  INSERT INTO tpcc.new_order (no_o_id, no_d_id, no_w_id) VALUES (v_o_id, v_d, v_w);
  SELECT array_agg((l->>'i_id')::int ORDER BY o), array_agg((l->>'supply_w_id')::int ORDER BY o), array_agg((l->>'qty')::int ORDER BY o)
    INTO ids, sws, qtys FROM jsonb_array_elements(input->'lines') WITH ORDINALITY AS x (l, o);
  cnt := cardinality(ids);
  FOR r IN SELECT i_id, i_price::float8 AS i_price, i_name, i_data FROM tpcc.item WHERE i_id = ANY (ids) LOOP
    k := array_position(ids, r.i_id);
    prices[k] := r.i_price; names[k] := r.i_name; idatas[k] := r.i_data;
  END LOOP;
  FOR k IN 1 .. cnt LOOP
    IF prices[k] IS NULL THEN RAISE EXCEPTION 'Item number is not valid: %', ids[k] USING ERRCODE = 'TPC01'; END IF;
  END LOOP;
  FOR r IN
    UPDATE tpcc.stock SET s_quantity = CASE WHEN s_quantity >= x.qty + 10 THEN s_quantity - x.qty ELSE s_quantity - x.qty + 91 END,
        s_ytd = s_ytd + x.qty, s_order_cnt = s_order_cnt + 1, s_remote_cnt = s_remote_cnt + CASE WHEN x.w_id <> v_w THEN 1 ELSE 0 END
      FROM unnest(ids, sws, qtys) AS x (i_id, w_id, qty) WHERE s_i_id = x.i_id AND s_w_id = x.w_id
      RETURNING s_i_id, s_w_id, s_quantity, s_data, CASE v_d WHEN 1 THEN s_dist_01 WHEN 2 THEN s_dist_02 WHEN 3 THEN s_dist_03 WHEN 4 THEN s_dist_04
        WHEN 5 THEN s_dist_05 WHEN 6 THEN s_dist_06 WHEN 7 THEN s_dist_07 WHEN 8 THEN s_dist_08 WHEN 9 THEN s_dist_09 ELSE s_dist_10 END AS dist_info
  LOOP
    k := array_position(ids, r.s_i_id);
    squants[k] := r.s_quantity; sdatas[k] := r.s_data; dists[k] := r.dist_info;
  END LOOP;
  FOR k IN 1 .. cnt LOOP
    IF squants[k] IS NULL THEN RAISE EXCEPTION 'tpcc: no stock %/%', sws[k], ids[k]; END IF;
    v_amount := qtys[k] * prices[k];
    v_sum := v_sum + v_amount;
    v_lines := v_lines || jsonb_build_object('supply_w_id', sws[k], 'i_id', ids[k], 'i_name', names[k], 'qty', qtys[k], 's_quantity', squants[k],
      'brand', CASE WHEN strpos(idatas[k], 'ORIGINAL') > 0 AND strpos(sdatas[k], 'ORIGINAL') > 0 THEN 'B' ELSE 'G' END,
      'i_price', prices[k], 'ol_amount', v_amount);
  END LOOP;
  INSERT INTO tpcc.order_line (ol_o_id, ol_d_id, ol_w_id, ol_number, ol_i_id, ol_supply_w_id, ol_delivery_d, ol_quantity, ol_amount, ol_dist_info)
    SELECT v_o_id, v_d, v_w, x.n::int, x.i, x.w, NULL, x.q, x.q * x.p, x.d
    FROM unnest(ids, sws, qtys, prices::numeric[], dists) WITH ORDINALITY AS x (i, w, q, p, d, n);
  RETURN tpcc_baseline.new_order_output(input, v_o_id, v_last, v_credit, v_discount, v_w_tax, v_d_tax, v_lines, v_sum);
END $$;

-- Payment by customer id or last name.
CREATE FUNCTION tpcc_baseline.payment(input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_w integer := (input->>'w_id')::int;
  v_d integer := (input->>'d_id')::int;
  v_cw integer := (input->>'c_w_id')::int;
  v_cd integer := (input->>'c_d_id')::int;
  v_c integer := (input->>'c_id')::int;
  v_amount numeric := (input->>'h_amount')::numeric;
  wr record;
  dr record;
  cr record;
  ids int[];
BEGIN
  UPDATE tpcc.warehouse SET w_ytd = w_ytd + v_amount WHERE w_id = v_w RETURNING w_name, w_street_1, w_city, w_state, w_zip INTO wr;
  IF NOT FOUND THEN RAISE EXCEPTION 'tpcc: no warehouse %', v_w; END IF;
  UPDATE tpcc.district SET d_ytd = d_ytd + v_amount WHERE d_w_id = v_w AND d_id = v_d RETURNING d_name, d_street_1, d_city, d_state, d_zip INTO dr;
  IF NOT FOUND THEN RAISE EXCEPTION 'tpcc: no district %/%', v_w, v_d; END IF;
  IF v_c IS NULL THEN
    SELECT array_agg(cu.c_id ORDER BY cu.c_first) INTO ids FROM tpcc.customer cu WHERE cu.c_w_id = v_cw AND cu.c_d_id = v_cd AND cu.c_last = input->>'c_last';
    IF ids IS NULL THEN RAISE EXCEPTION 'tpcc: no customer named % in %/%', input->>'c_last', v_cw, v_cd; END IF;
    v_c := ids[(cardinality(ids) + 1) / 2];
  END IF;
  UPDATE tpcc.customer SET c_balance = c_balance - v_amount, c_ytd_payment = c_ytd_payment + v_amount, c_payment_cnt = c_payment_cnt + 1,
      c_data = CASE WHEN c_credit = 'BC' THEN left(format('%s %s %s %s %s %s | ', c_id, c_d_id, c_w_id, v_d, v_w, v_amount) || c_data, 500) ELSE c_data END
    WHERE c_w_id = v_cw AND c_d_id = v_cd AND c_id = v_c
    RETURNING c_first, c_middle, c_last, c_street_1, c_city, c_state, c_zip, c_phone, c_since::text AS c_since, c_credit,
      c_credit_lim::float8 AS c_credit_lim, c_discount::float8 AS c_discount, c_balance::float8 AS c_balance,
      CASE WHEN c_credit = 'BC' THEN left(c_data, 200) END AS c_data
    INTO cr;
  IF NOT FOUND THEN RAISE EXCEPTION 'tpcc: no customer %/%/%', v_cw, v_cd, v_c; END IF;
  INSERT INTO tpcc.history (h_c_id, h_c_d_id, h_c_w_id, h_d_id, h_w_id, h_date, h_amount, h_data)
    VALUES (v_c, v_cd, v_cw, v_d, v_w, now(), v_amount, wr.w_name || '    ' || dr.d_name);
  RETURN jsonb_build_object('w_id', v_w, 'd_id', v_d, 'c_w_id', v_cw, 'c_d_id', v_cd, 'c_id', v_c, 'h_amount', input->'h_amount',
    'w_name', wr.w_name, 'w_street_1', wr.w_street_1, 'w_city', wr.w_city, 'w_state', wr.w_state, 'w_zip', wr.w_zip,
    'd_name', dr.d_name, 'd_street_1', dr.d_street_1, 'd_city', dr.d_city, 'd_state', dr.d_state, 'd_zip', dr.d_zip)
    || jsonb_build_object('c_first', cr.c_first, 'c_middle', cr.c_middle, 'c_last', cr.c_last, 'c_street_1', cr.c_street_1,
    'c_city', cr.c_city, 'c_state', cr.c_state, 'c_zip', cr.c_zip, 'c_phone', cr.c_phone, 'c_since', cr.c_since, 'c_credit', cr.c_credit,
    'c_credit_lim', cr.c_credit_lim, 'c_discount', cr.c_discount, 'c_balance', cr.c_balance, 'c_data', cr.c_data);
END $$;
