// Unknown workflow names, with real `txfn` processes: `txfn workflow start <name>` refuses a name
// no executor has registered (unless --allow-unregistered queues it), executors record the names
// they serve, and a worker warns once per name about PENDING workflows no executor runs. (The HTTP
// endpoint's 404: proxy-workflows.test.ts.)
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureSystemSchema } from "../migrations/index.ts";
import { WorkflowClient, WorkflowNotRegisteredError } from "../workflows/index.ts";
import { txfn } from "./support/cli.ts";
import { useTestDatabase } from "./support/database.ts";
import { useWorkers, waitFor } from "./support/worker.ts";
import { FAST_WORKER, writeGreetProject } from "./support/workflow-project.ts";

const db = useTestDatabase();
const { start: worker } = useWorkers(db.url, FAST_WORKER);
let outside: string; // the workers' project, in a temp folder
let client: WorkflowClient;

beforeAll(async () => {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    await c.query("BEGIN");
    await ensureSystemSchema(c);
    await c.query("COMMIT");
  } finally {
    await c.end();
  }
  outside = mkdtempSync(join(tmpdir(), "txfn-outside-"));
  writeGreetProject(join(outside, "proj", "wf"));
  client = new WorkflowClient({ databaseUrl: db.url });
});

afterAll(async () => {
  await client?.close();
  if (outside) rmSync(outside, { recursive: true, force: true });
});

const cli = (args: string[]) => txfn(args, { DATABASE_URL: db.url });
const rowOf = async (id: string) => (await db.query<{ name: string; status: string }>("SELECT name, status FROM txfn.workflows WHERE id = $1", [id]))[0];

describe("unknown workflow names", { timeout: 180_000 }, () => {
  it("before any executor registered: start is refused (CLI exit 1, client WorkflowNotRegisteredError), nothing is written", async () => {
    const r = await cli(["workflow", "start", "greet", "--id", "early", "--wait", "--input", "{}"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/unknown workflow "greet": no executor has registered it \(no executor has registered any workflow yet\)/);
    expect(r.stderr).toMatch(/--allow-unregistered/);
    await expect(client.start("greet", {})).rejects.toThrow(WorkflowNotRegisteredError);
    expect(await rowOf("early")).toBeUndefined();
  });

  it("a mistyped name is refused at once, naming the known workflows (CLI with --wait, CLI without, the client)", async () => {
    await worker(join(outside, "proj", "wf"), ["--executor-id", "outside"]);
    const [row] = await db.query<{ workflows: Record<string, string> }>("SELECT workflows FROM txfn.workflow_executors WHERE executor_id = 'outside' AND NOT expired");
    expect(Object.keys(row!.workflows)).toEqual(["greet"]);
    expect(row!.workflows.greet).toMatch(/^[0-9a-f]{64}$/);
    const t0 = Date.now();
    const r = await cli(["workflow", "start", "nope3", "--id", "x3", "--wait", "--input", "{}"]);
    expect(Date.now() - t0).toBeLessThan(30_000);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^txfn: unknown workflow "nope3": no executor has registered it \(known workflows: greet\)/);
    expect(await rowOf("x3")).toBeUndefined();
    const err = await client.start("nope3", {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowNotRegisteredError);
    expect((err as WorkflowNotRegisteredError).known).toEqual(["greet"]);
    // Without --wait: refused too, no id printed.
    const r2 = await cli(["workflow", "start", "nope3", "--input", "{}"]);
    expect([r2.status, r2.stdout]).toEqual([1, ""]);
  });

  it("--allow-unregistered queues it; --wait --timeout gives up; the worker warns once per unknown name (at start-up and on NOTIFY)", async () => {
    const q1 = await cli(["workflow", "start", "ghost", "--id", "ghost-1", "--allow-unregistered", "--input", "{}"]);
    expect([q1.status, q1.stdout.trim()]).toEqual([0, "ghost-1"]);
    expect(await rowOf("ghost-1")).toEqual({ name: "ghost", status: "PENDING" });
    const w = await worker(join(outside, "proj", "wf"), ["--executor-id", "outside"]);
    const warned = (name: string) => w.logs.filter((l) => l.level === 40 && l.workflow === name);
    await waitFor(() => warned("ghost").length > 0, "the start-up warning");
    expect(warned("ghost")[0]).toMatchObject({ pending: 1, example: "ghost-1", registered: ["greet"] });
    expect(String(warned("ghost")[0]!.msg)).toMatch(/named "ghost", which this executor does not run \(it has: greet\) and no live executor has registered/);
    // Queued while the worker runs: a NOTIFY for a name it does not know.
    const timedOut = await cli(["workflow", "start", "phantom", "--id", "phantom-1", "--allow-unregistered", "--wait", "--timeout", "300", "--input", "{}"]);
    expect(timedOut.status).toBe(1);
    expect(timedOut.stderr).toMatch(/no live executor has workflow "phantom" now; waiting for one to run phantom-1/);
    expect(timedOut.stderr).toMatch(/workflow phantom-1 is still PENDING after 300 ms/);
    await waitFor(() => warned("phantom").length > 0, "the NOTIFY warning");
    // More of the same names: no more warnings.
    for (const id of ["ghost-2", "phantom-2"]) await client.start(id.split("-")[0]!, {}, { id, allowUnregistered: true });
    await new Promise((r) => setTimeout(r, 500));
    expect([warned("ghost").length, warned("phantom").length]).toEqual([1, 1]);
    expect((await rowOf("ghost-1"))!.status).toBe("PENDING");
    // Starting an existing id again returns it, registered name or not (a retried start).
    expect((await client.start("ghost", {}, { id: "ghost-1" })).workflowId).toBe("ghost-1");
    await expect(client.start("ghost", {}, { id: "ghost-new" })).rejects.toThrow(/unknown workflow "ghost"/);
  });

  it("--timeout needs --wait", async () => {
    const r = await cli(["workflow", "start", "greet", "--timeout", "10"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/--timeout only applies with --wait/);
  });
});
