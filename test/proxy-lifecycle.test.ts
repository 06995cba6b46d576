// The proxy's edges in time, on the exactly-once fixture: 204 for a void function, 504 at the
// request timeout, a client that disconnects mid-request and retries, the `txfn token` and
// `txfn serve` commands, and SIGTERM under load against a real child process.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createToken, startProxy, type ProxyServer } from "../proxy/index.ts";
import { txfn } from "./support/cli.ts";
import { useTestDatabase } from "./support/database.ts";
import { deployProject } from "./support/deployed.ts";
import { call, eventually, invokerUrl, serve } from "./support/proxy.ts";

const db = useTestDatabase();
let server: ProxyServer;
let token: string;

const counter = async (name: string) => Number((await db.query<{ n: string }>("SELECT n FROM rules.counters WHERE name = $1", [name]))[0]!.n);
const ledger = async (like: string) => db.query<{ key: string; amount: string }>("SELECT key, amount FROM rules.ledger WHERE key LIKE $1 ORDER BY key", [like]);

beforeAll(async () => {
  await deployProject(db.url, "test/fixtures/rules");
  token = (await createToken(db.url, { functions: ["add", "nothing"] })).token;
  server = await startProxy({ invokerUrl: await invokerUrl(db.url), port: 0, logLevel: "silent", poolSize: 4 });
});
afterAll(async () => server?.close());

describe("in-process server", () => {
  it("204 for a function that returns nothing; the same again is replayed", async () => {
    const first = await call(server.url, "/v1/functions/nothing", { token, key: "void-1", body: { tag: "void" } });
    expect([first.status, first.text, first.headers.get("idempotent-replayed")]).toEqual([204, "", "false"]);
    const again = await call(server.url, "/v1/functions/nothing", { token, key: "void-1", body: { tag: "void" } });
    expect([again.status, again.text, again.headers.get("idempotent-replayed")]).toEqual([204, "", "true"]);
  });

  it("504 when the request timeout (statement_timeout) expires; nothing is recorded, so the key can be used again", async () => {
    const slow = await startProxy({ invokerUrl: await invokerUrl(db.url), port: 0, logLevel: "silent", timeoutMs: 200 });
    try {
      const body = { counter: "a", by: 1, sleepMs: 1000 };
      const r = await call(slow.url, "/v1/functions/add", { token, key: "timeout-1", body });
      expect(r.status).toBe(504);
      expect(r.json.error.code).toBe("timeout");
      expect(await db.query("SELECT 1 FROM txfn.invocations WHERE idempotency_key = 'timeout-1'")).toHaveLength(0);
      const ok = await call(server.url, "/v1/functions/add", { token, key: "timeout-1", body });
      expect([ok.status, ok.headers.get("idempotent-replayed")]).toEqual([200, "false"]);
    } finally {
      await slow.close();
    }
  });

  it("a client that disconnects mid-request and retries with its key sees the effect exactly once", async () => {
    const before = await counter("c");
    const lock = new pg.Client({ connectionString: db.url });
    await lock.connect();
    try {
      // Hold the counter's row so the invocation is surely inside the database when the client goes.
      await lock.query("BEGIN");
      await lock.query("SELECT n FROM rules.counters WHERE name = 'c' FOR UPDATE");
      const abort = new AbortController();
      const body = { counter: "c", by: 1, tag: "disconnect" };
      const gone = call(server.url, "/v1/functions/add", { token, key: "disconnect-1", body, signal: abort.signal });
      const waiting = () =>
        db.query("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'txfn-proxy' AND wait_event_type = 'Lock'");
      expect(await eventually(async () => (await waiting()).length > 0)).toBe(true);
      abort.abort();
      await expect(gone).rejects.toThrow(/abort/i);
      await lock.query("COMMIT");
    } finally {
      await lock.end();
    }
    const retry = await call(server.url, "/v1/functions/add", { token, key: "disconnect-1", body: { counter: "c", by: 1, tag: "disconnect" } });
    expect(retry.status).toBe(200);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(retry.json).toEqual({ counter: "c", n: String(before + 1) });
    expect(await counter("c")).toBe(before + 1);
    expect(await ledger("disconnect-%")).toEqual([{ key: "disconnect-1", amount: "1" }]);
  });
});

describe("txfn token", () => {
  it("create prints the secret once; list shows the prefix, never the secret; revoke by name", async () => {
    const env = { DATABASE_URL: db.url };
    const [created, empty] = await Promise.all([
      txfn(["token", "create", "--name", "cli", "--functions", "add,nope", "--workflows", "w1", "--expires", "1d"], env),
      txfn(["token", "create"], env),
    ]);
    expect(created.status).toBe(0);
    const secret = created.stdout.trim();
    expect(secret).toMatch(/^txfn_[A-Za-z0-9_-]{43}$/);
    expect(created.stderr).toMatch(/warning: nope is not a function of the active bundle/);
    expect(empty.stderr).toMatch(/must allow at least one function or workflow/);
    expect((await call(server.url, "/v1/functions/add", { token: secret, body: { counter: "a", by: 0 } })).status).toBe(200);
    const revoked = await txfn(["token", "revoke", "cli"], env);
    expect(revoked.stdout).toMatch(/revoked token \d+ \(cli\)/);
    const [refused, again, listed] = await Promise.all([
      eventually(async () => (await call(server.url, "/v1/functions/add", { token: secret, body: { counter: "a", by: 0 } })).status === 401),
      txfn(["token", "revoke", "cli"], env),
      txfn(["token", "list", "--all"], env),
    ]);
    expect(refused).toBe(true);
    expect(again.stderr).toMatch(/no live token with id or name "cli"/);
    expect(listed.stdout).toMatch(/cli\s+txfn_\S{7}…\s+functions add,nope\s+workflows w1\s+revoked/);
    expect(listed.stdout).not.toContain(secret);
  });
});

describe("txfn serve (child process)", () => {
  it("refuses bad options with a message naming them", async () => {
    const [r, help] = await Promise.all([txfn(["serve", "--pool-size", "zero"], { DATABASE_URL: db.url }), txfn(["serve", "--help"])]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/--pool-size must be an integer from 1 to 1000, got "zero"/);
    expect(help.stdout).toMatch(/--timeout <ms>\s+request timeout in milliseconds/);
    expect(help.stdout).toMatch(/--body-limit <bytes>\s+largest request body in bytes/);
  });

  it("SIGTERM under load: in-flight requests finish, no acknowledged request is lost, retries after a restart apply exactly once", async () => {
    // One counter per worker: no serialization conflicts between them.
    await db.query("INSERT INTO rules.counters SELECT 'w' || g, 0 FROM generate_series(0, 7) g");
    const { child, url, stderr, exited } = await serve(db.url, ["--pool-size", "4", "--shutdown-timeout", "20000"]);
    type Outcome = { key: string; status: number | "network"; start: number; end: number };
    const outcomes: Outcome[] = [];
    let sigtermAt = Infinity;
    const body = (key: string) => ({ counter: `w${key.split("-")[1]}`, by: 1, sleepMs: 150, tag: key });
    const loop = async (worker: number) => {
      for (let n = 0; n < 200; n++) {
        const key = `load-${worker}-${n}`;
        const start = Date.now();
        let status: Outcome["status"];
        try {
          status = (await call(url, "/v1/functions/add", { token, key, body: body(key) })).status;
        } catch {
          status = "network"; // refused or reset: the outcome is unknown to this client
        }
        outcomes.push({ key, status, start, end: Date.now() });
        if (status === "network") return;
        if (outcomes.filter((o) => o.status === 200).length >= 24 && sigtermAt === Infinity) {
          sigtermAt = Date.now();
          child.kill("SIGTERM");
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, (_, i) => loop(i)));
    expect(await exited).toBe(0);
    expect(stderr()).toMatch(/SIGTERM: finishing in-flight requests[\s\S]*stopped/);

    const acked = outcomes.filter((o) => o.status === 200).map((o) => o.key);
    const recorded = new Set((await ledger("load-%")).map((r) => r.key));
    for (const key of acked) expect(recorded.has(key), `acknowledged ${key} is recorded`).toBe(true);
    // Requests already running when SIGTERM came were finished, not cut.
    expect(outcomes.some((o) => o.status === 200 && o.start < sigtermAt && o.end > sigtermAt)).toBe(true);
    // Everything else was refused (503 while draining) or found the port closed.
    for (const o of outcomes) expect([200, 503, "network"]).toContain(o.status);

    // A client retries what was not acknowledged, with the same keys, on a new server.
    const second = await serve(db.url);
    try {
      for (const o of outcomes.filter((x) => x.status !== 200)) {
        const r = await call(second.url, "/v1/functions/add", { token, key: o.key, body: body(o.key) });
        expect(r.status).toBe(200);
      }
    } finally {
      second.child.kill("SIGTERM");
      await second.exited;
    }
    const rows = await ledger("load-%");
    expect(rows.map((r) => r.key).sort()).toEqual(outcomes.map((o) => o.key).sort());
    const [sum] = await db.query<{ n: string }>("SELECT sum(n) AS n FROM rules.counters WHERE name LIKE 'w%'");
    expect(Number(sum!.n)).toBe(outcomes.length);
  });
});
