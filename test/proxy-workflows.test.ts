// The proxy's workflow endpoints on the workflow engine: a workflow registered with the proxy's
// embedded executor runs at once; any other name is enqueued for an executor elsewhere.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createToken, startProxy, workflowEndpoints, type ProxyServer } from "../proxy/index.ts";
import { startExecutor, workflow } from "../workflows/index.ts";
import { useTestDatabase } from "./support/database.ts";
import { deployProject } from "./support/deployed.ts";
import { call, invokerUrl, serve } from "./support/proxy.ts";

const db = useTestDatabase();
let server: ProxyServer;
let token: string;
let other: string; // allows a function only

/** Two transaction steps on the exactly-once fixture's `add`. */
const addTwice = workflow("addTwice", async (ctx, input: { counter: string; by: number }) => {
  const first = await ctx.transaction<typeof input, { n: string }>("add", input);
  const second = await ctx.transaction<typeof input, { n: string }>("add", input);
  return { first: first.n, second: second.n };
});
const fails = workflow("fails", async (ctx) => {
  await ctx.transaction("refuse", { reason: "in a workflow" });
});

const counter = async (name: string) => Number((await db.query<{ n: string }>("SELECT n FROM rules.counters WHERE name = $1", [name]))[0]!.n);

beforeAll(async () => {
  await deployProject(db.url, "test/fixtures/rules", { schemas: false });
  token = (await createToken(db.url, { workflows: ["addTwice", "fails", "elsewhere"] })).token;
  other = (await createToken(db.url, { functions: ["add"] })).token;
  const ext = workflowEndpoints({ workflows: [addTwice, fails], executor: { executorId: "proxy-test", pollMs: 50, leaseMs: 2000 } });
  server = await startProxy({ invokerUrl: await invokerUrl(db.url), port: 0, logLevel: "silent" }, [ext]);
});
afterAll(async () => server?.close());

describe("POST /v1/workflows/:name, GET /v1/workflows/:id", () => {
  it("starts a workflow; Prefer: wait returns 200 with its output once it ended; the same key is the same workflow, run once", async () => {
    const before = await counter("a");
    const r = await call(server.url, "/v1/workflows/addTwice", { token, key: "wf-1", body: { counter: "a", by: 2 }, headers: { prefer: "wait=60" } });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ id: "wf-1", name: "addTwice", status: "SUCCESS", output: { first: String(before + 2), second: String(before + 4) } });
    const again = await call(server.url, "/v1/workflows/addTwice", { token, key: "wf-1", body: { counter: "a", by: 2 }, headers: { prefer: "wait=60" } });
    expect([again.status, again.json.id, again.json.output]).toEqual([200, "wf-1", r.json.output]);
    expect(await counter("a")).toBe(before + 4);
    const keys = await db.query<{ k: string }>("SELECT idempotency_key AS k FROM txfn.invocations WHERE workflow_id = 'wf-1' ORDER BY id");
    expect(keys.map((x) => x.k)).toEqual(["wf-1:1", "wf-1:2"]);
  });

  it("202 + Location while it runs; GET the Location (with Prefer: wait) for the outcome", async () => {
    const r = await call(server.url, "/v1/workflows/addTwice", { token, body: { counter: "b", by: 1 } });
    expect([200, 202]).toContain(r.status); // it may already have ended
    const id = r.json.id as string;
    if (r.status === 202) expect(r.headers.get("location")).toBe(`/v1/workflows/${id}`);
    const got = await call(server.url, `/v1/workflows/${id}`, { token, headers: { prefer: "wait=60" } });
    expect(got.status).toBe(200);
    expect(got.json).toMatchObject({ id, status: "SUCCESS" });
  });

  it("a failed workflow is a state, not an HTTP error: 200 with status ERROR and the error (no stack)", async () => {
    const r = await call(server.url, "/v1/workflows/fails", { token, key: "wf-fails", headers: { prefer: "wait=60" }, method: "POST" });
    expect(r.status).toBe(200);
    expect(r.json.status).toBe("ERROR");
    expect(r.json.error.message).toMatch(/refused: in a workflow/);
    expect(JSON.stringify(r.json.error)).not.toMatch(/"stack"/);
    expect(r.json.output).toBeUndefined();
  });

  it("a workflow this proxy does not run is enqueued (PENDING) for an executor that has it", async () => {
    // Another executor (here: in this process, not the proxy's) has registered "elsewhere".
    const elsewhere = workflow("elsewhere", async (ctx) => {
      await ctx.sleep(60_000);
    });
    const other = await startExecutor({ databaseUrl: db.url, workflows: [elsewhere], executorId: "elsewhere-test", pollMs: 50, leaseMs: 2000 });
    try {
      const r = await call(server.url, "/v1/workflows/elsewhere", { token, key: "wf-elsewhere", body: { x: 1 } });
      expect(r.status).toBe(202);
      expect(r.json).toMatchObject({ id: "wf-elsewhere", name: "elsewhere", status: "PENDING" });
    } finally {
      await other.stop();
    }
  });

  it("404 workflow_not_found for a name no executor has registered, listing the known ones; nothing is enqueued", async () => {
    const any = (await createToken(db.url, { workflows: ["*"] })).token;
    const r = await call(server.url, "/v1/workflows/nope", { token: any, key: "wf-nope", body: {}, headers: { prefer: "wait=5" } });
    expect(r.status).toBe(404);
    expect(r.json.error.code).toBe("workflow_not_found");
    expect(r.json.error.message).toMatch(/^unknown workflow "nope": no executor has registered it \(known workflows: addTwice, elsewhere, fails\)$/);
    expect(await db.query("SELECT 1 FROM txfn.workflows WHERE id = 'wf-nope'")).toEqual([]);
  });

  it("409 for a key reused with other input; 400 for a bad name; 403/404 for a token without the workflow", async () => {
    const conflict = await call(server.url, "/v1/workflows/addTwice", { token, key: "wf-1", body: { counter: "a", by: 3 } });
    expect(conflict.status).toBe(409);
    expect(conflict.json.error.code).toBe("workflow_id_reused");
    const bad = await call(server.url, "/v1/workflows/1bad", { token: (await createToken(db.url, { workflows: ["*"] })).token, body: {} });
    expect(bad.status).toBe(400);
    expect((await call(server.url, "/v1/workflows/addTwice", { token: other, body: {} })).status).toBe(403);
    expect((await call(server.url, "/v1/workflows/wf-1", { token: other })).status).toBe(404);
    expect((await call(server.url, "/v1/workflows/no-such-id", { token })).status).toBe(404);
    expect((await call(server.url, "/v1/workflows/wf-1")).status).toBe(401);
  });

  it("/openapi.json describes the workflow endpoints", async () => {
    const doc = (await call(server.url, "/openapi.json")).json;
    expect(Object.keys(doc.paths["/v1/workflows/{workflow}"])).toEqual(["post", "get"]);
  });

  it("txfn serve --workflows <dir> runs that project's workflows in the proxy process", async () => {
    const p = await serve(db.url, ["--workflows", "test/fixtures/proxy-wf", "--executor-id", "serve-test", "--log-level", "info"]);
    try {
      expect(p.stderr()).toMatch(/running workflows hello/);
      const t = (await createToken(db.url, { workflows: ["hello"] })).token;
      const r = await call(p.url, "/v1/workflows/hello", { token: t, key: "wf-serve", body: { counter: "c" }, headers: { prefer: "wait=60" } });
      expect(r.status).toBe(200);
      expect(r.json).toMatchObject({ id: "wf-serve", status: "SUCCESS", output: { workflowId: "wf-serve" }, executorId: "serve-test" });
    } finally {
      p.child.kill("SIGTERM");
      expect(await p.exited).toBe(0);
    }
    // One pino line per request on stdout, flushed before exit.
    const lines = p.stdout().trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toContainEqual(expect.objectContaining({ msg: "request", method: "POST", url: "/v1/workflows/hello", status: 200, workflowId: "wf-serve" }));
  });
});
