// SQL errors inside bodies and ctx.subtransaction (runtime-sql/README.md, "SQL errors inside a
// body"): on txv8 ≥ 1.1 ctx.query/ctx.execute run without a subtransaction per statement, so an
// SQL error fails the body even when the body catches it; on plv8 (and older txv8) each statement
// has its own subtransaction and the body may catch and go on. ctx.subtransaction works on both.
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { TxfnClient } from "../client/index.ts";
import { useTestDatabase } from "./support/database.ts";
import { deployProject } from "./support/deployed.ts";

const db = useTestDatabase();
let client: TxfnClient;
/** The installed txv8 runs statements without their own subtransaction (plv8.txv8_version ≥ 1.1). */
let direct = false;

beforeAll(async () => {
  await deployProject(db.url, "test/fixtures/statements");
  client = new TxfnClient({ url: db.url, poolSize: 2, maxRetries: 0 });
  await db.query("CREATE FUNCTION stmts.lib_version() RETURNS text LANGUAGE txv8 AS $$ return String(plv8.txv8_version) $$");
  const [row] = await db.query<{ v: string }>("SELECT stmts.lib_version() AS v");
  const [major, minor] = row!.v.split(".").map(Number) as [number, number];
  direct = major > 1 || (major === 1 && minor >= 1);
  return () => client.close();
});

const ids = async (from: number, to: number) =>
  (await db.query<{ id: number }>("SELECT id FROM stmts.items WHERE id BETWEEN $1 AND $2 ORDER BY id", [from, to])).map((r) => r.id);

describe("SQL errors inside a body", () => {
  it("catching an SQL error does not let the body go on: the original error is recorded, every write undone", async () => {
    const r = await client.invoke("catchAndContinue", { base: 100 }, { key: "catch-continue" });
    if (direct) {
      expect(r).toMatchObject({ ok: false, error: { sqlstate: "23514", constraint: "items_note_check", table: "items" } });
      expect(await ids(100, 199)).toEqual([]);
    } else {
      expect(r).toMatchObject({ ok: true, output: { caught: "23514", after: "ran" } });
      expect(await ids(100, 199)).toEqual([100, 102]);
    }
  });

  it("ctx.subtransaction catches an SQL error and the body goes on; its writes are undone, the others kept", async () => {
    const r = await client.invoke("recovers", { base: 200 }, { key: "recovers" });
    expect(r).toMatchObject({ ok: true, output: { caught: { sqlstate: "23514", constraint: "items_note_check" }, value: 1 } });
    expect(await ids(200, 299)).toEqual([200, 203, 204]);
  });

  it("a serialization failure the body swallows is still transient: not recorded, the caller's statement fails", async () => {
    const call = db.query("SELECT txfn.invoke('swallowTransient', '{\"base\": 300}', 'swallow-40001') AS r");
    if (direct) {
      await expect(call).rejects.toMatchObject({ code: "40001" });
      expect(await db.query("SELECT 1 FROM txfn.invocations WHERE idempotency_key = 'swallow-40001'")).toHaveLength(0);
      expect(await ids(300, 399)).toEqual([]);
    } else {
      expect((await call)[0]).toMatchObject({ r: { output: "swallowed" } });
    }
  });

  it("an SQL error replaced by an error of the body's own is recorded as the original SQL error", async () => {
    await db.query("INSERT INTO stmts.items VALUES (400, 'taken')");
    const r = await client.invoke("replaceError", { id: 400 }, { key: "replace-error" });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    if (direct) expect(r.error).toMatchObject({ sqlstate: "23505", constraint: "items_pkey" });
    else expect(r.error).toMatchObject({ name: "Error", message: "already there" });
  });

  it("a read-only body's SQL error is recorded with the body's own stack", async () => {
    const line = readFileSync("test/fixtures/statements/index.ts", "utf8").split("\n").findIndex((l) => l.includes("FAIL-LINE")) + 1;
    const r = await client.invoke("readOnlyFails", null, { key: "read-only-fails" });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error).toMatchObject({ sqlstate: "22012", message: "division by zero" });
    expect(r.error.stack).toContain(`test/fixtures/statements/index.ts:${line}:`);
  });
});
