// Deploys, versions, rollback, failed deploys (each says why in txfn's words: a top-level throw
// names its TypeScript file:line, another project's migration history is explained), the SQL
// wrappers, the CLI and a non-superuser caller.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, cpSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { TxfnClient } from "../client/index.ts";
import { txfn } from "./support/cli.ts";
import { useTestDatabase } from "./support/database.ts";

const db = useTestDatabase();
const env = () => ({ DATABASE_URL: db.url });
const tmp = mkdtempSync(join(tmpdir(), "txfn-deploy-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const active = async () => (await db.query<{ version: number }>("SELECT version FROM txfn.bundles WHERE active"))[0]?.version;

/** A copy of the reference app with one file changed or added. */
function variant(name: string, files: Record<string, string>): string {
  const dir = join(tmp, name);
  cpSync("functions", dir, { recursive: true });
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(join(dir, f, ".."), { recursive: true });
    writeFileSync(join(dir, f), text);
  }
  return dir;
}

describe("txfn deploy / invoke / invocations / versions / rollback", () => {
  it("deploys the reference app with its migration and seed, and invokes it through the CLI and the SQL wrapper", async () => {
    const d = await txfn(["deploy", "functions"], env());
    expect(d.stderr).toBe("");
    expect(d.status).toBe(0);
    expect(d.stdout).toMatch(/migrated: 1732871000000_checkout-schema/);
    expect(d.stdout).toMatch(/deployed version 1 \(txv8; previous none\): .*reserveInventory/);
    expect(await db.query("SELECT count(*)::int AS n FROM shop.inventory")).toEqual([{ n: 100 }]);

    const order = JSON.stringify({ orderId: "o1", items: [{ sku: "sku-001", qty: 2 }, { sku: "sku-002", qty: 1 }] });
    const inv = await txfn(["invoke", "reserveInventory", "--input", order, "--key", "o1:reserve"], env());
    expect(inv.status).toBe(0);
    expect(JSON.parse(inv.stdout)).toEqual({ orderId: "o1", reserved: true });
    expect(await db.query("SELECT stock FROM shop.inventory WHERE sku IN ('sku-001', 'sku-002') ORDER BY sku")).toEqual([
      { stock: 999998 },
      { stock: 999999 },
    ]);

    const [w] = await db.query<{ r: Record<string, unknown> }>("SELECT app.reserve_inventory($1::jsonb, 'o1:reserve') AS r", [order]);
    expect(w!.r).toMatchObject({ output: { orderId: "o1", reserved: true }, replayed: true, version: 1 });

    const paid = await txfn(["invoke", "markPaid", "--input", '{"orderId":"o1","amountCents":1250}', "--key", "o1:pay", "--meta"], env());
    expect(JSON.parse(paid.stdout)).toMatchObject({ ok: true, replayed: false, output: { orderId: "o1", status: "paid" } });
    const ready = await txfn(["invoke", "markReadyToFulfil", "--input", '{"orderId":"o1"}', "--key", "o1:ready"], env());
    expect(JSON.parse(ready.stdout)).toEqual({ orderId: "o1", status: "ready" });
    const release = await txfn(["invoke", "releaseInventory", "--input", order, "--key", "o1:release"], env());
    expect(release.status).toBe(0);
    expect(await db.query("SELECT stock FROM shop.inventory WHERE sku = 'sku-001'")).toEqual([{ stock: 1000000 }]);
  });

  it("an application error: exit 1, the recorded error printed; invocations lists it", async () => {
    const r = await txfn(["invoke", "reserveInventory", "--input", '{"orderId":"o2","items":[{"sku":"sku-003","qty":5000000}]}', "--key", "o2"], env());
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stderr)).toMatchObject({
      name: "OutOfStock",
      message: "out of stock: sku-003 (requested 5000000, available 1000000)",
      data: { sku: "sku-003", requested: 5000000, available: 1000000 },
    });
    expect(JSON.parse(r.stderr).stack).toMatch(/functions\/checkout\.ts:\d+:\d+/);
    const state = await txfn(["invoke", "markReadyToFulfil", "--input", '{"orderId":"o2"}'], env());
    expect(state.status).toBe(1);
    expect(state.stderr).toContain("order o2 is unknown, expected paid");

    const list = await txfn(["invocations", "--fn", "reserveInventory", "--since", "1h", "--json"], env());
    const rows = JSON.parse(list.stdout) as { idempotencyKey: string; status: string }[];
    expect(rows.map((x) => [x.idempotencyKey, x.status])).toEqual([
      ["o2", "error"],
      ["o1:reserve", "ok"],
    ]);
    const text = await txfn(["invocations"], env());
    expect(text.stdout).toMatch(/markReadyToFulfil +v1 +\(no key\) +error: order o2 is unknown/);
  });

  it("unknown functions and bad input are clean CLI errors", async () => {
    const nf = await txfn(["invoke", "nope", "--input", "{}"], env());
    expect(nf.status).toBe(1);
    expect(nf.stderr).toMatch(/^txfn: no function "nope" in bundle version 1\nhint: deployed functions: /);
    const bad = await txfn(["invoke", "markPaid", "--input", "{not json"], env());
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/--input is not valid JSON/);
  });

  it("failed deploys say why and leave the previous version active", async () => {
    const before = await active();
    const failures: [string, string[], RegExp][] = [
      ["syntax", ["deploy", variant("syntax", { "checkout.ts": "export const x = (;\n" })], /build failed:\n.*checkout\.ts:1:\d+/],
      ["missing", ["deploy", variant("missing", { "checkout.ts": "export const x = 1;\n" })], /no transaction functions found/],
      ["size", ["deploy", "functions", "--max-bundle-bytes", "100"], /over the limit of 100 \(.*\); largest inputs: functions\/checkout\.ts \d+ B, /],
      [
        "migration",
        ["deploy", variant("migration", { "migrations/1732879999999_broken.sql": "-- Up Migration\nALTER TABLE shop.nope ADD COLUMN x int;\n" })],
        /deploy failed while applying the project's migrations: migration 1732879999999_broken failed \(.*\): relation "shop.nope" does not exist.*previous version stays active/,
      ],
      [
        // Top-level code of the project that throws: the TypeScript file and line, not only V8's message.
        "load",
        ["deploy", variant("load", { "settings.ts": "const env: { foo?: { bar: string } } = {};\nexport const bar = env.foo!.bar;\n" })],
        /^txfn: the bundle failed while loading its modules, at settings\.ts:2:\d+: Cannot read properties of undefined \(reading 'bar'\)\n$/,
      ],
      [
        "another project's migration history",
        ["deploy", "functions/examples/oversell"],
        new RegExp(
          "deploy failed while applying the project's migrations: this database's migration history \\(txfn\\.app_migrations\\) belongs to another " +
            "project: migration 1732871000000_checkout-schema ran here and \\S*functions/examples/oversell/migrations has no such migration, " +
            "while its own 1732874000000_oversell-shop has not run\\. Deploy each project into a database of its own",
        ),
      ],
      [
        "a migration numbered before one that ran",
        ["deploy", variant("early", { "migrations/1700000000000_early.sql": "-- Up Migration\nCREATE TABLE shop.early (x int);\n" })],
        /migration 1700000000000_early has not run in this database, but it sorts before 1732871000000_checkout-schema, which already ran \(txfn\.app_migrations\): the order changed/,
      ],
    ];
    for (const [what, args, message] of failures) {
      const r = await txfn(args, env());
      expect(r.status, what).toBe(1);
      expect(r.stderr, what).toMatch(message);
      // txfn's error alone: no line of node-pg-migrate's logger ("> Rolling back attempted migration ...").
      expect(r.stderr.trimEnd().split("\n").filter((l) => l.startsWith("txfn: ")), what).toHaveLength(1);
      expect(r.stderr, what).not.toMatch(/^#?> /m);
      expect(await active(), what).toBe(before);
    }
    const tiny = await txfn(["build", "functions", "--max-bundle-bytes", "10"]);
    expect(tiny.stderr).toMatch(/^txfn: bundle is \d+ bytes, over the limit of 10 \(.*\); largest inputs: functions\/checkout\.ts \d+ B, \S+ \d+ B/);
    expect(await db.query("SELECT count(*)::int AS n FROM txfn.bundles")).toEqual([{ n: 1 }]);
    expect(await db.query("SELECT name FROM txfn.app_migrations WHERE name LIKE '%broken%'")).toEqual([]);
  });

  it("versions and rollback: a new version replaces the wrappers; rollback restores the previous ones", async () => {
    const v2dir = variant("v2", {
      "extra.ts": 'import { transaction } from "txfn";\nexport const ping = transaction({ isolation: "read committed" }, (): string => "pong");\n',
    });
    const d = await txfn(["deploy", v2dir], env());
    expect(d.stdout).toMatch(/deployed version 2 \(txv8; previous 1\)/);
    expect(await db.query<{ r: unknown }>("SELECT app.ping('null') AS r")).toMatchObject([{ r: { output: "pong", version: 2 } }]);

    const v = await txfn(["versions"], env());
    expect(v.stdout.split("\n")[0]).toMatch(/^\*\s+2 /);
    expect(v.stdout.split("\n")[1]).toMatch(/^ \s+1 /);

    const rb = await txfn(["rollback"], env());
    expect(rb.stdout).toContain("active version: 1 (was 2)");
    expect(await active()).toBe(1);
    expect(await db.query("SELECT to_regprocedure('app.ping(jsonb,text,jsonb)') AS p")).toEqual([{ p: null }]);
    await expect(db.query("SELECT txfn.invoke('ping', 'null')")).rejects.toMatchObject({ code: "TXF01" });

    const fwd = await txfn(["rollback", "2"], env());
    expect(fwd.stdout).toContain("active version: 2 (was 1)");
    const r = await db.query<{ r: { output: string } }>("SELECT app.ping('null') AS r");
    expect(r[0]!.r.output).toBe("pong");
    const bad = await txfn(["rollback", "99"], env());
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain("no version 99");
  });

  it("a bundle that loads at build time but throws in the database's V8 names the TypeScript line", async () => {
    const before = await active();
    const dir = join(tmp, "load-db");
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, "index.ts"),
      'import { transaction } from "txfn";\n\nfunction probe(): void {\n' +
        '  if (typeof (globalThis as { plv8?: unknown }).plv8 === "object") throw new Error("only in the database");\n}\nprobe();\n\n' +
        'export const ping = transaction({}, (): string => "pong");\n',
    );
    const r = await txfn(["deploy", dir], env());
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(
      /^txfn: deploy failed while loading the bundle in the database: only in the database \(thrown at index\.ts:4:\d+ while the bundle's modules loaded\); the previous version stays active\n$/,
    );
    expect(await active()).toBe(before);
  });

  it("a non-superuser role granted txfn_invoker can invoke; the role is recorded", async () => {
    const role = `${db.name}_app`;
    await db.query(`CREATE ROLE ${role} LOGIN PASSWORD 'pw' IN ROLE txfn_invoker`);
    try {
      const url = new URL(db.url);
      url.username = role;
      url.password = "pw";
      const client = new TxfnClient({ url: url.toString(), poolSize: 2 });
      try {
        const r = await client.invoke("reserveInventory", { orderId: "o3", items: [{ sku: "sku-010", qty: 1 }] }, { key: "o3" });
        expect(r).toMatchObject({ ok: true, output: { reserved: true } });
        const [inv] = await db.query("SELECT role FROM txfn.invocations WHERE id = $1", [r.invocationId]);
        expect(inv).toEqual({ role });
        // but it cannot rewrite history's code
        const c = new pg.Client({ connectionString: url.toString() });
        await c.connect();
        await expect(c.query("UPDATE txfn.bundles SET code = ''")).rejects.toMatchObject({ code: "42501" });
        await c.end();
      } finally {
        await client.close();
      }
    } finally {
      await db.query(`DROP OWNED BY ${role}`);
      await db.query(`DROP ROLE ${role}`);
    }
  });
});
