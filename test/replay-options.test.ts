// txfn replay / txfn retro options against the real cluster, through the real CLI: a partial
// trace (--workflows) whose rows other transactions changed in between and after replays with no
// divergence and no final-state difference; --target reconstructs into a given database and
// keeps it; --row selects every writer of a row; --bundle-version and --functions; --stop-at-
// divergence; --json against the readable report; a schema changed since the trace is detected;
// option combinations that cannot work (--functions the new code lacks, --bundle with
// --bundle-version, --until with --order commit or outside the trace) are errors.
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TxfnClient, type InvokeOptions, type InvokeResult } from "../client/index.ts";
import type { ReplayReport } from "../replay/index.ts";
import { REPO_ROOT, txfn } from "./support/cli.ts";
import { adminUrl, useTestDatabase } from "./support/database.ts";
import { onDatabase, replayReport } from "./support/replay.ts";

const db = useTestDatabase();
const env = () => ({ DATABASE_URL: db.url });
const NO_OVERSELL = "SELECT sku, stock FROM inventory WHERE stock < 0";
let client: TxfnClient;
let target = "";

beforeAll(async () => {
  const d = await txfn(["deploy", "functions/examples/oversell"], env());
  if (d.status !== 0) throw new Error(`deploy failed: ${d.stderr}`);
  client = new TxfnClient({ url: db.url, poolSize: 4, applicationName: "replay-options-test" });
});
afterAll(async () => {
  await client?.close();
  if (target) await onDatabase(adminUrl("postgres"), (c) => c.query(`DROP DATABASE IF EXISTS "${target}" WITH (FORCE)`));
});

async function call<O>(fn: string, input: unknown, options: InvokeOptions = {}): Promise<{ id: string; output: O }> {
  const r = (await client.invoke(fn, input, options)) as InvokeResult<O>;
  if (!r.ok) throw new Error(`${fn}: ${JSON.stringify(r.error)}`);
  return { id: r.invocationId, output: r.output };
}

const report = (args: string[]) => replayReport(db.url, args);

const scratchLeft = async () =>
  Number((await db.query<{ n: string }>("SELECT count(*) AS n FROM pg_database WHERE datname LIKE $1", [`txfn_replay_${db.name}_%`]))[0]!.n);

describe("a partial trace whose rows other transactions changed, in between and after", () => {
  const wf = { step0: "", step1: "", step2: "" };
  let noted = 0;

  beforeAll(async () => {
    await db.query("INSERT INTO inventory VALUES ('p-1', 100), ('p-2', 50)");
    wf.step0 = (await call("takeStock", { sku: "p-1", orderId: "wf-a-0" }, { workflowId: "wf-a", workflowStep: 0 })).id;
    // Between the workflow's steps, one after the other: other invocations and psql on the same
    // rows. The trace's later steps see them: they are re-applied from provenance, in their order.
    for (let i = 0; i < 3; i++) {
      await call("restock", { sku: "p-1", qty: i + 1 });
      await call("takeStock", { sku: "p-1", orderId: `other-${i}` });
    }
    await db.query("UPDATE inventory SET stock = stock + 7 WHERE sku = 'p-1'");
    await call("takeStock", { sku: "p-2", orderId: "wf-b-0" }, { workflowId: "wf-b", workflowStep: 0 });
    const note = await call<{ stock: number }>("noteStock", { sku: "p-1", note: "wf-a" }, { workflowId: "wf-a", workflowStep: 1 });
    wf.step1 = note.id;
    noted = note.output.stock;
    expect(noted).toBe(100 - 1 + 6 - 3 + 7);
    wf.step2 = (await call("takeStock", { sku: "p-2", orderId: "wf-a-2" }, { workflowId: "wf-a", workflowStep: 2 })).id;
    // After the trace: the same rows change again (later transactions, not part of it).
    await call("restock", { sku: "p-1", qty: 5 });
    await db.query("UPDATE inventory SET stock = 0 WHERE sku = 'p-2'");
    await db.query("DELETE FROM orders WHERE order_id = 'wf-a-0'");
    await db.query("UPDATE seen SET stock = -1 WHERE note = 'wf-a'");
  });

  it("--workflows replays with zero divergences and no final-state difference", async () => {
    const { status, report: r } = await report(["replay", "--workflows", "wf-a", "--all"]);
    expect(status).toBe(0);
    expect(r.trace).toMatchObject({ invocations: 3, transactions: 3 });
    expect(r.trace.external).toBeGreaterThanOrEqual(8); // 6 invocations, psql's update, wf-b
    expect(r.counts.same).toBe(3);
    expect(r.firstDivergence).toBeNull();
    expect(r.finalState).toEqual([]);
    expect(r.finalStateRows).toBeGreaterThanOrEqual(8); // p-1, p-2, 5 orders, the note
    expect(r.warnings).toEqual([]);
    expect(r.invocations.find((i) => i.id === wf.step1)!.replayed).toEqual({ status: "ok", output: { note: "wf-a", stock: noted } });
    expect(await scratchLeft()).toBe(0);
  });

  it("--target reconstructs into a given database, leaves it as the trace ended, and never drops it", async () => {
    target = `${db.name}_target`;
    await onDatabase(adminUrl("postgres"), (c) => c.query(`CREATE DATABASE "${target}"`));
    const url = adminUrl(target);
    const { status, report: r } = await report(["replay", "--workflows", "wf-a", "--target", url]);
    expect(status).toBe(0);
    expect(r.scratch).toMatchObject({ database: target, kept: true });
    expect(r.counts.same).toBe(3);
    expect(r.finalState).toEqual([]);
    const state = await onDatabase(url, async (c) => ({
      stock: (await c.query("SELECT sku, stock FROM inventory WHERE sku LIKE 'p-%' ORDER BY sku")).rows,
      order: (await c.query("SELECT count(*)::int AS n FROM orders WHERE order_id = 'wf-a-0'")).rows[0].n,
      seen: (await c.query("SELECT stock FROM seen WHERE note = 'wf-a'")).rows[0].stock,
      invocations: (await c.query("SELECT i.id::text AS id FROM txfn.invocations i WHERE i.workflow_id = 'wf-a' ORDER BY i.id")).rows.map((x) => x.id),
    }));
    // As the trace left them, not as later transactions did (p-1 restocked, p-2 zeroed, the order deleted, the note changed).
    expect(state).toEqual({
      stock: [{ sku: "p-1", stock: noted }, { sku: "p-2", stock: 48 }],
      order: 1,
      seen: noted,
      invocations: [wf.step0, wf.step1, wf.step2],
    });
    const again = await txfn(["replay", "--workflows", "wf-a", "--target", url], env());
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/--target already has a txfn schema/);
    expect((await db.query("SELECT 1 FROM pg_database WHERE datname = $1", [target])).length).toBe(1);
  });

  it("--row replays every invocation that wrote the row", async () => {
    const writers = await db.query<{ id: string }>(
      "SELECT DISTINCT i.id::text AS id FROM txfn.provenance p JOIN txfn.invocations i ON i.id = p.invocation_id AND i.xid = p.xid " +
        "JOIN txfn.provenance_tables t ON t.id = p.table_id AND t.table_name = 'inventory' WHERE p.key = '{\"sku\": \"p-2\"}' ORDER BY 1",
    );
    expect(writers.length).toBe(2); // wf-b's take and wf-a's last step; psql's writes are no invocation
    const { status, report: r } = await report(["replay", "--row", "inventory:p-2", "--all"]);
    expect(status).toBe(0);
    expect(r.invocations.map((i) => i.id).sort()).toEqual(writers.map((w) => w.id).sort());
    expect(r.counts.same).toBe(2);
    expect(r.finalState).toEqual([]);
    const none = await txfn(["replay", "--row", "inventory:no-such-sku"], env());
    expect(none.status).toBe(1);
    expect(none.stderr).toMatch(/no invocation wrote/);
  });
});

describe("the oversell race: --bundle-version and --functions", () => {
  let ids: string[] = [];
  let fixed = 0;

  beforeAll(async () => {
    const checks = await Promise.all([1, 2, 3].map(() => call<{ available: number }>("checkStock", { sku: "widget" })));
    expect(checks.map((c) => c.output.available)).toEqual([1, 1, 1]);
    const takes = await Promise.all([1, 2, 3].map((i) => call("takeStock", { sku: "widget", orderId: `race-${i}` })));
    ids = [...checks, ...takes].map((x) => x.id);
    const [active] = await db.query<{ version: number }>("SELECT version FROM txfn.bundles WHERE active");
    const d = await txfn(["deploy", "functions/examples/oversell-fixed"], env());
    if (d.status !== 0) throw new Error(`deploy failed: ${d.stderr}`);
    fixed = (await db.query<{ v: number }>("SELECT max(version) AS v FROM txfn.bundles"))[0]!.v;
    const back = await txfn(["rollback", String(active!.version)], env()); // the buggy one stays active
    if (back.status !== 0) throw new Error(`rollback failed: ${back.stderr}`);
  });

  it("--bundle-version runs a deployed version, for the functions --functions names", async () => {
    const take = await report(["retro", "--invocations", ids.join(","), "--bundle-version", String(fixed), "--functions", "takeStock", "--check", NO_OVERSELL]);
    expect(take.status).toBe(0);
    expect(take.report.retro).toEqual({ version: fixed, functions: ["takeStock"] });
    expect(take.report.counts).toMatchObject({ same: 4, "now fails": 2 });
    expect(take.report.checks[0]).toMatchObject({ ok: true, rowCount: 0 });
    // Only checkStock swapped: takeStock runs its recorded (buggy) version, and the oversell stays.
    const check = await report(["retro", "--invocations", ids.join(","), "--bundle-version", String(fixed), "--functions", "checkStock", "--check", NO_OVERSELL]);
    expect(check.status).toBe(1);
    expect(check.report.counts.same).toBe(6);
    expect(check.report.finalState).toEqual([]);
    expect(check.report.checks[0]).toMatchObject({ ok: false, rows: [{ sku: "widget", stock: -2 }] });
    const missing = await txfn(["retro", "--invocations", ids.join(","), "--bundle-version", "999"], env());
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/no bundle version 999/);
    expect(await scratchLeft()).toBe(0);
  });

  it("option combinations that cannot work are errors that say why, before anything is created", async () => {
    const trace = ["--invocations", ids.join(",")];
    const functions = "(its functions: checkStock, noteStock, restock, takeStock)";
    // A --functions name the new code lacks would run its recorded version and read as "same".
    const byVersion = await txfn(["retro", ...trace, "--bundle-version", String(fixed), "--functions", "takeStock,nope"], env());
    expect(byVersion.status).toBe(1);
    expect(byVersion.stdout).toBe("");
    expect(byVersion.stderr).toContain(`txfn: --functions: nope is not a function of bundle version ${fixed} ${functions}`);
    const built = await txfn(["retro", ...trace, "--bundle", "functions/examples/oversell-fixed", "--functions", "nope,nada"], env());
    expect(built.status).toBe(1);
    expect(built.stderr).toContain(`txfn: --functions: nope, nada are not functions of the bundle built from functions/examples/oversell-fixed ${functions}`);
    const both = await txfn(["retro", ...trace, "--bundle", "functions/examples/oversell-fixed", "--bundle-version", String(fixed)], env());
    expect(both.status).toBe(1);
    expect(both.stderr).toMatch(/^txfn: --bundle and --bundle-version are mutually exclusive: give one of them\n/);
    const neither = await txfn(["retro", ...trace], env());
    expect(neither.status).toBe(1);
    expect(neither.stderr).toMatch(/^txfn: give the new code: --bundle <dir> or --bundle-version <n>\n/);
    const commit = await txfn(["replay", "--until", ids[0]!, "--order", "commit"], env());
    expect(commit.status).toBe(1);
    expect(commit.stderr).toMatch(/^txfn: --until and --order commit cannot be combined/);
    const outside = await txfn(["replay", "--invocations", ids[0]!, "--until", ids[1]!], env());
    expect(outside.status).toBe(1);
    expect(outside.stderr).toMatch(new RegExp(`^txfn: invocation ${ids[1]} is not in the selected trace`));
    expect(await scratchLeft()).toBe(0);
  });
});

describe("a reader that committed after a writer it did not see: --stop-at-divergence, --json", () => {
  let ids: string[] = [];
  let reader = "";

  beforeAll(async () => {
    await onDatabase(db.url, async (a) => {
      await a.query("BEGIN ISOLATION LEVEL SERIALIZABLE");
      reader = (await a.query("SELECT txfn.invoke('noteStock', '{\"sku\":\"gadget\",\"note\":\"reader\"}') AS e")).rows[0].e.invocationId;
      const writer = await call("restock", { sku: "gadget", qty: 5 });
      await a.query("COMMIT");
      const later = [await call("restock", { sku: "gadget", qty: 1 }), await call("restock", { sku: "gadget", qty: 1 })];
      ids = [reader, writer.id, ...later.map((x) => x.id)];
    });
  });

  it("--stop-at-divergence stops at the first transaction that diverges; the rest is not reached", async () => {
    const stopped = await report(["replay", "--invocations", ids.join(","), "--order", "commit", "--stop-at-divergence"]);
    expect(stopped.status).toBe(1);
    expect(stopped.report.stoppedEarly).toBe(true);
    expect(stopped.report.firstDivergence).toMatchObject({ id: reader, outcome: "output changed" });
    expect(stopped.report.notReached).toBe(2);
    expect(stopped.report.counts).toMatchObject({ same: 1, "output changed": 1 });
    const whole = await report(["replay", "--invocations", ids.join(","), "--order", "commit"]);
    expect(whole.report).toMatchObject({ stoppedEarly: false, notReached: 0 });
    expect(whole.report.counts).toMatchObject({ same: 3, "output changed": 1 });
    // In snapshot order nothing diverges, so nothing stops.
    const faithful = await report(["replay", "--invocations", ids.join(","), "--stop-at-divergence"]);
    expect(faithful.status).toBe(0);
    expect(faithful.report).toMatchObject({ stoppedEarly: false, notReached: 0, firstDivergence: null });
    expect(faithful.report.counts.same).toBe(4);
  });

  it("--json prints the report the readable output shows", async () => {
    const text = await txfn(["replay", "--invocations", ids.join(","), "--order", "commit", "--no-progress"], env());
    expect(text.status).toBe(1);
    expect(text.stdout).toMatch(/^replay \(commit order\) of 4 invocation\(s\) in 4 transaction\(s\)/);
    expect(text.stdout).toContain("outcomes: same 3, output changed 1");
    expect(text.stdout).toContain(`FIRST DIVERGENCE:\n  #${reader} noteStock: output changed`);
    expect(text.stdout).toContain('recorded: ok {"note":"reader","stock":10}');
    expect(text.stdout).toContain('replayed: ok {"note":"reader","stock":15}');
    const json = await txfn(["replay", "--invocations", ids.join(","), "--order", "commit", "--json"], env());
    expect(json.status).toBe(1);
    const r = JSON.parse(json.stdout) as ReplayReport;
    expect(r).toMatchObject({ mode: "replay", order: "commit", trace: { invocations: 4, transactions: 4 }, counts: { same: 3, "output changed": 1 } });
    expect(r.firstDivergence).toMatchObject({ id: reader, recorded: { output: { stock: 10 } }, replayed: { output: { stock: 15 } } });
    const ok = await txfn(["replay", "--invocations", ids.join(","), "--no-progress"], env());
    expect(ok.status).toBe(0);
    expect(ok.stdout).toContain("faithful: every output, error and write is the recorded one");
    expect(ok.stdout).toMatch(/final state: the \d+ row\(s\) the replay wrote are as recorded at the trace's end/);
  });
});

// Last: it changes the schema for good.
describe("a schema changed since the trace", () => {
  it("is detected and warned about; columns added since are left out of the comparison", async () => {
    const a = await call("restock", { sku: "gadget", qty: 2 }); // writes inventory and events (no primary key)
    const b = await call("noteStock", { sku: "gadget", note: "before the change" });
    await db.query("ALTER TABLE seen ADD COLUMN mood text NOT NULL DEFAULT 'calm'"); // psql: no migration
    const project = mkdtempSync(join(tmpdir(), "txfn-oversell-v2-"));
    try {
      cpSync(join(REPO_ROOT, "functions/examples/oversell"), project, { recursive: true });
      writeFileSync(join(project, "migrations", "1732875000000_events-source.sql"), "-- Up Migration\nALTER TABLE public.events ADD COLUMN source text DEFAULT 'shop';\n");
      const d = await txfn(["deploy", project], env());
      if (d.status !== 0) throw new Error(`deploy failed: ${d.stderr}`);
    } finally {
      rmSync(project, { recursive: true, force: true });
    }
    const { status, report: r } = await report(["replay", "--invocations", `${a.id},${b.id}`, "--keep"]);
    try {
      expect(r.warnings.join("\n")).toMatch(/migration\(s\) 1732875000000_events-source ran since/);
      expect(r.warnings.join("\n")).toMatch(/public\.seen has another schema today than during the trace: column\(s\) mood added since/);
      expect(r.warnings.join("\n")).toMatch(/public\.events has another schema today than during the trace: column\(s\) source added since/);
      expect(status).toBe(0);
      expect(r.counts.same).toBe(2);
      expect(r.finalState).toEqual([]);
      // The rows the trace wrote got the added columns' defaults; the event rows were matched without them.
      const rows = await onDatabase(r.scratch.url, async (c) => ({
        seen: (await c.query("SELECT note, mood FROM seen WHERE note = 'before the change'")).rows,
        events: Number((await c.query("SELECT count(*) AS n FROM events WHERE (detail #>> '{}')::jsonb = $1::jsonb", [JSON.stringify({ sku: "gadget", qty: 2 })])).rows[0].n),
      }));
      expect(rows).toEqual({ seen: [{ note: "before the change", mood: "calm" }], events: 1 });
    } finally {
      await db.query(`DROP DATABASE IF EXISTS "${r.scratch.database}" WITH (FORCE)`);
    }
  });
});
