// A 10,000-invocation trace — concurrent check-then-take requests from Node with the client's
// retries of serialization failures, restocks, and recorded application errors — replays with
// zero divergences: every output, error and write, and the final state, as recorded.
import { afterAll, beforeAll, expect, it } from "vitest";
import { recordWorkload, type RecordedWorkload } from "../bench/replay/workload.ts";
import { replayTrace } from "../replay/index.ts";
import { useTestDatabase } from "./support/database.ts";
import { deployProject } from "./support/deployed.ts";

const db = useTestDatabase();
let recorded: RecordedWorkload;

beforeAll(async () => {
  await deployProject(db.url, "functions/examples/oversell");
  recorded = await recordWorkload(db.url, { invocations: 10_000, concurrency: 8 });
}, 600_000);
afterAll(async () => {
  const left = await db.query("SELECT datname FROM pg_database WHERE datname LIKE $1", [`txfn_replay_${db.name}_%`]);
  for (const r of left) await db.query(`DROP DATABASE IF EXISTS "${r.datname as string}" WITH (FORCE)`);
});

it("a 10,000-invocation trace replays with zero divergences", async () => {
  expect(recorded.invocations).toBe(10_000);
  expect(recorded.applicationErrors).toBeGreaterThan(0); // failed invocations are replayed and compared too
  let progress = 0;
  const r = await replayTrace({ url: db.url, selector: { from: recorded.from }, onProgress: (done) => (progress = done) });
  expect(r.trace.invocations).toBe(10_000);
  expect(r.counts.same).toBe(10_000);
  expect(r.invocations).toEqual([]);
  expect(r.firstDivergence).toBeNull();
  expect(r.finalState).toEqual([]);
  expect(r.warnings).toEqual([]);
  expect(progress).toBe(10_000);
  expect(r.scratch.kept).toBe(false);
}, 600_000);
