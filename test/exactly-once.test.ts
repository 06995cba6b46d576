// DESIGN "Exactly-once rules", one describe per rule, against the real cluster.
import { readFileSync } from "node:fs";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KeyReusedError, TxfnClient, type InvokeResult } from "../client/index.ts";
import { useTestDatabase } from "./support/database.ts";
import { deployProject } from "./support/deployed.ts";
import { loadRuntimePure } from "./support/runtime.ts";

const db = useTestDatabase();
let client: TxfnClient;
let version: number;

beforeAll(async () => {
  version = (await deployProject(db.url, "test/fixtures/rules")).version;
  client = new TxfnClient({ url: db.url, poolSize: 8 });
});
afterAll(async () => client?.close());

const counter = async (name: string) => Number((await db.query<{ n: string }>("SELECT n FROM rules.counters WHERE name = $1", [name]))[0]!.n);
const runs = async (fn: string, tag?: string) =>
  Number((await db.query<{ c: string }>("SELECT count(*) AS c FROM rules.body_runs WHERE fn = $1 AND ($2::text IS NULL OR tag = $2)", [fn, tag ?? null]))[0]!.c);
const attempts = async () => Number((await db.query<{ v: string }>("SELECT last_value AS v FROM rules.attempts"))[0]!.v);
const invocationRows = (key: string) => db.query<Record<string, unknown>>("SELECT * FROM txfn.invocations WHERE idempotency_key = $1", [key]);

function ok<O>(r: InvokeResult<O>): O {
  if (!r.ok) throw new Error(`expected an output, got the recorded error ${JSON.stringify(r.error)}`);
  return r.output;
}

/** One connection in an explicit transaction, for the SQL-level tests. */
async function withTransaction<T>(isolation: string, body: (c: pg.Client) => Promise<T>, end: "COMMIT" | "ROLLBACK"): Promise<T> {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    await c.query(`BEGIN ISOLATION LEVEL ${isolation}`);
    const out = await body(c);
    await c.query(end);
    return out;
  } finally {
    await c.end();
  }
}

describe("rule 1: the idempotency row, the writes and the outcome commit together or not at all", () => {
  it("a rolled-back caller transaction leaves no invocation, no write; a committed one leaves all three", async () => {
    const before = await counter("b");
    const call = (c: pg.Client) => c.query("SELECT txfn.invoke('add', '{\"counter\":\"b\",\"by\":5}', 'rule1', '{}') AS r");
    await withTransaction("SERIALIZABLE", call, "ROLLBACK");
    expect(await invocationRows("rule1")).toHaveLength(0);
    expect(await db.query("SELECT * FROM rules.ledger WHERE key = 'rule1'")).toHaveLength(0);
    expect(await counter("b")).toBe(before);

    const r = await withTransaction("SERIALIZABLE", call, "COMMIT");
    expect(r.rows[0].r).toMatchObject({ output: { counter: "b", n: String(before + 5) }, replayed: false });
    const [inv] = await invocationRows("rule1");
    expect(inv).toMatchObject({ status: "ok", function: "add", output: { counter: "b", n: String(before + 5) } });
    expect(await db.query("SELECT amount FROM rules.ledger WHERE key = 'rule1'")).toEqual([{ amount: "5" }]);
    expect(await counter("b")).toBe(before + 5);
  });

  it("a failure after the call, in the same transaction, takes the invocation record with it", async () => {
    const before = await counter("b");
    await expect(
      withTransaction("SERIALIZABLE", async (c) => {
        await c.query("SELECT txfn.invoke('add', '{\"counter\":\"b\",\"by\":7}', 'rule1-fail')");
        await c.query("SELECT 1/0");
      }, "COMMIT"),
    ).rejects.toThrow(/division by zero/);
    expect(await invocationRows("rule1-fail")).toHaveLength(0);
    expect(await counter("b")).toBe(before);
  });
});

describe("rule 2: the same key again returns the recorded outcome without running the body", () => {
  it("returns the recorded output, marked replayed, and the body ran once", async () => {
    const first = await client.invoke("add", { counter: "c", by: 2, tag: "rule2" }, { key: "rule2" });
    const second = await client.invoke("add", { counter: "c", by: 2, tag: "rule2" }, { key: "rule2" });
    expect(first.replayed).toBe(false);
    expect(second.replayed).toBe(true);
    expect(ok(second)).toEqual(ok(first));
    expect(second.invocationId).toBe(first.invocationId);
    expect(await runs("add", "rule2")).toBe(1);
    expect(await invocationRows("rule2")).toHaveLength(1);
  });
});

describe("rule 3: concurrent calls with one key run exactly one body", () => {
  it("50 concurrent calls with one key: one body run, 50 identical outputs", async () => {
    const wide = new TxfnClient({ url: db.url, poolSize: 50, maxRetries: 20 });
    try {
      const before = await counter("a");
      const results = await Promise.all(
        Array.from({ length: 50 }, () => wide.invoke("add", { counter: "a", by: 1, sleepMs: 300, tag: "rule3" }, { key: "rule3" })),
      );
      const outputs = results.map((r) => JSON.stringify(ok(r)));
      expect(new Set(outputs).size).toBe(1);
      expect(results.filter((r) => !r.replayed)).toHaveLength(1);
      expect(new Set(results.map((r) => r.invocationId)).size).toBe(1);
      expect(await runs("add", "rule3")).toBe(1);
      expect(await counter("a")).toBe(before + 1);
      expect(await invocationRows("rule3")).toHaveLength(1);
    } finally {
      await wide.close();
    }
  });
});

describe("rule 4: application errors are recorded, their writes rolled back", () => {
  it("a thrown error is recorded with its data; a retry returns it without running the body", async () => {
    const before = await counter("a");
    const first = await client.invoke("refuse", { reason: "no" }, { key: "rule4" });
    expect(first.ok).toBe(false);
    if (first.ok) return;
    expect(first.error).toMatchObject({ name: "Refused", message: "refused: no", data: { reason: "no" } });
    expect(await counter("a")).toBe(before); // the +1000 was rolled back
    expect(await runs("refuse")).toBe(0);
    const ran = await attempts();

    const second = await client.invoke("refuse", { reason: "no" }, { key: "rule4" });
    expect(second).toMatchObject({ ok: false, replayed: true, error: first.error, invocationId: first.invocationId });
    expect(await attempts()).toBe(ran); // the body did not run again
    const [inv] = await invocationRows("rule4");
    expect(inv).toMatchObject({ status: "error", output: null, error: first.error });
  });

  it("an SQL error the body lets escape (check violation) is recorded with its SQLSTATE", async () => {
    const before = await counter("b");
    const r = await client.invoke("overdraw", { counter: "b" }, { key: "rule4-check" });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error).toMatchObject({ sqlstate: "23514", constraint: "counters_n_check", table: "counters", schema: "rules" });
    expect(r.error.message).toMatch(/violates check constraint/);
    expect(await counter("b")).toBe(before);
    expect(await runs("overdraw")).toBe(0);
  });
});

describe("rule 5: transient errors are never recorded; the caller retries with the same key", () => {
  it("40001 under SERIALIZABLE contention is retried and each key applies once", async () => {
    const before = await counter("c");
    const keys = Array.from({ length: 8 }, (_, i) => `rule5-${i}`);
    const wide = new TxfnClient({ url: db.url, poolSize: 8, maxRetries: 50, baseDelayMs: 2, maxDelayMs: 200 });
    try {
      const results = await Promise.all(keys.map((key) => wide.invoke("bump", { counter: "c", sleepMs: 50 }, { key })));
      expect(results.every((r) => r.ok)).toBe(true);
      expect(Math.max(...results.map((r) => r.attempts))).toBeGreaterThan(1); // a 40001 happened and was retried
      expect(await counter("c")).toBe(before + keys.length);
      const recorded = await db.query<{ n: string }>(
        "SELECT count(*) AS n FROM txfn.invocations WHERE idempotency_key LIKE 'rule5-%' AND status = 'ok'",
      );
      expect(recorded[0]!.n).toBe(String(keys.length));
      const sortedOutputs = results.map((r) => Number((ok(r) as { n: string }).n)).sort((a, b) => a - b);
      expect(sortedOutputs).toEqual(keys.map((_, i) => before + i + 1));
    } finally {
      await wide.close();
    }
    expect(await db.query("SELECT 1 FROM txfn.invocations WHERE error->>'sqlstate' LIKE '40%'")).toHaveLength(0);
  });

  it("a connection terminated mid-call (admin shutdown, 57P01) is retried on a new connection and applies once", async () => {
    const before = await counter("b");
    const victim = new TxfnClient({ url: db.url, poolSize: 1, applicationName: "rule5-victim", baseDelayMs: 20 });
    try {
      const call = victim.invoke("add", { counter: "b", by: 11, sleepMs: 1500, tag: "rule5-kill" }, { key: "rule5-kill" });
      let killed = 0;
      for (let i = 0; i < 100 && killed === 0; i++) {
        await new Promise((r) => setTimeout(r, 50));
        const rows = await db.query<{ ok: boolean }>(
          "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = 'rule5-victim' AND query LIKE '%txfn.invoke%' AND state = 'active'",
        );
        killed = rows.filter((r) => r.ok).length;
      }
      expect(killed).toBe(1);
      const r = await call;
      expect(r).toMatchObject({ ok: true, output: { counter: "b", n: String(before + 11) } });
      expect(r.attempts).toBeGreaterThan(1);
    } finally {
      await victim.close();
    }
    expect(await counter("b")).toBe(before + 11);
    expect(await runs("add", "rule5-kill")).toBe(1);
    expect(await invocationRows("rule5-kill")).toHaveLength(1);
  });
});

describe("rule 6: void, null, bigint, Date and numeric round-trip as documented", () => {
  it("a function returning nothing returns the same on retry, with no duplicate-key error", async () => {
    const first = await client.invoke("nothing", { tag: "rule6" }, { key: "rule6-void" });
    const second = await client.invoke("nothing", { tag: "rule6" }, { key: "rule6-void" });
    expect(first).toMatchObject({ ok: true, output: undefined, replayed: false });
    expect(second).toMatchObject({ ok: true, output: undefined, replayed: true });
    expect("output" in second && second.output).toBeUndefined();
    const [inv] = await invocationRows("rule6-void");
    expect(inv).toMatchObject({ status: "ok", output: null });
    const nul = await client.invoke("nullish", {}, { key: "rule6-null" });
    expect(nul).toMatchObject({ ok: true, output: null });
    const [env] = await db.query<{ r: Record<string, unknown> }>("SELECT txfn.invoke('nullish', '{}', 'rule6-null') AS r");
    expect(env!.r).toHaveProperty("output", null);
    const [voidEnv] = await db.query<{ r: Record<string, unknown> }>("SELECT txfn.invoke('nothing', '{\"tag\":\"rule6\"}', 'rule6-void') AS r");
    expect(voidEnv!.r).not.toHaveProperty("output");
  });

  it("bigint → decimal string, Date → ISO-8601 UTC, numeric → number or exact text, doubles exact", async () => {
    const r = await client.invoke("values", null, { key: "rule6-values" });
    const out = ok(r) as Record<string, unknown>;
    expect(out).toMatchObject({
      big: "9223372036854775807",
      at: "2024-02-29T23:59:58.125Z",
      exact: "12345678901234567890.123456789",
      approx: 1.5,
      double: 0.30000000000000004,
      bytes: "\\x0102ff",
    });
    const [inv] = await invocationRows("rule6-values");
    expect(inv!.output).toEqual(out); // what is returned is what was recorded
    const again = await client.invoke("values", null, { key: "rule6-values" });
    expect(ok(again)).toEqual(out);
  });
});

describe("rule 7: a key reused with another function or input is refused", () => {
  it("refuses another function and another input, naming them", async () => {
    await client.invoke("add", { counter: "a", by: 1 }, { key: "rule7" });
    const otherFn = client.invoke("nothing", { tag: "x" }, { key: "rule7" });
    await expect(otherFn).rejects.toBeInstanceOf(KeyReusedError);
    await expect(otherFn).rejects.toThrow(/was used for function add, not nothing/);
    const otherInput = client.invoke("add", { counter: "a", by: 2 }, { key: "rule7" });
    await expect(otherInput).rejects.toBeInstanceOf(KeyReusedError);
    await expect(otherInput).rejects.toThrow(/with a different input/);
    await expect(db.query("SELECT txfn.invoke('add', '{\"counter\":\"a\",\"by\":2}', 'rule7')")).rejects.toMatchObject({ code: "TXF02" });
    expect(await invocationRows("rule7")).toHaveLength(1);
  });
});

describe("determinism and the invocation record", () => {
  it("Date and Math.random are pinned to the recorded time and seed; options replay them", async () => {
    const r = await client.invoke("values", null, { key: "pinned" });
    const out = ok(r) as { now: number; nowDate: string; random: number[] };
    const [inv] = await db.query<{ ms: number; seed: string; determinism: number }>(
      "SELECT (extract(epoch FROM pinned_time) * 1000)::float8 AS ms, seed, determinism FROM txfn.invocations WHERE idempotency_key = 'pinned'",
    );
    expect(out.now).toBe(inv!.ms);
    expect(out.nowDate).toBe(new Date(inv!.ms).toISOString());
    expect(inv!.determinism).toBe(1);
    const rng = loadRuntimePure().pure.makeRandom(Number(inv!.seed));
    expect(out.random).toEqual([rng(), rng()]);

    const replay = await client.invoke("values", null, { key: "pinned-replay", pinnedTime: inv!.ms, seed: Number(inv!.seed), version });
    const again = ok(replay) as typeof out;
    expect(again.now).toBe(out.now);
    expect(again.random).toEqual(out.random);
  });

  it("records xid, snapshot, isolation, role, workflow id/step; sets txfn.invocation_id for the transaction", async () => {
    const r = await client.invoke("whoAmI", null, { key: "wf-1:3", workflowId: "wf-1", workflowStep: 3 });
    const out = ok(r) as Record<string, unknown>;
    expect(out).toMatchObject({ key: "wf-1:3", workflowId: "wf-1", workflowStep: 3, fn: "whoAmI", version, invocationId: r.invocationId, setting: r.invocationId });
    const [inv] = await db.query<Record<string, unknown>>(
      "SELECT xid::text, snapshot::text, isolation, role, workflow_id, workflow_step, version, ended_at >= started_at AS timed " +
        "FROM txfn.invocations WHERE id = $1",
      [r.invocationId],
    );
    const [me] = await db.query<{ user: string }>("SELECT current_user AS user");
    expect(inv).toMatchObject({ isolation: "read committed", role: me!.user, workflow_id: "wf-1", workflow_step: 3, version, timed: true });
    expect(inv!.xid).toMatch(/^\d+$/);
    expect(inv!.snapshot).toMatch(/^\d+:\d+:/);
  });

  it("rejects unknown or malformed options with TXF04", async () => {
    await expect(db.query("SELECT txfn.invoke('add', '{}', NULL, '{\"retries\": 3}')")).rejects.toMatchObject({
      code: "TXF04",
      message: expect.stringMatching(/unknown option\(s\) retries/),
    });
    await expect(db.query("SELECT txfn.invoke('add', '{}', NULL, '{\"seed\": -1}')")).rejects.toMatchObject({ code: "TXF04" });
  });
});

describe("errors that are not application errors", () => {
  it("an unknown function is TXF01 and nothing is recorded", async () => {
    await expect(client.invoke("noSuchFunction", {}, { key: "nf" })).rejects.toMatchObject({ name: "FunctionNotFoundError", sqlstate: "TXF01" });
    expect(await invocationRows("nf")).toHaveLength(0);
  });

  it("a transaction weaker than the function's isolation is refused with TXF03 and a hint", async () => {
    await expect(
      withTransaction("READ COMMITTED", (c) => c.query("SELECT txfn.invoke('add', '{\"counter\":\"a\",\"by\":1}')"), "COMMIT"),
    ).rejects.toMatchObject({ code: "TXF03", message: expect.stringMatching(/needs isolation serializable/) });
  });

  it("a statement timeout is not recorded (57014)", async () => {
    await expect(client.invoke("add", { counter: "a", by: 1, sleepMs: 3000 }, { key: "timeout", statementTimeoutMs: 300 })).rejects.toMatchObject({
      sqlstate: "57014",
    });
    expect(await invocationRows("timeout")).toHaveLength(0);
  });

  it("a thrown error's stack names the TypeScript file and line", async () => {
    const line = readFileSync("test/fixtures/rules/index.ts", "utf8").split("\n").findIndex((l) => l.includes("THROW-LINE")) + 1;
    const r = await client.invoke("throwsHere", null);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.message).toBe("thrown from the fixture");
    expect(r.error.stack).toContain(`test/fixtures/rules/index.ts:${line}:`);
    expect(r.error.stack).not.toContain("txfn-bundle-v");
  });
});

describe("readOnly and ctx.call", () => {
  it("a read-only body reads; its write attempt is a recorded 25006", async () => {
    expect(ok(await client.invoke("readCounter", { counter: "a" }))).toMatch(/^\d+$/);
    const w = await client.invoke("readOnlyWrite", null);
    expect(w).toMatchObject({ ok: false, error: { sqlstate: "25006" } });
    // the read-only setting ended with the body: the outcome was recorded, the session writes again
    expect(await db.query("SELECT status FROM txfn.invocations WHERE id = $1", [w.invocationId])).toEqual([{ status: "error" }]);
  });

  it("ctx.log sends NOTICE/WARNING messages to the caller", async () => {
    const c = new pg.Client({ connectionString: db.url });
    const notices: string[] = [];
    c.on("notice", (n) => notices.push(`${n.severity}: ${n.message}`));
    await c.connect();
    try {
      await c.query("SELECT txfn.invoke('logs', '{\"note\": \"hello\"}')");
    } finally {
      await c.end();
    }
    expect(notices).toEqual(['NOTICE: plain hello {"n":1}', "WARNING: careful"]);
  });

  it("several statements in one ctx.execute string run (unprepared)", async () => {
    const before = await counter("c");
    expect(await client.invoke("multiStatement", null)).toMatchObject({ ok: true, output: String(before) });
  });

  it("ctx.call runs another function in the same transaction and invocation", async () => {
    const before = await counter("b");
    const count = async () => Number((await db.query<{ n: string }>("SELECT count(*) AS n FROM txfn.invocations"))[0]!.n);
    const invocations = await count();
    const r = await client.invoke("addTwice", { counter: "b", by: 3 });
    expect(ok(r)).toMatchObject({ n: String(before + 6) });
    expect(await count()).toBe(invocations + 1);
  });
});
