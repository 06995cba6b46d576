-- The checkout service's tables and seed data (applied by `txfn deploy functions`).

-- Up Migration
CREATE SCHEMA shop;

CREATE TABLE shop.inventory (
  sku   text PRIMARY KEY,
  stock integer NOT NULL CHECK (stock >= 0)
);

CREATE TABLE shop.orders (
  order_id     text PRIMARY KEY,
  status       text NOT NULL CHECK (status IN ('paid', 'ready', 'cancelled')),
  amount_cents bigint NOT NULL CHECK (amount_cents >= 0),
  paid_at      timestamptz NOT NULL,
  ready_at     timestamptz
);

-- Seed: 100 SKUs with plenty of stock.
INSERT INTO shop.inventory (sku, stock)
  SELECT 'sku-' || lpad(g::text, 3, '0'), 1000000 FROM generate_series(1, 100) g;

GRANT USAGE ON SCHEMA shop TO txfn_invoker;
GRANT SELECT, INSERT, UPDATE ON shop.inventory, shop.orders TO txfn_invoker;

-- Down Migration
DROP SCHEMA shop CASCADE;
