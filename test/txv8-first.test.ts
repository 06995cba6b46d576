// The toolchain works end to end: txv8 loads (preloaded), and a txv8 function runs.
import { describe, expect, it } from "vitest";
import { useTestDatabase } from "./support/database.ts";

const db = useTestDatabase();

describe("txv8 on the private cluster", () => {
  it("is preloaded and creates functions that run", async () => {
    const [preload] = await db.query<{ shared_preload_libraries: string }>("SHOW shared_preload_libraries");
    expect(preload!.shared_preload_libraries).toBe("txv8");
    await db.query("CREATE FUNCTION add(a int, b int) RETURNS int LANGUAGE txv8 AS 'return a + b'");
    const [row] = await db.query<{ add: number }>("SELECT add(1, 2)");
    expect(row!.add).toBe(3);
  });

  it("turns a thrown JS error into an SQL error that leaves the session usable", async () => {
    await db.query("CREATE FUNCTION boom() RETURNS int LANGUAGE txv8 AS $$ throw new Error('boom') $$");
    await expect(db.query("SELECT boom()")).rejects.toThrow(/boom/);
    const [row] = await db.query<{ one: number }>("SELECT 1 AS one");
    expect(row!.one).toBe(1);
  });
});
