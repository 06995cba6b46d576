// The HTTP proxy on a loopback port in front of the reference app: every status, auth refusals,
// replayed responses, invocations, metrics, OpenAPI, and 503 when the database is unreachable.
import { createServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createToken, revokeToken, startProxy, type ProxyServer } from "../proxy/index.ts";
import { useTestDatabase } from "./support/database.ts";
import { deployProject } from "./support/deployed.ts";
import { TEST_ROLE, call, eventually, invokerUrl } from "./support/proxy.ts";

const db = useTestDatabase();
let server: ProxyServer;
let base: string;
let all: string; // a token for every function
let limited: string; // a token for orderStatus only

const order = (orderId: string, qty = 1, sku = "sku-010") => ({ orderId, items: [{ sku, qty }] });
const stock = async (sku: string) => (await db.query<{ stock: number }>("SELECT stock FROM shop.inventory WHERE sku = $1", [sku]))[0]!.stock;

beforeAll(async () => {
  await deployProject(db.url, "functions");
  all = (await createToken(db.url, { name: "all", functions: ["*"] })).token;
  limited = (await createToken(db.url, { functions: ["orderStatus"] })).token;
  server = await startProxy({ invokerUrl: await invokerUrl(db.url), port: 0, logLevel: "silent", poolSize: 4, bodyLimitBytes: 4096 });
  base = server.url;
});
afterAll(async () => server?.close());

describe("POST /v1/functions/:name", () => {
  it("200 with the output, one round trip's effect, and the invocation's headers", async () => {
    const before = await stock("sku-010");
    const r = await call(base, "/v1/functions/reserveInventory", { token: all, key: "http-1", body: order("http-1", 2) });
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toMatch(/^application\/json/);
    expect(r.json).toEqual({ orderId: "http-1", reserved: true });
    expect(r.headers.get("idempotent-replayed")).toBe("false");
    expect(r.headers.get("txfn-version")).toBe("1");
    expect(await stock("sku-010")).toBe(before - 2);
    const [inv] = await db.query("SELECT role, application_name, input FROM txfn.invocations WHERE id = $1", [r.headers.get("txfn-invocation-id")]);
    expect(inv).toEqual({ role: TEST_ROLE, application_name: "txfn-proxy", input: order("http-1", 2) });
  });

  it("a repeated key returns the identical status and body, says it was replayed, and does not run again", async () => {
    const before = await stock("sku-011");
    const first = await call(base, "/v1/functions/reserveInventory", { token: all, key: "http-2", body: order("http-2", 1, "sku-011") });
    const again = await call(base, "/v1/functions/reserveInventory", { token: all, key: "http-2", body: order("http-2", 1, "sku-011") });
    expect(again.status).toBe(first.status);
    expect(again.text).toBe(first.text);
    expect(again.headers.get("txfn-invocation-id")).toBe(first.headers.get("txfn-invocation-id"));
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(await stock("sku-011")).toBe(before - 1);
  });

  it("the recorded input is the body as sent: every digit of a large number", async () => {
    const body = '{"orderId":"http-digits","amountCents":12345678901234567890123}';
    const r = await call(base, "/v1/functions/markPaid", { token: all, key: "http-digits", body });
    expect(r.status).toBe(422); // too large for the bigint column: an application error, recorded
    const [inv] = await db.query<{ input: string }>("SELECT input::text AS input FROM txfn.invocations WHERE idempotency_key = 'http-digits'");
    expect(inv!.input).toBe('{"orderId": "http-digits", "amountCents": 12345678901234567890123}');
    const extra = await call(base, "/v1/functions/markPaid", { token: all, body: '{"orderId":"x","amountCents":1,"note":"no such property"}' });
    expect(extra.status).toBe(400);
    expect(extra.json.error.details).toEqual([{ path: "/", message: 'unknown property "note"' }]);
  });

  it("422 with the recorded application error (no stack unless asked), identical when replayed", async () => {
    const body = order("http-oos", 5_000_000, "sku-013");
    const r = await call(base, "/v1/functions/reserveInventory", { token: all, key: "http-oos", body });
    expect(r.status).toBe(422);
    expect(r.json.error).toMatchObject({ name: "OutOfStock", message: expect.stringContaining("sku-013"), data: { sku: "sku-013", requested: 5_000_000 } });
    expect(r.json.error.stack).toBeUndefined();
    const again = await call(base, "/v1/functions/reserveInventory", { token: all, key: "http-oos", body });
    expect([again.status, again.text, again.headers.get("idempotent-replayed")]).toEqual([422, r.text, "true"]);
  });

  it("404 for a function the active bundle does not have (hint: what the token may call)", async () => {
    const r = await call(base, "/v1/functions/noSuchThing", { token: all, body: {} });
    expect(r.status).toBe(404);
    expect(r.json.error).toMatchObject({ code: "function_not_found", message: expect.stringContaining("noSuchThing") });
    expect(r.json.error.hint).toContain("reserveInventory");
  });

  it("400 for malformed JSON, and for input failing the declared schema (with where and what)", async () => {
    const bad = await call(base, "/v1/functions/reserveInventory", { token: all, body: '{"orderId": "x", items: [' });
    expect(bad.status).toBe(400);
    expect(bad.json.error.code).toBe("bad_json");
    const wrong = await call(base, "/v1/functions/reserveInventory", { token: all, key: "http-schema", body: { orderId: 1, items: [{ sku: "a", qty: "two" }] } });
    expect(wrong.status).toBe(400);
    expect(wrong.json.error.code).toBe("invalid_input");
    expect(wrong.json.error.details).toEqual(
      expect.arrayContaining([
        { path: "/orderId", message: "must be string" },
        { path: "/items/0/qty", message: "must be number" },
      ]),
    );
    const missing = await call(base, "/v1/functions/reserveInventory", { token: all, method: "POST" });
    expect(missing.status).toBe(400); // no body = null input, which is not an Order
    expect(await db.query("SELECT 1 FROM txfn.invocations WHERE idempotency_key = 'http-schema'")).toHaveLength(0);
  });

  it("409 when a key is reused with another input", async () => {
    expect((await call(base, "/v1/functions/reserveInventory", { token: all, key: "http-409", body: order("a") })).status).toBe(200);
    const r = await call(base, "/v1/functions/reserveInventory", { token: all, key: "http-409", body: order("b") });
    expect(r.status).toBe(409);
    expect(r.json.error.code).toBe("idempotency_key_reused");
  });

  it("413 for a body over the limit, 415 for a body that is not JSON, 400 for an empty key or an unbalanced quote", async () => {
    const big = await call(base, "/v1/functions/reserveInventory", { token: all, body: { orderId: "x".repeat(5000), items: [] } });
    expect(big.status).toBe(413);
    expect(big.json.error.code).toBe("payload_too_large");
    const text = await call(base, "/v1/functions/reserveInventory", { token: all, body: "hello", contentType: "text/plain" });
    expect(text.status).toBe(415);
    const charset = await call(base, "/v1/functions/orderStatus", { token: all, body: { orderId: "x" }, contentType: "application/json; charset=utf-8" });
    expect(charset.status).toBe(200);
    const key = await call(base, "/v1/functions/orderStatus", { token: all, key: "", body: { orderId: "x" } });
    expect(key.status).toBe(400);
    expect(key.json.error.code).toBe("bad_idempotency_key");
    for (const unbalanced of ['"q1', 'q1"', '"']) {
      const r = await call(base, "/v1/functions/orderStatus", { token: all, key: unbalanced, body: { orderId: "x" } });
      expect(r.status).toBe(400);
      expect(r.json.error.message).toMatch(/unbalanced quote/);
    }
    const badEscape = await call(base, "/v1/functions/orderStatus", { token: all, key: '"a\\x"', body: { orderId: "x" } });
    expect([badEscape.status, badEscape.json.error.code]).toEqual([400, "bad_idempotency_key"]);
    expect(badEscape.json.error.message).toMatch(/not a valid quoted string/);
  });

  it("reads a quoted Idempotency-Key as an RFC 8941 string: escapes undone, the same key as its bare form", async () => {
    const first = await call(base, "/v1/functions/orderStatus", { token: all, key: '"sf-\\"1"', body: { orderId: "x" } });
    expect([first.status, first.headers.get("idempotent-replayed")]).toEqual([200, "false"]);
    const bare = await call(base, "/v1/functions/orderStatus", { token: all, key: 'sf-"1', body: { orderId: "x" } });
    expect([bare.status, bare.headers.get("idempotent-replayed"), bare.text]).toEqual([200, "true", first.text]);
  });
});

describe("auth", () => {
  it("401 without a token, with a malformed or unknown one; WWW-Authenticate says Bearer", async () => {
    for (const token of [undefined, "not-a-token", `txfn_${"A".repeat(43)}`]) {
      const r = await call(base, "/v1/functions/orderStatus", { ...(token ? { token } : {}), body: { orderId: "x" } });
      expect(r.status).toBe(401);
      expect(r.headers.get("www-authenticate")).toMatch(/^Bearer realm="txfn"/);
    }
    const basic = await call(base, "/v1/functions/orderStatus", { headers: { authorization: "Basic dXNlcjpwdw==" }, body: { orderId: "x" } });
    expect(basic.status).toBe(401);
  });

  it("403 for a function the token does not list (before the body is looked at); its own function works", async () => {
    const r = await call(base, "/v1/functions/reserveInventory", { token: limited, body: "{not json" });
    expect(r.status).toBe(403);
    expect(r.headers.get("www-authenticate")).toMatch(/insufficient_scope/);
    expect((await call(base, "/v1/functions/orderStatus", { token: limited, body: { orderId: "x" } })).status).toBe(200);
  });

  it("a revoked token is refused as soon as the NOTIFY arrives; an expired one too", async () => {
    const t = await createToken(db.url, { name: "short-lived", functions: ["orderStatus"] });
    const use = () => call(base, "/v1/functions/orderStatus", { token: t.token, body: { orderId: "x" } });
    expect((await use()).status).toBe(200);
    await revokeToken(db.url, "short-lived");
    expect(await eventually(async () => (await use()).status === 401)).toBe(true);

    const e = await createToken(db.url, { functions: ["orderStatus"] });
    const useE = () => call(base, "/v1/functions/orderStatus", { token: e.token, body: { orderId: "x" } });
    expect((await useE()).status).toBe(200);
    await db.query("UPDATE txfn.tokens SET expires_at = now() - interval '1 second' WHERE id = $1", [e.id]);
    expect(await eventually(async () => (await useE()).status === 401)).toBe(true);
    expect((await useE()).json.error.message).toMatch(/expired/);
  });

  it("the token hashes are not readable by the role functions run as", async () => {
    const [row] = await db.query<{ can: boolean }>("SELECT has_table_privilege($1, 'txfn.tokens', 'SELECT') AS can", [TEST_ROLE]);
    expect(row!.can).toBe(false);
    expect(await db.query("SELECT hash FROM txfn.tokens WHERE hash ~ 'txfn_'")).toHaveLength(0); // only hashes are stored
  });
});

describe("GET /v1/invocations/:id", () => {
  it("200 with the recorded invocation; 404 for another function's (limited token) or none; 400 for a bad id", async () => {
    const r = await call(base, "/v1/functions/reserveInventory", { token: all, key: "http-get", body: order("http-get") });
    const id = r.headers.get("txfn-invocation-id")!;
    const got = await call(base, `/v1/invocations/${id}`, { token: all });
    expect(got.status).toBe(200);
    expect(got.json).toMatchObject({ id, function: "reserveInventory", status: "ok", idempotencyKey: "http-get", output: r.json, input: order("http-get") });
    expect(got.json.error).toBeUndefined();
    expect((await call(base, `/v1/invocations/${id}`, { token: limited })).status).toBe(404);
    expect((await call(base, "/v1/invocations/999999999", { token: all })).status).toBe(404);
    expect((await call(base, "/v1/invocations/abc", { token: all })).status).toBe(400);
    expect((await call(base, `/v1/invocations/${id}`)).status).toBe(401);
  });
});

describe("operations endpoints", () => {
  it("/healthz and /readyz answer 200 without a token", async () => {
    expect((await call(base, "/healthz")).json).toEqual({ status: "ok" });
    const ready = await call(base, "/readyz");
    expect(ready.status).toBe(200);
    expect(ready.json).toMatchObject({ status: "ready", version: 1 });
  });

  it("/metrics: requests by route and status, latency histogram, pool in use and waiting", async () => {
    const m = await call(base, "/metrics");
    expect(m.status).toBe(200);
    expect(m.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(m.text).toMatch(/txfn_http_requests_total\{route="\/v1\/functions\/:name",method="POST",status="200"\} [1-9]/);
    expect(m.text).toMatch(/txfn_http_requests_total\{route="\/v1\/functions\/:name",method="POST",status="422"\} [1-9]/);
    expect(m.text).toMatch(/txfn_http_request_duration_seconds_bucket\{le="0\.1",route="\/v1\/functions\/:name",method="POST"\}/);
    expect(m.text).toMatch(/txfn_pool_connections\{state="in_use"\} \d+/);
    expect(m.text).toMatch(/txfn_pool_waiting \d+/);
    expect(m.text).toMatch(/txfn_invocations_total\{outcome="error",replayed="true"\} [1-9]/);
  });

  it("/openapi.json describes each deployed function with its input and output schemas", async () => {
    const doc = (await call(base, "/openapi.json")).json;
    expect(doc.openapi).toBe("3.1.0");
    const [fn] = await db.query<{ input_schema: unknown; output_schema: unknown }>("SELECT input_schema, output_schema FROM txfn.functions WHERE active AND name = 'reserveInventory'");
    const op = doc.paths["/v1/functions/reserveInventory"].post;
    expect(op.requestBody.content["application/json"].schema).toEqual(fn!.input_schema);
    expect(op.responses["200"].content["application/json"].schema).toEqual(fn!.output_schema);
    expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(["400", "401", "403", "404", "409", "413", "422", "503"]));
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/v1/functions/markPaid", "/v1/functions/orderStatus", "/v1/invocations/{id}"]));
  });

  it("a deploy is seen at once (NOTIFY): a new function is served and described", async () => {
    const { mkdtempSync, cpSync, writeFileSync, rmSync } = await import("node:fs");
    const { join } = await import("node:path");
    const { tmpdir } = await import("node:os");
    const dir = mkdtempSync(join(tmpdir(), "txfn-proxy-"));
    try {
      cpSync("functions", dir, { recursive: true });
      writeFileSync(join(dir, "ping.ts"), 'import { transaction } from "txfn";\nexport const ping = transaction({}, (_ctx, input: { n: number }) => ({ pong: input.n }));\n');
      await deployProject(db.url, dir);
      const r = await call(base, "/v1/functions/ping", { token: all, body: { n: 7 } });
      expect([r.status, r.json, r.headers.get("txfn-version")]).toEqual([200, { pong: 7 }, "2"]);
      expect(await eventually(async () => (await call(base, "/openapi.json")).json.paths["/v1/functions/ping"] !== undefined)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("database trouble", () => {
  it("a terminated backend is replaced: the next request still succeeds", async () => {
    await db.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'txfn-proxy'");
    const r = await call(base, "/v1/functions/orderStatus", { token: all, key: "after-terminate", body: { orderId: "x" } });
    expect(r.status).toBe(200);
  });

  it("503 with Retry-After when the database is unreachable (a closed port); /readyz says not ready", async () => {
    const port = await closedPort();
    const url = new URL(await invokerUrl(db.url));
    url.port = String(port);
    const down = await startProxy({ invokerUrl: url.toString(), port: 0, logLevel: "silent", maxRetries: 2 });
    try {
      for (const key of [undefined, "down-1"]) {
        const r = await call(down.url, "/v1/functions/orderStatus", { token: all, ...(key ? { key } : {}), body: { orderId: "x" } });
        expect(r.status).toBe(503);
        expect(r.headers.get("retry-after")).toBe("1");
        expect(r.json.error.code).toBe("database_unavailable");
      }
      const ready = await call(down.url, "/readyz");
      expect(ready.status).toBe(503);
      expect(ready.headers.get("retry-after")).toBe("1");
      expect((await call(down.url, "/healthz")).status).toBe(200);
    } finally {
      await down.close();
    }
  });
});

/** A loopback port nothing listens on (bound, then released). */
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}
