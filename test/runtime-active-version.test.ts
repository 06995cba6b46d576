// The active version as the claim reads it: txfn._active_version(), a constant re-created by a
// trigger on txfn.bundles (migrations/system/1796020000000_txfn-active-version.sql), follows
// deploys and rollbacks; a transaction whose snapshot predates the deploy that activated a
// version it has not loaded yet gets a serialization failure (retried, nothing recorded).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { rollback } from "../client/index.ts";
import { deployProject } from "./support/deployed.ts";
import { useTestDatabase } from "./support/database.ts";

const db = useTestDatabase();
const tmp = mkdtempSync(join(tmpdir(), "txfn-active-version-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Deploys a one-function project whose output names `marker` (a new version each time). */
async function deployMarker(marker: string): Promise<number> {
  const dir = join(tmp, marker);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, "index.ts"),
    `import { transaction } from "txfn";\n` +
      `export const which = transaction({ isolation: "read committed" }, (ctx) => ({ marker: ${JSON.stringify(marker)}, version: ctx.version }));\n`,
  );
  return (await deployProject(db.url, dir)).version;
}

const activeFn = async () => (await db.query<{ v: number | null }>("SELECT txfn._active_version() AS v"))[0]!.v;
const invoke = async (c: pg.ClientBase | pg.Pool) =>
  (await c.query<{ r: { output: { marker: string; version: number }; version: number } }>("SELECT txfn.invoke('which', '{}') AS r")).rows[0]!.r;

describe("the active version folded into the claim", () => {
  it("follows deploys and rollbacks; invocations run and record it", async () => {
    const v1 = await deployMarker("a");
    expect(await activeFn()).toBe(v1);
    expect(await invoke(db.pool)).toMatchObject({ output: { marker: "a", version: v1 }, version: v1 });
    const v2 = await deployMarker("b");
    expect(await activeFn()).toBe(v2);
    expect(await invoke(db.pool)).toMatchObject({ output: { marker: "b", version: v2 }, version: v2 });
    await rollback(db.url, v1);
    expect(await activeFn()).toBe(v1);
    expect(await invoke(db.pool)).toMatchObject({ output: { marker: "a" }, version: v1 });
    const recorded = await db.query<{ version: number }>("SELECT version FROM txfn.invocations ORDER BY id");
    expect(recorded.map((r) => r.version)).toEqual([v1, v2, v1]);
  });

  it("a snapshot older than the activation of a version not loaded yet is a serialization failure, and the retry runs it", async () => {
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      await c.query("BEGIN ISOLATION LEVEL REPEATABLE READ");
      await c.query("SELECT 1"); // the snapshot
      const v = await deployMarker("c");
      await expect(invoke(c)).rejects.toMatchObject({ code: "40001" });
      await c.query("ROLLBACK");
      expect(await invoke(c)).toMatchObject({ output: { marker: "c", version: v }, version: v });
      const [n] = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM txfn.invocations WHERE version = $1", [v]);
      expect(n!.n).toBe(1); // the failed attempt left no record
    } finally {
      await c.end();
    }
  });
});
