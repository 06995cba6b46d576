// Durable workflows across crashes: real `txfn worker` processes killed with SIGKILL and
// restarted, two executors recovering at once, version pinning, code changes, non-determinism,
// poison workflows. The fixture is test/fixtures/wf (and wf-v2, wf-changed).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WorkflowClient, type StepInfo } from "../workflows/index.ts";
import { txfn } from "./support/cli.ts";
import { useTestDatabase } from "./support/database.ts";
import { deployProject } from "./support/deployed.ts";
import { useWorkers, waitFor } from "./support/worker.ts";

const db = useTestDatabase();
let client: WorkflowClient;
const FAST = ["--lease-ms", "1500", "--poll-ms", "100"];
const { start: worker, spawn: spawnWorker } = useWorkers(db.url, FAST);
const TWO_N = 40; // workflows in the two-executor test

beforeAll(async () => {
  await deployProject(db.url, "test/fixtures/wf", { schemas: false });
  client = new WorkflowClient({ databaseUrl: db.url });
});

afterAll(async () => {
  await client?.close();
});

const stepsOf = (id: string): Promise<StepInfo[]> => client.steps(id);
const hasStep = (id: string, pred: (s: StepInfo) => boolean) => async () => (await stepsOf(id)).find(pred);
const tags = async (id: string) => (await db.query<{ tag: string }>("SELECT tag FROM wf.notes WHERE workflow_id = $1 ORDER BY id", [id])).map((r) => r.tag);

// Each test starts several worker processes (a few seconds each on a busy 2-core machine).
describe("workflow recovery with real worker processes", { timeout: 300_000 }, () => {
  it("a durable sleep survives SIGKILL: the restarted worker sleeps only what is left and never re-runs the first step", async () => {
    const w1 = await worker("test/fixtures/wf", ["--executor-id", "sleeper"]);
    const h = await client.start("sleepy", { ms: 4000 }, { id: "sleep-1" });
    const sleepStep = await waitFor(hasStep("sleep-1", (s) => s.kind === "sleep"), "the sleep to be recorded");
    await w1.kill("SIGKILL");
    expect((await client.get("sleep-1")).status).toBe("PENDING");
    await worker("test/fixtures/wf", ["--executor-id", "sleeper"]); // same id: recovers at once, no lease wait
    expect(await h.result()).toEqual({ slept: 4000 });
    expect(await tags("sleep-1")).toEqual(["before", "after"]);
    const steps = await stepsOf("sleep-1");
    expect(steps[1]).toEqual(sleepStep); // the wake-up time recorded before the crash is the one used
    const [after] = await db.query<{ at: Date }>("SELECT at FROM wf.notes WHERE workflow_id = 'sleep-1' AND tag = 'after'");
    expect(after!.at.getTime()).toBeGreaterThanOrEqual(sleepStep.output as number);
    expect((await client.get("sleep-1")).attempts).toBe(2);
  });

  it("compensations run once each even when the worker is killed in the middle of compensating", async () => {
    const w1 = await worker("test/fixtures/wf", ["--executor-id", "saga"]);
    const h = await client.start("saga", { fail: true, undoSleepMs: 3000 }, { id: "saga-crash" });
    await waitFor(hasStep("saga-crash", (s) => s.kind === "sleep" && s.compensates === 2), "the compensation of step 2 to be sleeping");
    await w1.kill("SIGKILL");
    await worker("test/fixtures/wf", ["--executor-id", "saga"]);
    await expect(h.result()).rejects.toMatchObject({ status: "COMPENSATED" });
    expect(await tags("saga-crash")).toEqual(["one", "three", "undo:three", "undo:two:saga-crash:2", "undo:one"]);
  });

  it("a workflow keeps the bundle version it started on; a worker with changed workflow code parks it until resumed with --new-code", async () => {
    const w1 = await worker("test/fixtures/wf", ["--executor-id", "pin"]);
    const h1 = await client.start("pinned", { ms: 3000 }, { id: "pin-1" });
    await waitFor(hasStep("pin-1", (s) => s.kind === "sleep"), "pin-1 to sleep");
    await w1.kill("SIGKILL");
    const v2 = await deployProject(db.url, "test/fixtures/wf-v2", { schemas: false });
    expect(v2.version).toBe(2);

    const w2 = await worker("test/fixtures/wf", ["--executor-id", "pin"]);
    expect(await h1.result()).toEqual({ a: { code: "v1", bundle: 1 }, b: { code: "v1", bundle: 1 }, bundleVersion: 1 });
    const fresh = await client.start("pinned", { ms: 1 }, { id: "pin-fresh" });
    expect(await fresh.result()).toEqual({ a: { code: "v2", bundle: 2 }, b: { code: "v2", bundle: 2 }, bundleVersion: 2 });

    // Same name, other module text: the recorded code hash no longer matches.
    const h2 = await client.start("pinned", { ms: 3000 }, { id: "pin-2" });
    await waitFor(hasStep("pin-2", (s) => s.kind === "sleep"), "pin-2 to sleep");
    const recorded = (await client.get("pin-2")).codeHash;
    await w2.kill("SIGKILL");
    await worker("test/fixtures/wf-changed", ["--executor-id", "pin"]);
    const parked = await h2.result().catch((e: unknown) => e);
    expect(parked).toMatchObject({ status: "ERROR", parkReason: "code-changed", failure: { name: "WorkflowCodeChanged" } });
    expect((parked as Error).message).toMatch(/started with code [0-9a-f]{12}, but executor pin has [0-9a-f]{12}/);
    expect((await client.get("pin-2")).error?.message).toMatch(/txfn workflow resume pin-2 --new-code/);
    expect(await tags("pin-2")).toEqual(["pinned-1"]); // nothing ran with the other code

    const resumed = await txfn(["workflow", "resume", "pin-2", "--new-code"], { DATABASE_URL: db.url });
    expect(resumed.stderr).toBe("");
    expect(await client.handle("pin-2").result()).toEqual({ a: { code: "v2", bundle: 2 }, b: { code: "v2", bundle: 2 }, bundleVersion: 2, changed: true });
    expect((await client.get("pin-2")).codeHash).not.toBe(recorded);
    expect(await tags("pin-2")).toEqual(["pinned-1", "pinned-3"]);
  });

  it("a step whose name differs from the recorded one at the same position fails the workflow with a non-determinism error", async () => {
    const w1 = await worker("test/fixtures/wf", ["--executor-id", "nd"], { TXFN_TEST_VARIANT: "a" });
    const h = await client.start("variant", { ms: 3000 }, { id: "nd-1" });
    await waitFor(hasStep("nd-1", (s) => s.kind === "sleep"), "nd-1 to sleep");
    await w1.kill("SIGKILL");
    await worker("test/fixtures/wf", ["--executor-id", "nd"], { TXFN_TEST_VARIANT: "b" });
    const err = await h.result().catch((e: unknown) => e);
    expect(err).toMatchObject({ status: "ERROR", parkReason: "non-determinism", failure: { name: "NonDeterminismError", data: { stepNumber: 2 } } });
    expect((err as { failure: { message: string } }).failure.message).toMatch(/step 2 is now step "charge-b", but the recorded history has step "charge-a"/);
    const runs = await db.query<{ name: string; pid: number }>("SELECT name, pid FROM wf.external_runs WHERE workflow_id = 'nd-1'");
    expect(runs).toEqual([{ name: "charge", pid: w1.pid }]); // the other code ran no step
  });

  it("a poison workflow that kills its worker every time is parked as ERROR after the recovery-attempt limit", async () => {
    await client.start("poison", null, { id: "poison-1", allowUnregistered: true }); // its worker starts below
    let lives = 0;
    for (; lives < 8; lives++) {
      const info = await client.get("poison-1");
      if (info.status !== "PENDING") break;
      const w = spawnWorker("test/fixtures/wf", ["--executor-id", "poisoned", "--max-recovery-attempts", "2"]);
      // Either it dies by the poison, or (once parked) it idles: stop it then.
      const parked = waitFor(async () => (await client.get("poison-1")).status !== "PENDING", "parking", 60_000);
      await Promise.race([w.exited, parked]);
      await w.kill("SIGKILL");
    }
    const info = await client.get("poison-1");
    expect(info).toMatchObject({ status: "ERROR", parkReason: "recovery-limit", error: { name: "RecoveryLimitExceeded" } });
    expect(info.error!.message).toMatch(/recovered 2 times in a row without recording a new step \(limit 2\)/);
    expect(lives).toBe(4); // first run, progress reset once (the note), then 2 recoveries without progress
    expect(await tags("poison-1")).toEqual(["poison"]);
    const [{ n }] = (await db.query<{ n: string }>("SELECT count(*) AS n FROM wf.external_runs WHERE workflow_id = 'poison-1'")) as [{ n: string }];
    expect(n).toBe("3");
  });

  it("two executors recovering a dead one's workflows at once never run a step twice", async () => {
    const a = await worker("test/fixtures/wf", ["--executor-id", "A"]);
    const ids = Array.from({ length: TWO_N }, (_, i) => `busy-${i}`);
    for (const id of ids) await client.start("busy", { steps: 6, ms: 400 }, { id });
    await waitFor(async () => {
      const [r] = await db.query<{ n: string }>("SELECT count(*) AS n FROM txfn.workflow_steps WHERE workflow_id LIKE 'busy-%'");
      return Number(r!.n) >= TWO_N;
    }, "the first steps");
    await a.kill("SIGKILL");
    const [{ pending }] = (await db.query<{ pending: string }>("SELECT count(*) AS pending FROM txfn.workflows WHERE id LIKE 'busy-%' AND status = 'PENDING'")) as [{ pending: string }];
    expect(Number(pending)).toBeGreaterThan(20);
    // B and C start together and both wait for A's lease to run out; each runs at most 10 at once,
    // so both must recover some.
    const [b, c] = await Promise.all([
      worker("test/fixtures/wf", ["--executor-id", "B", "--concurrency", "10"]),
      worker("test/fixtures/wf", ["--executor-id", "C", "--concurrency", "10"]),
    ]);
    for (const id of ids) expect(await client.handle(id).result()).toBe(6);

    const perStep = await db.query<{ workflow_id: string; step: number; by_a: string; by_b: string; by_c: string }>(
      `SELECT workflow_id, step, count(*) FILTER (WHERE pid = $1) AS by_a, count(*) FILTER (WHERE pid = $2) AS by_b,
              count(*) FILTER (WHERE pid = $3) AS by_c
       FROM wf.external_runs WHERE workflow_id LIKE 'busy-%' GROUP BY workflow_id, step`,
      [a.pid, b.pid, c.pid],
    );
    expect(perStep).toHaveLength(TWO_N * 3);
    for (const s of perStep) {
      // Recovered by exactly one of B and C, once; A may have been running it when it died.
      expect(Number(s.by_b) + Number(s.by_c), `${s.workflow_id} step ${s.step}`).toBeLessThanOrEqual(1);
      expect(Number(s.by_a) + Number(s.by_b) + Number(s.by_c)).toBeGreaterThanOrEqual(1);
      expect(Number(s.by_a)).toBeLessThanOrEqual(1);
    }
    const recoveredBy = new Set(perStep.filter((s) => Number(s.by_b) + Number(s.by_c) === 1).map((s) => (Number(s.by_b) ? "B" : "C")));
    expect(recoveredBy).toEqual(new Set(["B", "C"]));
    // Transaction steps: one committed body run each.
    const notes = await db.query<{ n: string; runs: string }>(
      "SELECT count(DISTINCT (workflow_id, step)) AS n, count(*) AS runs FROM wf.notes WHERE workflow_id LIKE 'busy-%'",
    );
    expect(notes).toEqual([{ n: String(TWO_N * 3), runs: String(TWO_N * 3) }]);
    const owners = await db.query<{ executor_id: string }>("SELECT DISTINCT executor_id FROM txfn.workflows WHERE id LIKE 'busy-%' AND attempts > 1 ORDER BY 1");
    expect(owners.map((o) => o.executor_id)).toEqual(["B", "C"]);
  });
});
