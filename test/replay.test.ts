// Time travel (issue 8) against the real cluster, through the real CLI: the design's running
// example (a reserve split into a check and an update transaction oversells the last item),
// replayed faithfully and retroactively fixed; a reader that started before a writer committed
// but committed after it, which snapshot order replays and commit order does not; --until.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TxfnClient, type InvokeResult } from "../client/index.ts";
import { intersectSnapshots, parseSnapshot, visible } from "../replay/index.ts";
import { txfn } from "./support/cli.ts";
import { useTestDatabase } from "./support/database.ts";
import { onDatabase, replayReport } from "./support/replay.ts";

const db = useTestDatabase();
const env = () => ({ DATABASE_URL: db.url });
let client: TxfnClient;

beforeAll(async () => {
  const d = await txfn(["deploy", "functions/examples/oversell"], env());
  if (d.status !== 0) throw new Error(`deploy failed: ${d.stderr}`);
  client = new TxfnClient({ url: db.url, poolSize: 8, applicationName: "replay-test" });
});
afterAll(async () => client?.close());

function ok<O>(r: InvokeResult<O>): O {
  if (!r.ok) throw new Error(`expected an output, got ${JSON.stringify(r.error)}`);
  return r.output;
}

const report = (args: string[]) => replayReport(db.url, args);

const dropDatabase = (name: string) => db.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
const scratchLeft = async () =>
  Number((await db.query<{ n: string }>("SELECT count(*) AS n FROM pg_database WHERE datname LIKE $1", [`txfn_replay_${db.name}_%`]))[0]!.n);

describe("snapshots", () => {
  it("visibility and the intersection of snapshots", () => {
    const a = parseSnapshot("100:110:100,105");
    const b = parseSnapshot("103:108:103");
    expect([99, 100, 101, 105, 109, 110].map((x) => visible(x, a))).toEqual([true, false, true, false, true, false]);
    const both = intersectSnapshots([a, b]);
    expect(both).toEqual({ xmin: 100, xmax: 108, xip: new Set([100, 105, 103]) });
    for (const x of [99, 100, 101, 103, 104, 105, 107, 108, 109]) expect(visible(x, both)).toBe(visible(x, a) && visible(x, b));
    expect(() => parseSnapshot("nonsense")).toThrow(/cannot read snapshot/);
  });
});

describe("the runtime's replay options", () => {
  it("invocationId records the invocation under a given id; a taken id is refused", async () => {
    await onDatabase(db.url, async (c) => {
      await c.query("SET default_transaction_isolation = 'serializable'");
      const call = (options: string) => c.query("SELECT txfn.invoke('checkStock', '{\"sku\":\"gadget\"}', NULL, $1::jsonb) AS e", [options]);
      expect((await call('{"invocationId":"900001"}')).rows[0].e.invocationId).toBe("900001");
      await expect(call('{"invocationId":900001}')).rejects.toMatchObject({ code: "23505" });
      await expect(call('{"invocationId":"-3"}')).rejects.toMatchObject({ code: "TXF04" });
      await c.query("DELETE FROM txfn.invocations WHERE id = 900001");
    });
  });

  it("relaxIsolation lets REPEATABLE READ run a SERIALIZABLE function; without it TXF03", async () => {
    await onDatabase(db.url, async (c) => {
      await c.query("BEGIN ISOLATION LEVEL REPEATABLE READ");
      await expect(c.query("SELECT txfn.invoke('checkStock', '{\"sku\":\"gadget\"}')")).rejects.toMatchObject({ code: "TXF03" });
      await c.query("ROLLBACK");
      await c.query("BEGIN ISOLATION LEVEL REPEATABLE READ");
      const r = await c.query("SELECT txfn.invoke('checkStock', '{\"sku\":\"gadget\"}', NULL, '{\"relaxIsolation\":true}') AS e");
      expect(r.rows[0].e.output).toEqual({ sku: "gadget", available: 10 });
      await c.query("ROLLBACK");
    });
  });
});

describe("the running example: a reserve split in two transactions oversells the last item", () => {
  const N = 6;
  let ids: string[] = [];
  let takes: { id: string; left: number }[] = [];

  beforeAll(async () => {
    // Every request checks (1 left: go ahead), then takes; all check before any takes.
    const checks = await Promise.all(Array.from({ length: N }, () => client.invoke("checkStock", { sku: "widget" })));
    expect(checks.map((c) => ok(c as InvokeResult<{ available: number }>).available)).toEqual(Array(N).fill(1));
    const done = await Promise.all(Array.from({ length: N }, (_, i) => client.invoke("takeStock", { sku: "widget", orderId: `order-${i}` })));
    takes = done.map((t) => ({ id: t.invocationId, left: ok(t as InvokeResult<{ left: number }>).left }));
    ids = [...checks, ...done].map((r) => r.invocationId);
    const [row] = await db.query<{ stock: number }>("SELECT stock FROM inventory WHERE sku = 'widget'");
    expect(row!.stock).toBe(1 - N); // oversold
  });

  it("replaying the recorded trace reproduces the oversell exactly: same outputs, same writes, same final stock", async () => {
    const { status, report: r } = await report(["replay", "--invocations", ids.join(","), "--keep", "--all"]);
    try {
      expect(status).toBe(0);
      expect(r.counts.same).toBe(2 * N);
      expect(r.firstDivergence).toBeNull();
      expect(r.finalState).toEqual([]);
      for (const inv of r.invocations) expect(inv.replayed).toEqual(inv.recorded);
      expect(r.invocations.filter((i) => i.function === "takeStock").map((i) => (i.replayed!.output as { left: number }).left).sort((a, b) => a - b))
        .toEqual(takes.map((t) => t.left).sort((a, b) => a - b));
      const rows = await onDatabase(r.scratch.url, async (c) => ({
        stock: (await c.query("SELECT stock FROM inventory WHERE sku = 'widget'")).rows[0].stock as number,
        orders: (await c.query("SELECT order_id, placed_at, token FROM orders ORDER BY order_id")).rows,
      }));
      expect(rows.stock).toBe(1 - N);
      // Pinned time and seed: the orders are the recorded ones, byte for byte.
      expect(rows.orders).toEqual(await db.query("SELECT order_id, placed_at, token FROM orders ORDER BY order_id"));
    } finally {
      await dropDatabase(r.scratch.database);
    }
    // The invariant the bug breaks fails on the faithful replay too (exit code 1).
    const checked = await report(["replay", "--invocations", ids.join(","), "--check", "SELECT * FROM inventory WHERE stock < 0"]);
    expect(checked.status).toBe(1);
    expect(checked.report.checks[0]).toMatchObject({ ok: false, rowCount: 1, rows: [{ sku: "widget", stock: 1 - N }] });
    expect(await scratchLeft()).toBe(0);
    expect((await db.query("SELECT * FROM txfn.provenance_holds"))).toEqual([]);
  });

  it("retroaction with the fixed single-transaction takeStock shows no oversell and the stock check passes", async () => {
    const { status, report: r } = await report([
      "retro", "--invocations", ids.join(","), "--bundle", "functions/examples/oversell-fixed", "--check", "SELECT * FROM inventory WHERE stock < 0",
    ]);
    expect(status).toBe(0);
    expect(r.checks).toEqual([{ sql: "SELECT * FROM inventory WHERE stock < 0", ok: true, rows: [], rowCount: 0 }]);
    expect(r.counts["now fails"]).toBe(N - 1);
    expect(r.counts.same).toBe(N + 1); // every check, and the first take
    for (const inv of r.invocations) {
      expect(inv).toMatchObject({ function: "takeStock", outcome: "now fails", replayed: { status: "error", error: { name: "OutOfStock" } } });
    }
    const inventory = r.finalState.find((d) => d.table === "public.inventory")!;
    expect(inventory.rows).toEqual([{ key: { sku: "widget" }, recorded: { sku: "widget", stock: 1 - N }, replayed: { sku: "widget", stock: 0 } }]);
    expect(r.finalState.find((d) => d.table === "public.orders")!.count).toBe(N - 1);
    expect(await scratchLeft()).toBe(0);
  });

  it("--until leaves the scratch database just before an invocation and prints its URL", async () => {
    const [second] = await db.query<{ id: string }>("SELECT id::text FROM txfn.invocations WHERE id = ANY($1::bigint[]) AND function = 'takeStock' ORDER BY xid OFFSET 1 LIMIT 1", [ids]);
    const r = await txfn(["replay", "--invocations", ids.join(","), "--until", second!.id], env());
    expect(r.status).toBe(0);
    const url = /psql '([^']+)'/.exec(r.stdout)?.[1];
    expect(url, r.stdout + r.stderr).toBeDefined();
    const name = decodeURIComponent(new URL(url!).pathname.slice(1));
    try {
      const state = await onDatabase(url!, async (c) => ({
        stock: (await c.query("SELECT stock FROM inventory WHERE sku = 'widget'")).rows[0].stock,
        orders: Number((await c.query("SELECT count(*) AS n FROM orders")).rows[0].n),
        seen: (await c.query("SELECT count(*)::int AS n FROM txfn.invocations WHERE id = $1", [second!.id])).rows[0].n,
      }));
      expect(state).toEqual({ stock: 0, orders: 1, seen: 0 }); // the first take only; the second not yet run
    } finally {
      await dropDatabase(name);
    }
  });
});

describe("a reader that started before a writer committed but committed after it", () => {
  let reader = "";
  let writer = "";

  beforeAll(async () => {
    await onDatabase(db.url, async (a) => {
      await a.query("BEGIN ISOLATION LEVEL SERIALIZABLE");
      const r = await a.query("SELECT txfn.invoke('noteStock', '{\"sku\":\"gadget\",\"note\":\"reader\"}') AS e");
      reader = r.rows[0].e.invocationId;
      expect(r.rows[0].e.output).toEqual({ note: "reader", stock: 10 });
      const w = await client.invoke("restock", { sku: "gadget", qty: 5 }); // commits while the reader is open
      writer = w.invocationId;
      expect(ok(w as InvokeResult<{ stock: number }>).stock).toBe(15);
      await a.query("COMMIT");
    });
  });

  it("replays faithfully in snapshot order", async () => {
    const { status, report: r } = await report(["replay", "--invocations", `${reader},${writer}`]);
    expect(status).toBe(0);
    expect(r.counts.same).toBe(2);
    expect(r.finalState).toEqual([]);
  });

  it("diverges in commit order: the reader then sees the writer's stock", async () => {
    const { status, report: r } = await report(["replay", "--invocations", `${reader},${writer}`, "--order", "commit"]);
    expect(status).toBe(1);
    expect(r.firstDivergence).toMatchObject({
      id: reader,
      outcome: "output changed",
      recorded: { status: "ok", output: { note: "reader", stock: 10 } },
      replayed: { status: "ok", output: { note: "reader", stock: 15 } },
      writesChanged: true,
    });
    expect(r.firstDivergence!.firstWriteDiff).toMatchObject({ index: 0, recorded: { table: "public.seen", newRow: { stock: 10 } }, replayed: { newRow: { stock: 15 } } });
  });
});

describe("a write outside the trace that the trace saw", () => {
  it("is re-applied from provenance at its place (plain SQL between two traced invocations)", async () => {
    const a = await client.invoke("restock", { sku: "gadget", qty: 1 });
    await onDatabase(db.url, (c) => c.query("UPDATE inventory SET stock = stock + 100 WHERE sku = 'gadget'")); // like psql
    const b = await client.invoke("noteStock", { sku: "gadget", note: "after psql" });
    const seen = ok(b as InvokeResult<{ stock: number }>).stock;
    const { status, report: r } = await report(["replay", "--invocations", `${a.invocationId},${b.invocationId}`, "--all"]);
    expect(status).toBe(0);
    expect(r.trace).toMatchObject({ invocations: 2, transactions: 2, external: 1 });
    expect(r.counts.same).toBe(2);
    expect(r.invocations.find((i) => i.id === b.invocationId)!.replayed).toEqual({ status: "ok", output: { note: "after psql", stock: seen } });
    expect(r.finalState).toEqual([]);
  });
});

describe("bad input", () => {
  it("is refused with a clear message", async () => {
    const none = await txfn(["replay"], env());
    expect(none.status).toBe(1);
    expect(none.stderr).toMatch(/select a trace/);
    const missing = await txfn(["replay", "--invocations", "99999999"], env());
    expect(missing.stderr).toMatch(/no such invocation\(s\): 99999999/);
    const bad = await txfn(["replay", "--invocations", "12x"], env());
    expect(bad.stderr).toMatch(/not an invocation id: 12x/);
    const retro = await txfn(["retro", "--from", "1h"], env());
    expect(retro.stderr).toMatch(/--bundle <dir> or --bundle-version <n>/);
    const row = await txfn(["replay", "--row", "inventory"], env());
    expect(row.stderr).toMatch(/--row must be <table>:<key>/);
  });
});
