/**
 * A small local fake payment service for the checkout workflow (an "external" system): an HTTP
 * server that charges and refunds by idempotency key and keeps its ledger in its own schema
 * (`payment_service`) of a PostgreSQL database, so the ledger survives restarts.
 *
 * It can be told to misbehave (POST /faults): fail before charging (503), charge and then fail
 * (503: the reply is lost, the charge is not), hang (never answer), or answer slowly. Every
 * request is logged, so a test can check that retries reused their key.
 *
 * API (JSON):
 *   POST /charges  { idempotencyKey, orderId, amountCents, card }  → 200 { chargeId, status: "approved", replayed }
 *                  | 402 { status: "declined", … } (card "declined") | 409 key reused for another order/amount | 503 fault
 *   POST /refunds  { idempotencyKey }  (the charge's key) → 200 { refunded: true } | 404
 *   POST /faults   { failRate?, failAfterChargeRate?, hangRate?, slowRate?, slowMs? } (rates in [0,1]) → the faults in force
 *   GET  /ledger   → { charges: [...] }
 *
 * Run it: `tsx functions/services/payment-service.ts --database-url URL [--port 0]`; it prints
 * one JSON line `{"listening":"http://127.0.0.1:<port>"}`. It is not part of the function bundle
 * (the bundler takes only the project's top-level files).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";
import { pathToFileURL } from "node:url";
import pg from "pg";

export interface Faults {
  /** Share of charges answered 503 before anything is charged. */
  failRate: number;
  /** Share of charges that are charged, then answered 503 (a lost reply). */
  failAfterChargeRate: number;
  /** Share of charges never answered (the client must time out). */
  hangRate: number;
  /** Share of answers delayed by slowMs. */
  slowRate: number;
  slowMs: number;
}

const NO_FAULTS: Faults = { failRate: 0, failAfterChargeRate: 0, hangRate: 0, slowRate: 0, slowMs: 0 };

export interface PaymentService {
  url: string;
  server: Server;
  setFaults(faults: Partial<Faults>): Faults;
  close(): Promise<void>;
}

const SCHEMA = `
CREATE SCHEMA IF NOT EXISTS payment_service;
CREATE TABLE IF NOT EXISTS payment_service.charges (
  idempotency_key text PRIMARY KEY,
  charge_id       bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  order_id        text NOT NULL,
  amount_cents    bigint NOT NULL,
  card            text NOT NULL,
  status          text NOT NULL CHECK (status IN ('approved', 'declined')),
  refunded        boolean NOT NULL DEFAULT false,
  requests        integer NOT NULL DEFAULT 1,
  created_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE IF NOT EXISTS payment_service.requests (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind            text NOT NULL,
  idempotency_key text,
  order_id        text,
  outcome         text NOT NULL,
  at              timestamptz NOT NULL DEFAULT clock_timestamp()
);`;

function validFaults(f: Partial<Faults>): Faults {
  const out = { ...NO_FAULTS, ...f };
  for (const k of Object.keys(f)) if (!(k in NO_FAULTS)) throw new Error(`unknown fault ${k} (known: ${Object.keys(NO_FAULTS).join(", ")})`);
  for (const k of ["failRate", "failAfterChargeRate", "hangRate", "slowRate"] as const) {
    if (typeof out[k] !== "number" || out[k] < 0 || out[k] > 1) throw new Error(`${k} must be a number in [0, 1]`);
  }
  if (typeof out.slowMs !== "number" || out.slowMs < 0) throw new Error("slowMs must be a number ≥ 0");
  return out;
}

async function body(req: IncomingMessage): Promise<Record<string, unknown>> {
  let text = "";
  for await (const chunk of req) text += chunk;
  const v = text ? JSON.parse(text) : {};
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw new Error("body must be a JSON object");
  return v as Record<string, unknown>;
}

function send(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(value));
}

/**
 * Starts the service on 127.0.0.1 (`port` 0 = a free one) with its ledger in `databaseUrl`.
 * @returns its URL, a fault switch and close().
 */
export async function startPaymentService(options: { databaseUrl: string; port?: number; faults?: Partial<Faults> }): Promise<PaymentService> {
  const pool = new pg.Pool({ connectionString: options.databaseUrl, max: 8, application_name: "fake-payment-service" });
  pool.on("error", () => {});
  const c = await pool.connect();
  try {
    await c.query("SELECT pg_advisory_lock(hashtext('payment_service schema'))");
    await c.query(SCHEMA);
    await c.query("SELECT pg_advisory_unlock(hashtext('payment_service schema'))");
  } finally {
    c.release();
  }
  let faults = validFaults(options.faults ?? {});
  const log = (kind: string, key: unknown, orderId: unknown, outcome: string) =>
    pool.query("INSERT INTO payment_service.requests (kind, idempotency_key, order_id, outcome) VALUES ($1, $2, $3, $4)", [
      kind,
      typeof key === "string" ? key : null,
      typeof orderId === "string" ? orderId : null,
      outcome,
    ]);
  const slow = () => (Math.random() < faults.slowRate ? new Promise((r) => setTimeout(r, faults.slowMs)) : undefined);

  async function charge(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const b = await body(req);
    const { idempotencyKey: key, orderId, amountCents, card } = b;
    if (typeof key !== "string" || typeof orderId !== "string" || !Number.isInteger(amountCents) || typeof card !== "string") {
      return send(res, 400, { error: "need idempotencyKey, orderId (strings), amountCents (integer), card (string)" });
    }
    const roll = Math.random();
    if (roll < faults.failRate) {
      await log("charge", key, orderId, "failed-before-charge");
      return send(res, 503, { error: "payment service unavailable (injected)" });
    }
    if (roll < faults.failRate + faults.hangRate) {
      await log("charge", key, orderId, "hung");
      return; // never answered; the client times out and closes the socket
    }
    const status = card === "declined" ? "declined" : "approved";
    const r = await pool.query<{ charge_id: string; order_id: string; amount_cents: string; status: string; replayed: boolean }>(
      `INSERT INTO payment_service.charges (idempotency_key, order_id, amount_cents, card, status) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (idempotency_key) DO UPDATE SET requests = payment_service.charges.requests + 1
       RETURNING charge_id::text, order_id, amount_cents::text, status, (xmax <> 0) AS replayed`,
      [key, orderId, amountCents, card, status],
    );
    const row = r.rows[0]!;
    if (row.order_id !== orderId || Number(row.amount_cents) !== amountCents) {
      await log("charge", key, orderId, "key-reused");
      return send(res, 409, { error: `idempotency key ${key} was used for order ${row.order_id} (${row.amount_cents} cents)` });
    }
    await slow();
    if (roll < faults.failRate + faults.hangRate + faults.failAfterChargeRate) {
      await log("charge", key, orderId, `${row.status}-reply-lost`);
      return send(res, 503, { error: "payment service unavailable after charging (injected)" });
    }
    await log("charge", key, orderId, row.replayed ? `${row.status}-replayed` : row.status);
    if (row.status === "declined") return send(res, 402, { status: "declined", chargeId: row.charge_id, replayed: row.replayed });
    return send(res, 200, { status: "approved", chargeId: row.charge_id, replayed: row.replayed });
  }

  async function refund(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { idempotencyKey: key } = await body(req);
    if (typeof key !== "string") return send(res, 400, { error: "need idempotencyKey (the charge's)" });
    const r = await pool.query("UPDATE payment_service.charges SET refunded = true WHERE idempotency_key = $1 AND status = 'approved' RETURNING order_id", [key]);
    await log("refund", key, r.rows[0]?.order_id, r.rowCount ? "refunded" : "no-charge");
    if (!r.rowCount) return send(res, 404, { error: `no approved charge with key ${key}` });
    await slow();
    return send(res, 200, { refunded: true });
  }

  const server = createServer((req, res) => {
    const route = `${req.method} ${req.url}`;
    const handle = async () => {
      if (route === "POST /charges") return charge(req, res);
      if (route === "POST /refunds") return refund(req, res);
      if (route === "POST /faults") {
        faults = validFaults((await body(req)) as Partial<Faults>);
        return send(res, 200, faults);
      }
      if (route === "GET /faults") return send(res, 200, faults);
      if (route === "GET /ledger") {
        const r = await pool.query("SELECT * FROM payment_service.charges ORDER BY charge_id");
        return send(res, 200, { charges: r.rows });
      }
      return send(res, 404, { error: `no route ${route}` });
    };
    handle().catch((err: Error) => {
      if (!res.headersSent) send(res, 500, { error: err.message });
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    setFaults: (f) => (faults = validFaults(f)),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await pool.end();
    },
  };
}

// As a process: tsx functions/services/payment-service.ts --database-url URL [--port N] [--faults JSON]
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const usage = "usage: tsx functions/services/payment-service.ts [--database-url URL] [--port N] [--faults JSON]  (DATABASE_URL when --database-url is not given)";
  const fail = (message: string): never => {
    console.error(`payment-service: ${message}\n${usage}`);
    process.exit(2);
  };
  let values: { "database-url"?: string; port: string; faults?: string } = { port: "0" };
  try {
    // `--port -1`: parseArgs takes -1 for an option; read it as the value, for the range check to refuse.
    const argv = process.argv.slice(2);
    const args = argv.flatMap((a, i) => (/^-\d/.test(a) && /^--[a-z-]+$/.test(argv[i - 1] ?? "") ? [] : /^--[a-z-]+$/.test(a) && /^-\d/.test(argv[i + 1] ?? "") ? [`${a}=${argv[i + 1]}`] : [a]));
    values = parseArgs({ args, options: { "database-url": { type: "string" }, port: { type: "string", default: "0" }, faults: { type: "string" } } }).values;
  } catch (err) {
    // util.parseArgs: ERR_PARSE_ARGS_UNKNOWN_OPTION, _INVALID_OPTION_VALUE, _UNEXPECTED_POSITIONAL
    if (!String((err as { code?: unknown }).code).startsWith("ERR_PARSE_ARGS_")) throw err;
    fail((err as Error).message);
  }
  const url = values["database-url"] ?? process.env.DATABASE_URL;
  if (!url) fail("give --database-url (or DATABASE_URL)");
  const port = Number(values.port);
  if (!/^\d+$/.test(values.port) || port > 65535) fail(`--port must be an integer from 0 to 65535 (0 = any free port), got ${values.port}`);
  let faults: Partial<Faults> | undefined;
  if (values.faults !== undefined) {
    try {
      faults = JSON.parse(values.faults) as Partial<Faults>;
    } catch (err) {
      fail(`--faults is not valid JSON: ${(err as Error).message}`);
    }
    if (typeof faults !== "object" || faults === null || Array.isArray(faults)) fail(`--faults must be a JSON object such as '{"failRate":0.1}', got ${values.faults}`);
  }
  const service = await startPaymentService({ databaseUrl: url!, port, ...(faults ? { faults } : {}) });
  console.log(JSON.stringify({ listening: service.url }));
  const stop = () => void service.close().then(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
