// Provenance (issue 5) against the real cluster: attribution of functions vs plain SQL, what
// rolled-back work leaves (nothing), TRUNCATE, capture kept in step with DDL, the CLI
// (history, audit, provenance, prune) and holds. The follow test is provenance-follow.test.ts.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TxfnClient, type InvokeResult } from "../client/index.ts";
import { txfn } from "./support/cli.ts";
import { useTestDatabase } from "./support/database.ts";

const db = useTestDatabase();
const env = () => ({ DATABASE_URL: db.url });
let client: TxfnClient;
let deployStderr = "";

beforeAll(async () => {
  const d = await txfn(["deploy", "test/fixtures/provenance"], env());
  if (d.status !== 0) throw new Error(`deploy failed: ${d.stderr}`);
  deployStderr = d.stderr;
  client = new TxfnClient({ url: db.url, poolSize: 2, applicationName: "prov-test" });
});
afterAll(async () => client?.close());

interface Row {
  xid: string;
  seq: number;
  table_name: string;
  op: string;
  key: Record<string, unknown>;
  old_key: Record<string, unknown> | null;
  old_row: Record<string, unknown> | null;
  new_row: Record<string, unknown> | null;
  invocation_id: string | null;
  role: string;
  application_name: string | null;
}

/** Captured changes, oldest first, optionally only of one transaction or after a position. */
async function changes(where = "true", params: unknown[] = []): Promise<Row[]> {
  return db.query<Row>(
    "SELECT p.xid::text, p.seq, t.schema_name || '.' || t.table_name AS table_name, p.op, p.key, p.old_key, p.old_row, p.new_row, " +
      `p.invocation_id::text, p.role, p.application_name FROM txfn.provenance p JOIN txfn.provenance_tables t ON t.id = p.table_id WHERE ${where} ORDER BY p.xid, p.seq`,
    params,
  );
}
const count = async () => Number((await db.query<{ n: string }>("SELECT count(*) AS n FROM txfn.provenance"))[0]!.n);
const invocationXid = async (id: string) => (await db.query<{ xid: string }>("SELECT xid::text FROM txfn.invocations WHERE id = $1", [id]))[0]!.xid;

/** A plain connection, like psql (application_name psql). */
async function withSql<T>(body: (c: pg.Client) => Promise<T>, applicationName = "psql"): Promise<T> {
  const c = new pg.Client({ connectionString: db.url, application_name: applicationName });
  await c.connect();
  try {
    return await body(c);
  } finally {
    await c.end();
  }
}

function ok<O>(r: InvokeResult<O>): O {
  if (!r.ok) throw new Error(`expected an output, got ${JSON.stringify(r.error)}`);
  return r.output;
}

describe("capture and attribution", () => {
  it("deploy installs capture and warns about a table without primary key", async () => {
    expect(deployStderr).toMatch(/prov\.notes has no primary key: provenance uses the whole row as its key/);
    const tables = await db.query("SELECT schema_name || '.' || table_name AS t, key_columns, captured FROM txfn.provenance_tables ORDER BY 1");
    expect(tables).toEqual([
      { t: "prov.items", key_columns: ["id"], captured: true },
      { t: "prov.notes", key_columns: [], captured: true },
    ]);
  });

  it("writes through a function carry its invocation; the same writes from plain SQL carry none", async () => {
    const r = await client.invoke("putItems", { items: [{ id: "a", v: 1 }, { id: "b", v: 2 }], note: "first" });
    expect(ok(r)).toEqual({ written: 2 });
    const xid = await invocationXid(r.invocationId);
    const fn = await changes("p.xid = $1::xid8", [xid]);
    const user = (await db.query<{ user: string }>("SELECT current_user AS user"))[0]!.user;
    expect(fn.map((c) => [c.seq, c.table_name, c.op, c.key])).toEqual([
      [1, "prov.items", "I", { id: "a" }],
      [2, "prov.items", "I", { id: "b" }],
      [3, "prov.notes", "I", { note: "first" }],
    ]);
    for (const c of fn) expect(c).toMatchObject({ invocation_id: r.invocationId, role: user, application_name: "prov-test", old_row: null });
    expect(fn[0]!.new_row).toEqual({ id: "a", v: 1 });

    // an update and a delete through functions: old and new rows
    const u = await client.invoke("putItems", { items: [{ id: "a", v: 5 }] });
    const d = await client.invoke("dropItem", { id: "b" });
    const [upd] = await changes("p.xid = $1::xid8 AND p.op = 'U'", [await invocationXid(u.invocationId)]);
    expect(upd).toMatchObject({ key: { id: "a" }, old_row: { id: "a", v: 1 }, new_row: { id: "a", v: 5 }, invocation_id: u.invocationId });
    const [del] = await changes("p.xid = $1::xid8", [await invocationXid(d.invocationId)]);
    expect(del).toMatchObject({ op: "D", key: { id: "b" }, old_row: { id: "b", v: 2 }, new_row: null, invocation_id: d.invocationId });

    // plain SQL (psql): insert, update, delete — no invocation, its role and application
    const before = await count();
    await withSql(async (c) => {
      await c.query("INSERT INTO prov.items VALUES ('p', 1)");
      await c.query("UPDATE prov.items SET v = v + 1 WHERE id = 'p'");
      await c.query("DELETE FROM prov.items WHERE id = 'p'");
    });
    const sql = (await changes()).slice(before);
    expect(sql.map((c) => [c.op, c.key, c.invocation_id, c.application_name, c.role])).toEqual([
      ["I", { id: "p" }, null, "psql", user],
      ["U", { id: "p" }, null, "psql", user],
      ["D", { id: "p" }, null, "psql", user],
    ]);
  });

  it("a rolled-back transaction leaves no provenance (plain SQL, and an invocation in a rolled-back caller transaction)", async () => {
    const before = await count();
    await withSql(async (c) => {
      await c.query("BEGIN");
      await c.query("INSERT INTO prov.items VALUES ('rb', 1)");
      await c.query("UPDATE prov.items SET v = 9 WHERE id = 'a'");
      await c.query("ROLLBACK");
      await c.query("BEGIN ISOLATION LEVEL SERIALIZABLE");
      const r = await c.query("SELECT txfn.invoke('putItems', '{\"items\":[{\"id\":\"rb2\",\"v\":1}]}') AS r");
      expect(r.rows[0].r.output).toEqual({ written: 1 });
      await c.query("ROLLBACK");
    });
    expect(await count()).toBe(before);
    // a rolled-back savepoint gives its sequence numbers back: committed ones stay 1..n
    const xid = await withSql(async (c) => {
      await c.query("BEGIN");
      await c.query("INSERT INTO prov.items VALUES ('sp1', 1)");
      await c.query("SAVEPOINT s");
      await c.query("INSERT INTO prov.items VALUES ('sp2', 1)");
      await c.query("ROLLBACK TO SAVEPOINT s");
      await c.query("INSERT INTO prov.items VALUES ('sp3', 1)");
      const x = await c.query<{ x: string }>("SELECT pg_current_xact_id()::text AS x");
      await c.query("COMMIT");
      return x.rows[0]!.x;
    });
    expect((await changes("p.xid = $1::xid8", [xid])).map((c) => [c.seq, c.key])).toEqual([
      [1, { id: "sp1" }],
      [2, { id: "sp3" }],
    ]);
  });

  it("an application error leaves no provenance for its rolled-back writes (the error itself is recorded)", async () => {
    const before = await count();
    const r = await client.invoke("putItems", { items: [{ id: "a", v: 77 }, { id: "err", v: 1 }], fail: true });
    expect(r.ok).toBe(false);
    expect((await db.query("SELECT status FROM txfn.invocations WHERE id = $1", [r.invocationId]))[0]).toEqual({ status: "error" });
    expect(await changes("p.xid = $1::xid8", [await invocationXid(r.invocationId)])).toEqual([]);
    expect(await count()).toBe(before);
    expect(await db.query("SELECT v FROM prov.items WHERE id = 'a'")).toEqual([{ v: 5 }]);
  });

  it("a plain write after an invocation, in the same transaction, is not attributed to the invocation", async () => {
    const { id, xid } = await withSql(async (c) => {
      await c.query("BEGIN ISOLATION LEVEL SERIALIZABLE");
      const { rows } = await c.query<{ env: { invocationId: string } }>(
        "SELECT txfn.invoke('putItems', $1::jsonb) AS env",
        [JSON.stringify({ items: [{ id: "in-fn", v: 1 }] })],
      );
      await c.query("INSERT INTO prov.items VALUES ('after-fn', 2)");
      const x = await c.query<{ xid: string }>("SELECT pg_current_xact_id()::text AS xid");
      await c.query("COMMIT");
      return { id: rows[0]!.env.invocationId, xid: x.rows[0]!.xid };
    });
    const byKey = Object.fromEntries((await changes("p.xid = $1::xid8 AND t.table_name = 'items'", [xid])).map((c) => [c.key.id, c.invocation_id]));
    expect(byKey).toEqual({ "in-fn": id, "after-fn": null });
  });

  it("a session that sets txfn.invocation_id itself is still reported outside functions", async () => {
    await withSql(async (c) => {
      await c.query("BEGIN");
      await c.query("SELECT set_config('txfn.invocation_id', '1', true)");
      await c.query("INSERT INTO prov.items VALUES ('forged', 1)");
      await c.query("COMMIT");
    });
    const a = await txfn(["audit", "--outside-functions", "--table", "items", "--json"], env());
    expect(a.status).toBe(0);
    const listed = JSON.parse(a.stdout) as { key: unknown; invocationId: string | null; claimedInvocationId: string | null }[];
    expect(listed.find((x) => JSON.stringify(x.key) === '{"id":"forged"}')).toMatchObject({ invocationId: null, claimedInvocationId: "1" });
    expect(listed.every((x) => x.invocationId === null)).toBe(true);
    const text = await txfn(["audit", "--outside-functions", "--table", "prov.items"], env());
    expect(text.stdout).toMatch(/INSERT\s+prov\.items \{"id":"forged"\}.*claims invocation 1, which did not run in this transaction/);
  });

  it("a non-superuser's writes are recorded with its role; it can neither read provenance nor forge the role", async () => {
    const role = `${db.name}_writer`;
    await db.query(`CREATE ROLE ${role} LOGIN PASSWORD 'pw' IN ROLE txfn_invoker`);
    try {
      const url = new URL(db.url);
      url.username = role;
      url.password = "pw";
      const c = new pg.Client({ connectionString: url.toString(), application_name: "other-app" });
      await c.connect();
      try {
        await c.query("INSERT INTO prov.items VALUES ('nsu', 3)");
        await expect(c.query("SELECT * FROM txfn.provenance")).rejects.toMatchObject({ code: "42501" });
        await expect(
          c.query("INSERT INTO txfn.provenance (seq, table_id, op, key, role) VALUES (99, 1, 'I', '{}', 'someone_else')"),
        ).rejects.toMatchObject({ code: "42501" });
      } finally {
        await c.end();
      }
      const [row] = await changes("p.key = '{\"id\":\"nsu\"}'");
      expect(row).toMatchObject({ op: "I", role, application_name: "other-app", invocation_id: null });
    } finally {
      await db.query(`DROP OWNED BY ${role}`);
      await db.query(`DROP ROLE ${role}`);
    }
  });
});

describe("TRUNCATE", () => {
  it("is recorded as one change per removed row, or refused clearly when so configured", async () => {
    await withSql(async (c) => {
      await c.query("CREATE TABLE prov.scratch (id int PRIMARY KEY, s text)");
      await c.query("INSERT INTO prov.scratch VALUES (1, 'x'), (2, 'y')");
      await c.query("BEGIN");
      await c.query("TRUNCATE prov.scratch");
      const xid = (await c.query<{ x: string }>("SELECT pg_current_xact_id()::text AS x")).rows[0]!.x;
      await c.query("COMMIT");
      expect((await changes("p.xid = $1::xid8", [xid])).map((r) => [r.seq, r.op, r.key, r.old_row])).toEqual([
        [1, "T", { id: 1 }, { id: 1, s: "x" }],
        [2, "T", { id: 2 }, { id: 2, s: "y" }],
      ]);
      // at REPEATABLE READ rows committed after the snapshot could vanish unrecorded: refused
      await c.query("INSERT INTO prov.scratch VALUES (3, 'z')");
      await c.query("BEGIN ISOLATION LEVEL REPEATABLE READ");
      await expect(c.query("TRUNCATE prov.scratch")).rejects.toMatchObject({ code: "TXF21" });
      await c.query("ROLLBACK");
    });
    const cfg = await txfn(["provenance", "config", "--truncate", "refuse"], env());
    expect(cfg.status).toBe(0);
    await withSql(async (c) => {
      const err = await c.query("TRUNCATE prov.scratch").catch((e: unknown) => e as { code: string; message: string; hint: string });
      expect(err).toMatchObject({ code: "TXF20", message: expect.stringContaining("TRUNCATE of prov.scratch is refused") });
      expect((err as { hint: string }).hint).toContain("use DELETE");
      expect((await c.query("SELECT count(*)::int AS n FROM prov.scratch")).rows).toEqual([{ n: 1 }]);
    });
    await txfn(["provenance", "config", "--truncate", "record"], env());
  });
});

describe("capture kept in step with DDL (event trigger)", () => {
  it("a column added later appears in the captured rows", async () => {
    await withSql(async (c) => {
      await c.query("ALTER TABLE prov.items ADD COLUMN color text");
      await c.query("UPDATE prov.items SET color = 'red' WHERE id = 'a'");
    });
    const r = await client.invoke("putItems", { items: [{ id: "a", v: 6 }] });
    expect(r.ok).toBe(true);
    const rows = await changes("p.key = '{\"id\":\"a\"}' AND p.op = 'U'");
    expect(rows.at(-2)).toMatchObject({ old_row: { id: "a", v: 5, color: null }, new_row: { id: "a", v: 5, color: "red" } });
    expect(rows.at(-1)).toMatchObject({ new_row: { id: "a", v: 6, color: "red" }, invocation_id: r.invocationId });
  });

  it("a table created from psql is captured from its first row; key, rename, disable and exclude are followed", async () => {
    await withSql(async (c) => {
      await c.query("CREATE TABLE public.later (a int, b text)");
      await c.query("INSERT INTO public.later VALUES (1, 'one')");
      await c.query("ALTER TABLE public.later ADD PRIMARY KEY (a)");
      await c.query("UPDATE public.later SET b = 'uno' WHERE a = 1");
      await c.query("ALTER TABLE public.later RENAME TO renamed");
      await c.query("ALTER TABLE public.renamed DISABLE TRIGGER txfn_provenance"); // re-enabled at once (with a WARNING)
      await c.query("DELETE FROM public.renamed WHERE a = 1");
      await c.query("CREATE TABLE public.made AS SELECT g AS id FROM generate_series(1, 2) g"); // rows of the CREATE itself
    });
    expect((await changes("t.table_name IN ('later', 'renamed')")).map((r) => [r.table_name, r.op, r.key])).toEqual([
      ["public.renamed", "I", { a: 1, b: "one" }], // before the primary key: the whole row is the key
      ["public.renamed", "U", { a: 1 }],
      ["public.renamed", "D", { a: 1 }],
    ]);
    expect((await changes("t.table_name = 'made'")).map((r) => [r.op, r.key, r.new_row])).toEqual([
      ["I", { id: 1 }, { id: 1 }],
      ["I", { id: 2 }, { id: 2 }],
    ]);
    const h = await txfn(["history", "renamed", "1"], env());
    expect(h.status).toBe(0);
    expect(h.stdout).toContain('public.renamed {"a":1}: 2 change(s)');

    const ex = await txfn(["provenance", "config", "--exclude", "public.made"], env());
    expect(ex.stdout).toMatch(/removed\s+public\.made/);
    const before = await count();
    await withSql((c) => c.query("INSERT INTO public.made VALUES (3)"));
    expect(await count()).toBe(before);
    const st = await txfn(["provenance", "status"], env());
    expect(st.stdout).toMatch(/public\.made\s+key \(whole row: no primary key\)\s+not captured/);
    expect(st.stdout).toContain("DDL event trigger: on");
    await withSql((c) => c.query("DROP TABLE public.made"));
    expect((await db.query("SELECT relid, dropped_at IS NOT NULL AS dropped FROM txfn.provenance_tables WHERE table_name = 'made'"))[0]).toEqual({
      relid: null,
      dropped: true,
    });
  });
});

describe("txfn history", () => {
  it("shows a row's versions with what made each and a column diff", async () => {
    await client.invoke("putItems", { items: [{ id: "h", v: 1 }] }, { workflowId: "wf-1", workflowStep: 2 });
    await withSql((c) => c.query("UPDATE prov.items SET v = 2 WHERE id = 'h'"));
    await withSql((c) => c.query("UPDATE prov.items SET id = 'h2' WHERE id = 'h'"));
    const h = await txfn(["history", "prov.items", "h2"], env());
    expect(h.status).toBe(0);
    const lines = h.stdout.split("\n");
    expect(lines[0]).toBe('prov.items {"id":"h2"}: 3 change(s); earlier key(s) {"id":"h"}');
    expect(lines[1]).toMatch(/^#1  INSERT .*invocation \d+ putItems v1 workflow wf-1#2, role \w+, app prov-test/);
    expect(h.stdout).toMatch(/#2  UPDATE .*outside txfn, role \w+, app psql[^\n]*\n\s+v: 1 → 2/);
    expect(h.stdout).toMatch(/#3  UPDATE [^\n]*\n\s+key: \{"id":"h"\} → \{"id":"h2"\}/);
    // the old key's history ends before the update that changed the key
    const old = JSON.parse((await txfn(["history", "items", '{"id":"h"}', "--json"], env())).stdout);
    expect(old.versions.map((v: { change: { op: string } }) => v.change.op)).toEqual(["I", "U"]);
    expect(old.versions[1].diff).toEqual([{ column: "v", before: 1, after: 2 }]);
  });

  it("names what is wrong with bad input", async () => {
    const t = await txfn(["history", "nope", "1"], env());
    expect(t.status).toBe(1);
    expect(t.stderr).toMatch(/no captured table "nope"\nhint: captured tables: .*prov\.items/);
    const k = await txfn(["history", "prov.items", '{"idx":1}'], env());
    expect(k.stderr).toContain('the key of prov.items is (id); got {"idx":1}');
    const c = await txfn(["audit", "--follow", "--cursor", "garbage"], env());
    expect(c.stderr).toContain('not a provenance cursor: "garbage"');
    const p = await txfn(["prune", "--before", "soon"], env());
    expect(p.stderr).toContain('--before: cannot read "soon" as a time');
  });
});

describe("txfn prune and holds", () => {
  it("removes old changes but never what a hold or the retention window keeps", async () => {
    const total = await count();
    const x = (await db.query<{ x: string }>("SELECT max(xid)::text AS x FROM txfn.provenance"))[0]!.x;
    // a replay holding everything from the newest transaction on
    const hold = await txfn(["provenance", "hold", "replay:1", "--from-xid", x, "--reason", "test replay"], env());
    expect(hold.status).toBe(0);
    const kept = Number((await db.query<{ n: string }>("SELECT count(*) AS n FROM txfn.provenance WHERE xid >= $1::xid8", [x]))[0]!.n);
    const future = await txfn(["prune", "--before", new Date(Date.now() + 3600_000).toISOString()], env());
    expect(future.stderr).toMatch(/--before .* is in the future/);
    const dry = await txfn(["prune", "--before", "0s", "--dry-run"], env());
    expect(dry.stdout).toContain(`would remove ${total - kept} change(s)`);
    const p = await txfn(["prune", "--before", "0s"], env());
    expect(p.status).toBe(0);
    expect(p.stdout).toContain(`removed ${total - kept} change(s)`);
    expect(p.stdout).toContain("kept by hold replay:1");
    expect(await count()).toBe(kept);
    // holding from before what prune removed is refused: those changes are gone
    const late = await txfn(["provenance", "hold", "replay:2", "--from-xid", "1"], env());
    expect(late.status).toBe(1);
    expect(late.stderr).toContain("prune already removed changes up to xid");

    // the retention window keeps recent changes even when the hold is released
    await txfn(["provenance", "config", "--retention", "1 hour"], env());
    expect((await txfn(["provenance", "release", "replay:1"], env())).status).toBe(0);
    const p2 = await txfn(["prune", "--before", "0s"], env());
    expect(p2.stdout).toMatch(/removed 0 change\(s\).*kept by retention 01:00:00/);
    await txfn(["provenance", "config", "--retention", "none"], env());
    const p3 = await txfn(["prune", "--before", "0s"], env());
    expect(p3.stdout).toContain(`removed ${kept} change(s)`);
    expect(await count()).toBe(0);
    expect((await txfn(["provenance", "release", "replay:1"], env())).stderr).toContain('no hold named "replay:1"');
  });
});
