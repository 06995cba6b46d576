// Read provenance (provenance/README.md "Read provenance"): with capture_reads on, every
// completed ctx.query/ctx.execute of an invocation is recorded with its SQL, encoded parameters
// and row count, in the transaction's sequence shared with captured writes; nothing when off,
// nothing for an application error, nested invocations under their own id, never the runtime's
// own statements. Both runtime paths: txv8 >= 1.1's statements without a subtransaction, and a
// subtransaction per statement (plv8, older txv8: here the installed txv8 with txv8_version hidden).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TxfnClient, type InvokeResult } from "../client/index.ts";
import { runtimeFunctionBody, runtimeId } from "../migrations/index.ts";
import { txfn } from "./support/cli.ts";
import { useTestDatabase } from "./support/database.ts";

const db = useTestDatabase();
const env = () => ({ DATABASE_URL: db.url });
let client: TxfnClient;
/** The installed txv8 runs statements without a subtransaction of their own (txv8_version >= 1.1). */
let installedDirect = false;

beforeAll(async () => {
  const d = await txfn(["deploy", "test/fixtures/reads"], env());
  if (d.status !== 0) throw new Error(`deploy failed: ${d.stderr}`);
  client = new TxfnClient({ url: db.url, poolSize: 2, maxRetries: 0 });
  await db.query("CREATE FUNCTION rd.lib_version() RETURNS text LANGUAGE txv8 AS $$ return String(plv8.txv8_version) $$");
  const [major, minor] = (await db.query<{ v: string }>("SELECT rd.lib_version() AS v"))[0]!.v.split(".").map(Number) as [number, number];
  installedDirect = major > 1 || (major === 1 && minor >= 1);
});
afterAll(async () => client?.close());

interface Read {
  seq: number;
  invocation_id: string;
  sql: string;
  params: unknown[] | null;
  row_count: number | null;
}

/** Every read recorded in the transaction of invocation `id` (nested invocations included), in order. */
async function readsOf(id: string): Promise<Read[]> {
  return db.query<Read>(
    "SELECT r.seq, r.invocation_id::text, r.sql, r.params, r.row_count::int FROM txfn.provenance_reads r " +
      "JOIN txfn.invocations i ON i.xid = r.xid WHERE i.id = $1::bigint ORDER BY r.seq",
    [id],
  );
}
const allReads = async () => Number((await db.query<{ n: string }>("SELECT count(*) AS n FROM txfn.provenance_reads"))[0]!.n);
/** seq of the captured writes of invocation `id`'s transaction. */
const writeSeqs = async (id: string) =>
  (await db.query<{ seq: number }>("SELECT p.seq FROM txfn.provenance p JOIN txfn.invocations i ON i.xid = p.xid WHERE i.id = $1::bigint ORDER BY p.seq", [id])).map((r) => r.seq);

function ok<O>(r: InvokeResult<O>): O {
  if (!r.ok) throw new Error(`expected an output, got ${JSON.stringify(r.error)}`);
  return r.output;
}

async function cli(args: string[]): Promise<string> {
  const r = await txfn(args, env());
  if (r.status !== 0) throw new Error(`txfn ${args.join(" ")} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/**
 * Re-installs the runtime's functions so that the runtime sees a plv8 without txv8_version: it
 * then runs every statement in a subtransaction of its own, as on plv8 and txv8 < 1.1. A runtime
 * id of its own makes pooled backends re-evaluate it.
 */
async function useSubtransactionPerStatement(): Promise<void> {
  const id = `${runtimeId()}-sub`;
  const shim =
    "var txfnPlv8 = { prepare: function () { return plv8.prepare.apply(plv8, arguments); }, execute: function () { return plv8.execute.apply(plv8, arguments); }, " +
    "subtransaction: function (f) { return plv8.subtransaction(f); }, elog: function () { return plv8.elog.apply(plv8, arguments); } };\n";
  const body = (call: string) => {
    const text = runtimeFunctionBody(id, call);
    const factoryCall = `)(plv8, ${JSON.stringify(id)})`;
    if (!text.includes(factoryCall)) throw new Error("runtimeFunctionBody changed: cannot hide txv8_version");
    return shim + text.replace(factoryCall, `)(txfnPlv8, ${JSON.stringify(id)})`);
  };
  const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;
  await db.query(`CREATE OR REPLACE FUNCTION txfn._invoke(fn text, input text, idempotency_key text, options text) RETURNS text LANGUAGE txv8 VOLATILE AS ${lit(body("invoke(fn, input, idempotency_key, options)"))}`);
  await db.query(`CREATE OR REPLACE FUNCTION txfn._bundle_functions(version integer) RETURNS text LANGUAGE txv8 VOLATILE AS ${lit(body("bundleFunctions(version)"))}`);
  await db.query(`CREATE OR REPLACE FUNCTION txfn._read_only_call() RETURNS text LANGUAGE txv8 VOLATILE SET transaction_read_only = on AS ${lit(body("runPendingReadOnly()"))}`);
}

describe("read provenance off (the default)", () => {
  it("records nothing, and the reader says it is off", async () => {
    const r = await client.invoke("readWrite", { id: "off", v: 1 });
    expect(ok(r)).toMatchObject({ upserted: 1 });
    expect(await allReads()).toBe(0);
    expect(await cli(["provenance", "reads", "--invocation", r.invocationId])).toMatch(
      new RegExp(`^invocation ${r.invocationId} readWrite v1 \\(ok\\), xid \\d+: 0 read\\(s\\) — read provenance is off`),
    );
    const json = JSON.parse(await cli(["provenance", "reads", "--invocation", r.invocationId, "--json"]));
    expect(json).toMatchObject({ invocationId: r.invocationId, function: "readWrite", status: "ok", captureReads: false, reads: [] });
  });

  it("the reader refuses a malformed or unknown invocation id", async () => {
    const bad = await txfn(["provenance", "reads", "--invocation", "abc"], env());
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/not an invocation id/);
    const unknown = await txfn(["provenance", "reads", "--invocation", "999999"], env());
    expect(unknown.stderr).toMatch(/no invocation 999999/);
  });
});

describe.each([
  ["the installed txv8", false],
  ["a subtransaction per statement", true],
])("read provenance on, %s", (_name, subtransactionPerStatement) => {
  // true when statements run without their own subtransaction on this path
  let direct = false;
  beforeAll(async () => {
    if (subtransactionPerStatement) await useSubtransactionPerStatement();
    direct = installedDirect && !subtransactionPerStatement;
    // through the CLI, while the pool's backends hold the claim's plan prepared with reads off
    expect(await cli(["provenance", "config", "--reads", "on"])).toMatch(/"captureReads":true/);
  });

  it("records each statement with its SQL, encoded parameters and row count, interleaved with the writes", async () => {
    const id = `a${subtransactionPerStatement ? "s" : "d"}`;
    const r = await client.invoke("readWrite", { id, v: 5 });
    expect(ok(r)).toEqual({ before: 0, upserted: 1, touched: 3, big: "9007199254740993" });
    const reads = await readsOf(r.invocationId);
    expect(reads.map((x) => [x.sql, x.params, x.row_count])).toEqual([
      ["SELECT v FROM rd.items WHERE id = $1", [id], 0],
      ["INSERT INTO rd.items (id, v) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET v = excluded.v", [id, 5], 1],
      ["UPDATE rd.items SET v = v WHERE id = ANY($1)", [["x", "y", id]], 3],
      [
        "SELECT $1::int8::text AS big, $2::timestamptz AS at, $3::bytea AS bytes, $4::text AS none",
        ["9007199254740993", "2024-02-29T23:59:58.125Z", "\\x0102ff", null],
        1,
      ],
    ]);
    for (const x of reads) expect(x.invocation_id).toBe(r.invocationId);
    // one sequence for reads and writes: the INSERT's change comes before its read record, the
    // UPDATE's three changes before its own
    expect(reads.map((x) => x.seq)).toEqual([1, 3, 7, 8]);
    expect(await writeSeqs(r.invocationId)).toEqual([2, 4, 5, 6]);

    const json = JSON.parse(await cli(["provenance", "reads", "--invocation", r.invocationId, "--json"]));
    expect(json).toMatchObject({ invocationId: r.invocationId, function: "readWrite", version: 1, status: "ok", captureReads: true });
    expect(json.reads).toEqual(reads.map((x) => ({ seq: x.seq, sql: x.sql, params: x.params, rowCount: x.row_count })));
    const text = (await cli(["provenance", "reads", "--invocation", r.invocationId])).split("\n");
    expect(text[0]).toMatch(new RegExp(`^invocation ${r.invocationId} readWrite v1 \\(ok\\), xid \\d+: 4 read\\(s\\)$`));
    expect(text[1]).toBe(`  #1    0 row(s)  SELECT v FROM rd.items WHERE id = $1  ["${id}"]`);
    expect(text[3]).toBe(`  #7    3 row(s)  UPDATE rd.items SET v = v WHERE id = ANY($1)  [["x","y","${id}"]]`);
  });

  it("an application error leaves no reads (rolled back with its body)", async () => {
    const before = await allReads();
    const r = await client.invoke("failsAfterReading", { id: "x" });
    expect(r).toMatchObject({ ok: false, error: { message: "refused after reading" } });
    expect(await allReads()).toBe(before);
    expect(await cli(["provenance", "reads", "--invocation", r.invocationId])).toMatch(/\(error\).*0 read\(s\) — an application error's reads are rolled back/);
  });

  it("ctx.call reads belong to the calling invocation; a nested txfn.invoke records under its own id", async () => {
    const r = await client.invoke<{ nested: string }>("outer", { id: "x" });
    const nested = ok(r).nested;
    expect(nested).not.toBe(r.invocationId);
    const reads = await readsOf(r.invocationId);
    expect(reads.map((x) => [x.seq, x.invocation_id, x.sql, x.row_count])).toEqual([
      [1, r.invocationId, "SELECT count(*) AS n FROM rd.items", 1],
      [2, r.invocationId, "SELECT v FROM rd.items WHERE id = $1 /* inner */", 1], // ctx.call: the same invocation
      [3, nested, "SELECT v FROM rd.items WHERE id = $1 /* inner */", 1], // the nested invocation's own
      [4, r.invocationId, "SELECT txfn.invoke('innerRead', $1::text::jsonb) AS r", 1], // recorded when it completed
    ]);
    const inner = JSON.parse(await cli(["provenance", "reads", "--invocation", nested, "--json"]));
    expect(inner.reads.map((x: { seq: number }) => x.seq)).toEqual([3]);
  });

  it("a readOnly body's reads are recorded (after its read-only call); a rolled-back subtransaction's are not", async () => {
    const r = await client.invoke("readOnlyReads", null);
    expect(typeof ok(r)).toBe("number");
    expect((await readsOf(r.invocationId)).map((x) => [x.seq, x.sql, x.row_count])).toEqual([
      [1, "SELECT 'first' AS a", 1],
      [2, "SELECT count(*)::int AS n FROM rd.items", 1],
    ]);
  });

  it("a failed statement is not recorded: the body fails (statements without subtransaction) or goes on without it", async () => {
    const before = await allReads();
    const r = await client.invoke("catchesSqlError", null);
    if (direct) {
      expect(r).toMatchObject({ ok: false, error: { sqlstate: "22012" } });
      expect(await allReads()).toBe(before);
    } else {
      expect(ok(r)).toBe("went on");
      expect((await readsOf(r.invocationId)).map((x) => x.sql)).toEqual(["SELECT 1 AS one", "SELECT 2 AS two"]);
    }
    const s = await client.invoke("subtransactionReads", null);
    expect(ok(s)).toBe(1);
    expect((await readsOf(s.invocationId)).map((x) => [x.seq, x.sql])).toEqual([[1, "SELECT 'kept' AS a"]]);
  });

  it("records none of the runtime's own statements", async () => {
    const sqls = (await db.query<{ sql: string }>("SELECT DISTINCT sql FROM txfn.provenance_reads")).map((x) => x.sql);
    expect(sqls.length).toBeGreaterThan(0);
    const runtime = sqls.filter((s) => /txfn\.(invocations|bundles|_provenance_read|_read_only_call)|set_config/.test(s));
    expect(runtime).toEqual([]);
  });
});

describe("read provenance switched off again", () => {
  it("records nothing from the next invocation on", async () => {
    expect(await cli(["provenance", "config", "--reads", "off"])).toMatch(/"captureReads":false/);
    const before = await allReads();
    ok(await client.invoke("readWrite", { id: "off-again", v: 2 }));
    ok(await client.invoke("readOnlyReads", null));
    expect(await allReads()).toBe(before);
  });
});
