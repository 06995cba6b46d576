/**
 * The baselines of bench/invoke (run.ts, callgrind.ts), in schema bench: the reference
 * reserveInventory SQL (3 items, a select and an update each) as hand-written PL/pgSQL without
 * recording (reserve_plpgsql), the same plus an idempotency row (reserve_plpgsql_idem; needs
 * bench.node_idempotency), and as a plain txv8 function with prepared plans (reserve_js), plus
 * reserve_js_direct: the same with txv8's statements without a subtransaction (txv8 >= 1.1).
 */
export const BASELINES_SQL = `
CREATE OR REPLACE FUNCTION bench.reserve_plpgsql(orderv jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE it jsonb; s integer;
BEGIN
  FOR it IN SELECT * FROM jsonb_array_elements(orderv->'items') LOOP
    SELECT stock INTO s FROM shop.inventory WHERE sku = it->>'sku';
    IF s IS NULL OR s < (it->>'qty')::int THEN RAISE EXCEPTION 'out of stock: %', it->>'sku'; END IF;
    UPDATE shop.inventory SET stock = stock - (it->>'qty')::int WHERE sku = it->>'sku';
  END LOOP;
  RETURN jsonb_build_object('orderId', orderv->>'orderId', 'reserved', true);
END $$;
CREATE OR REPLACE FUNCTION bench.reserve_plpgsql_idem(orderv jsonb, key text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE out jsonb := bench.reserve_plpgsql(orderv);
BEGIN
  INSERT INTO bench.node_idempotency (key, output) VALUES (key, out);
  RETURN out;
END $$;
CREATE OR REPLACE FUNCTION bench.reserve_js(orderv jsonb) RETURNS jsonb LANGUAGE txv8 AS $$
  const p = globalThis.benchReservePlans || (globalThis.benchReservePlans = {
    select: plv8.prepare("SELECT stock FROM shop.inventory WHERE sku = $1", ["text"]),
    update: plv8.prepare("UPDATE shop.inventory SET stock = stock - $1 WHERE sku = $2", ["int4", "text"]),
  });
  for (const it of orderv.items) {
    const [row] = p.select.execute([it.sku]);
    if (!row || row.stock < it.qty) throw new Error("out of stock: " + it.sku);
    p.update.execute([it.qty, it.sku]);
  }
  return { orderId: orderv.orderId, reserved: true };
$$;
CREATE OR REPLACE FUNCTION bench.reserve_js_direct(orderv jsonb) RETURNS jsonb LANGUAGE txv8 AS $$
  const direct = { subtransaction: false };
  const p = globalThis.benchReserveDirectPlans || (globalThis.benchReserveDirectPlans = {
    select: plv8.prepare("SELECT stock FROM shop.inventory WHERE sku = $1", ["text"], direct),
    update: plv8.prepare("UPDATE shop.inventory SET stock = stock - $1 WHERE sku = $2", ["int4", "text"], direct),
  });
  for (const it of orderv.items) {
    const [row] = p.select.execute([it.sku]);
    if (!row || row.stock < it.qty) throw new Error("out of stock: " + it.sku);
    p.update.execute([it.qty, it.sku]);
  }
  return { orderId: orderv.orderId, reserved: true };
$$`;
