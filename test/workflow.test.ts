// Durable workflows, in process: an executor in the test process runs the fixture's workflows
// (test/fixtures/wf) against a real database. Crashes and restarts: workflow-recovery.test.ts.
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Executor,
  StepFailedError,
  WorkflowClient,
  WorkflowConflictError,
  WorkflowFailedError,
  WorkflowOptionsError,
  WorkflowStateError,
  loadProject,
  startExecutor,
  workflow,
  type LoadedProject,
} from "../workflows/index.ts";
import { closeLog } from "./fixtures/wf/workflows/_external.ts";
import { basic, sleepy } from "./fixtures/wf/workflows/basic.ts";
import { txfn, txfnSync } from "./support/cli.ts";
import { useTestDatabase } from "./support/database.ts";
import { deployProject } from "./support/deployed.ts";

const db = useTestDatabase();
let project: LoadedProject;
let executor: Executor;
let client: WorkflowClient;

beforeAll(async () => {
  await deployProject(db.url, "test/fixtures/wf", { schemas: false });
  process.env.TXFN_TEST_DB = db.url;
  project = await loadProject("test/fixtures/wf");
  executor = await startExecutor({ databaseUrl: db.url, workflows: project, executorId: "in-process", leaseMs: 2000, pollMs: 50 });
  client = new WorkflowClient({ databaseUrl: db.url });
});

afterAll(async () => {
  await executor?.stop();
  await client?.close();
  await closeLog();
});

const notes = (id: string) =>
  db.query<{ tag: string; step: number; version: number }>("SELECT tag, step, version FROM wf.notes WHERE workflow_id = $1 ORDER BY id", [id]);

describe("workflows in process", () => {
  it("runs transaction, external, now/random and child steps to SUCCESS, each recorded once", async () => {
    const h = await executor.start(basic, { n: 21 }, { id: "basic-1" });
    const out = (await h.result()) as Record<string, any>;
    expect(out.t).toEqual({ tag: "basic", step: 1, version: 1 });
    expect(out.ext).toEqual({ key: "basic-1:2" });
    expect(typeof out.now).toBe("number");
    expect(out.random).toBeGreaterThanOrEqual(0);
    expect(out.child).toBe(42);
    expect(out.v).toBe("undefined"); // a void transaction replays as undefined, not null
    const steps = await client.steps("basic-1");
    expect(steps.map((s) => [s.step, s.kind, s.name, s.status])).toEqual([
      [1, "transaction", "note", "ok"],
      [2, "step", "ext", "ok"],
      [3, "now", "now", "ok"],
      [4, "random", "random", "ok"],
      [5, "child", "kid", "ok"],
      [6, "transaction", "nothing", "ok"],
    ]);
    expect(steps[4]!.output).toEqual({ workflowId: "basic-1/5" });
    // ctx.transaction went through txfn.invoke with key <workflowId>:<step> and the workflow options
    const inv = await db.query("SELECT idempotency_key, workflow_id, workflow_step, version FROM txfn.invocations WHERE workflow_id LIKE 'basic-1%' ORDER BY id");
    expect(inv).toEqual([
      { idempotency_key: "basic-1:1", workflow_id: "basic-1", workflow_step: 1, version: 1 },
      { idempotency_key: "basic-1/5:1", workflow_id: "basic-1/5", workflow_step: 1, version: 1 },
      { idempotency_key: "basic-1:6", workflow_id: "basic-1", workflow_step: 6, version: 1 },
    ]);
    const child = await client.get("basic-1/5");
    expect(child).toMatchObject({ status: "SUCCESS", output: 42, parentId: "basic-1", bundleVersion: 1 });
    expect(await client.get("basic-1")).toMatchObject({ status: "SUCCESS", bundleVersion: 1, attempts: 1, executorId: "in-process" });
  });

  it("starting an existing id returns its handle without running it again; another name or input is an error", async () => {
    const h1 = await executor.start(sleepy, { ms: 1 }, { id: "same-id" });
    await h1.result();
    const h2 = await executor.start(sleepy, { ms: 1 }, { id: "same-id" });
    expect(await h2.result()).toEqual({ slept: 1 });
    expect((await notes("same-id")).map((n) => n.tag)).toEqual(["before", "after"]);
    await expect(executor.start(sleepy, { ms: 2 }, { id: "same-id" })).rejects.toThrow(WorkflowConflictError);
    await expect(executor.start(sleepy, { ms: 2 }, { id: "same-id" })).rejects.toThrow(/another input/);
    await expect(client.start("basic", { n: 1 }, { id: "same-id" })).rejects.toThrow(/already used by a workflow "sleepy", not "basic"/);
  });

  it("retries an external step with the same idempotency key; a NonRetryableError fails it at once", async () => {
    const h = await executor.start("flaky", { failures: 2 }, { id: "flaky-1" });
    const out = (await h.result()) as { seen: { attempt: number; key: string }; caught: { name: string; message: string; data: unknown } };
    expect(out.seen).toEqual({ attempt: 3, key: "flaky-1:1" });
    expect(out.caught).toMatchObject({ name: "NonRetryableError", message: "card declined", data: { details: { code: 7 } } });
    const runs = await db.query<{ name: string; attempt: number; key: string }>("SELECT name, attempt, key FROM wf.external_runs WHERE workflow_id = 'flaky-1' ORDER BY id");
    expect(runs).toEqual([
      { name: "flaky", attempt: 1, key: "flaky-1:1" },
      { name: "flaky", attempt: 2, key: "flaky-1:1" },
      { name: "flaky", attempt: 3, key: "flaky-1:1" },
      { name: "declined", attempt: 1, key: "flaky-1:2" },
    ]);
    const steps = await client.steps("flaky-1");
    expect(steps.map((s) => [s.name, s.status, s.attempts])).toEqual([
      ["flaky", "ok", 3],
      ["declined", "error", 1],
    ]);
  });

  it("a transaction's application error is a StepFailedError the workflow can catch", async () => {
    const h = await executor.start("catcher", null, { id: "catcher-1" });
    expect(await h.result()).toBe("Refused: refused: caught");
    expect(await notes("catcher-1")).toEqual([]); // the body's write was rolled back
  });

  it("on failure, compensates completed steps in reverse order, each once, and ends COMPENSATED", async () => {
    const h = await executor.start("saga", { fail: true }, { id: "saga-1" });
    const err = await h.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(err).toMatchObject({ status: "COMPENSATED", failure: { name: "StepFailedError", data: { stepNumber: 4, failure: { name: "Refused" } } } });
    expect((await notes("saga-1")).map((n) => n.tag)).toEqual(["one", "three", "undo:three", "undo:two:saga-1:2", "undo:one"]);
    const steps = await client.steps("saga-1");
    expect(steps.map((s) => [s.step, s.name, s.status, s.compensates])).toEqual([
      [1, "note", "ok", null],
      [2, "two", "ok", null],
      [3, "note", "ok", null],
      [4, "refuse", "error", null],
      [5, "unnote", "ok", 3],
      [6, "note", "ok", 2],
      [7, "unnote", "ok", 1],
    ]);
    const ok = await executor.start("saga", { fail: false }, { id: "saga-2" });
    expect(await ok.result()).toBe("done");
    expect((await notes("saga-2")).map((n) => n.tag)).toEqual(["one", "three"]);
  });

  it("cancel stops a sleeping workflow at its step boundary; resume continues it from its last step", async () => {
    const h = await executor.start(sleepy, { ms: 60_000 }, { id: "cancel-1" });
    await waitFor(async () => (await client.steps("cancel-1")).length === 2);
    const info = await h.cancel();
    expect(info.status).toBe("CANCELLED");
    await expect(h.result()).rejects.toMatchObject({ status: "CANCELLED" });
    await waitFor(async () => executor.running === 0);
    expect((await notes("cancel-1")).map((n) => n.tag)).toEqual(["before"]);
    await expect(client.cancel("cancel-1")).rejects.toThrow(WorkflowStateError);

    // Resume: the recorded wake-up time is an hour-long sleep no more; re-start with a short one
    // is impossible (same id, other input), so resume and cancel again, then check it is PENDING
    // and claimed again.
    const resumed = await client.resume("cancel-1");
    expect(resumed.status).toBe("PENDING");
    await waitFor(async () => (await client.get("cancel-1")).attempts === 2);
    expect((await client.get("cancel-1")).status).toBe("PENDING");
    await client.cancel("cancel-1");
    await expect(client.resume("basic-1")).rejects.toThrow(/SUCCESS: nothing to resume/);
  });

  it("a cancelled short sleep resumes to SUCCESS without running its first step again", async () => {
    const h = await executor.start(sleepy, { ms: 3000 }, { id: "cancel-2" });
    await waitFor(async () => (await client.steps("cancel-2")).length === 2);
    await h.cancel();
    await waitFor(async () => executor.running === 0);
    await client.resume("cancel-2");
    expect(await client.handle("cancel-2").result()).toEqual({ slept: 3000 });
    expect((await notes("cancel-2")).map((n) => n.tag)).toEqual(["before", "after"]);
  });

  it("refuses bad options with clear errors", async () => {
    const bad = workflow("bad", async (ctx) => ctx.step("s", async () => 1, { retries: -1 }));
    const bad2 = workflow("bad2", async (ctx) => ctx.step("s", async () => 1, { retry: 3 } as never));
    const ex = await startExecutor({ databaseUrl: db.url, workflows: [bad, bad2], migrate: false });
    try {
      await expect((await ex.start(bad, null)).result()).rejects.toMatchObject({ failure: { name: "WorkflowOptionsError", message: expect.stringMatching(/retries must be an integer/) } });
      await expect((await ex.start(bad2, null)).result()).rejects.toMatchObject({ failure: { message: expect.stringMatching(/unknown option\(s\) retry/) } });
    } finally {
      await ex.stop();
    }
    expect(() => workflow("1bad", async () => 1)).toThrow(WorkflowOptionsError);
    await expect(startExecutor({ databaseUrl: db.url, workflows: [bad], leaseMs: 10 })).rejects.toThrow(/leaseMs must be an integer/);
    await expect(startExecutor({ databaseUrl: db.url, workflows: [bad], bogus: 1 } as never)).rejects.toThrow(/unknown option\(s\) bogus/);
    await expect(executor.start("nope", null)).rejects.toThrow(/not registered with this executor/);
    expect(StepFailedError).toBeDefined();
  });

  // Seven CLI processes: each loads the whole CLI (TypeScript included), slow on a busy machine.
  it("the CLI starts, lists, shows, cancels and resumes workflows", { timeout: 300_000 }, async () => {
    const env = { DATABASE_URL: db.url };
    // Asynchronously: the executor that runs it lives in this process.
    const started = await txfn(["workflow", "start", "sleepy", "--input", '{"ms":5}', "--id", "cli-1", "--wait", "--timeout", "60000"], env);
    expect(started.stderr).toBe("");
    expect(JSON.parse(started.stdout)).toEqual({ slept: 5 });
    const got = txfnSync(["workflow", "get", "cli-1", "--json"], { env });
    expect(JSON.parse(got.stdout)).toMatchObject({ id: "cli-1", name: "sleepy", status: "SUCCESS", output: { slept: 5 } });
    const steps = txfnSync(["workflow", "steps", "cli-1"], { env });
    expect(steps.stdout).toMatch(/1 +transaction +note +ok/);
    expect(steps.stdout).toMatch(/2 +sleep +sleep +until 20\d\d-/);
    const list = txfnSync(["workflow", "list", "--name", "sleepy", "--status", "success"], { env });
    expect(list.stdout).toMatch(/SUCCESS +sleepy +cli-1/);
    const conflict = txfnSync(["workflow", "start", "sleepy", "--input", '{"ms":6}', "--id", "cli-1"], { env });
    expect(conflict.status).toBe(1);
    expect(conflict.stderr).toMatch(/was started with another input/);
    const missing = txfnSync(["workflow", "get", "nope"], { env });
    expect(missing.stderr).toMatch(/no workflow "nope"/);
    const resume = txfnSync(["workflow", "resume", "cli-1"], { env });
    expect(resume.stderr).toMatch(/SUCCESS: nothing to resume/);
  });
});

interface History {
  workflows: { id: string; name: string; input: unknown; status: string; output?: unknown; bundle_version: number; parent_id?: string; parent_step?: number }[];
  steps: { workflow_id: string; step: number; kind: string; name: string; status: string; output?: unknown; error?: unknown; invocation_id?: number; attempts?: number; compensates?: number }[];
  expected: { status: string; output?: unknown; newSteps?: unknown[]; notes?: string[] };
}

/** Writes a recorded history (test/fixtures/wf-histories) as a dead executor would have left it: PENDING, unowned. */
async function loadHistory(name: string): Promise<History> {
  const h = JSON.parse(readFileSync(`test/fixtures/wf-histories/${name}.json`, "utf8")) as History;
  const json = (v: unknown) => (v === undefined || v === null ? null : JSON.stringify(v));
  // One transaction: the executor of this file must not claim a workflow whose history is half written.
  const c = await db.pool.connect();
  try {
    await c.query("BEGIN");
    for (const s of h.steps) {
      await c.query(
        "INSERT INTO txfn.workflow_steps (workflow_id, step, kind, name, status, output, error, invocation_id, attempts, compensates) " +
          "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9, $10)",
        [s.workflow_id, s.step, s.kind, s.name, s.status, json(s.output), json(s.error), s.invocation_id ?? null, s.attempts ?? null, s.compensates ?? null],
      );
    }
    for (const w of h.workflows) {
      await c.query(
        "INSERT INTO txfn.workflows (id, name, input, status, output, bundle_version, parent_id, parent_step) VALUES ($1, $2, $3::jsonb, $4, $5::jsonb, $6, $7, $8)",
        [w.id, w.name, JSON.stringify(w.input), w.status, json(w.output), w.bundle_version, w.parent_id ?? null, w.parent_step ?? null],
      );
    }
    await c.query("COMMIT");
  } catch (err) {
    await c.query("ROLLBACK");
    throw err;
  } finally {
    c.release();
  }
  return h;
}

describe("recorded histories kept as fixtures (the replay must keep reading them)", () => {
  it("a fully recorded run replays to its recorded result and runs nothing again", async () => {
    const h = await loadHistory("basic-complete");
    expect(await client.handle("hist-basic").result()).toEqual(h.expected.output);
    expect(await client.get("hist-basic")).toMatchObject({ status: h.expected.status, attempts: 1 });
    expect(await db.query("SELECT id FROM txfn.invocations WHERE workflow_id LIKE 'hist-basic%'")).toEqual([]);
    expect(await db.query("SELECT id FROM wf.external_runs WHERE workflow_id LIKE 'hist-basic%'")).toEqual([]);
    expect(await client.steps("hist-basic")).toHaveLength(h.steps.length);
  });

  it("a run recorded in the middle of its compensation finishes it, running only the missing undos", async () => {
    const h = await loadHistory("saga-compensating");
    await expect(client.handle("hist-saga").result()).rejects.toMatchObject({ status: h.expected.status, failure: { data: { failure: { name: "Refused" } } } });
    const steps = await client.steps("hist-saga");
    expect(steps.slice(h.steps.length).map((s) => ({ step: s.step, kind: s.kind, name: s.name, compensates: s.compensates }))).toEqual(h.expected.newSteps);
    expect((await notes("hist-saga")).map((n) => n.tag)).toEqual(h.expected.notes);
    expect(await db.query("SELECT id FROM wf.external_runs WHERE workflow_id = 'hist-saga'")).toEqual([]);
  });
});

async function waitFor(cond: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 25));
  }
}
