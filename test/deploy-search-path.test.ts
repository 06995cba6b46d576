// An application migration's unqualified CREATE TABLE lands in the session's schema (public),
// never in the txfn system schema (where provenance would not capture it).
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { txfn } from "./support/cli.ts";
import { useTestDatabase } from "./support/database.ts";

const db = useTestDatabase();

it("unqualified tables of app migrations are created in public and captured", async () => {
  const project = mkdtempSync(join(tmpdir(), "txfn-searchpath-"));
  mkdirSync(join(project, "migrations"));
  writeFileSync(
    join(project, "hello.ts"),
    'import { transaction } from "txfn";\nexport const hello = transaction({}, (_ctx, input: { n: number }) => ({ n: input.n + 1 }));\n',
  );
  writeFileSync(join(project, "migrations", "1000_plain.sql"), "CREATE TABLE plain_items (id int PRIMARY KEY);\n");
  const res = await txfn(["deploy", project], { DATABASE_URL: db.url });
  expect(res.status, res.stderr).toBe(0);
  expect(await db.query("SELECT schemaname FROM pg_tables WHERE tablename = 'plain_items'")).toEqual([{ schemaname: "public" }]);
  expect(await db.query("SELECT captured FROM txfn.provenance_tables WHERE table_name = 'plain_items'")).toEqual([{ captured: true }]);
});
