// The C row trigger (capture/, extension txfn_capture) against the PL/pgSQL reference
// txfn._provenance_capture(): the sync picks the C one where the extension is installed and
// switches back and forth when it is dropped or created, also for partitions a non-superuser
// creates; and for the same writes — every key
// shape, partitions, generated, dropped, missing and TOASTed columns, savepoints rolled back,
// TRUNCATE, nested triggers, roles, invocation ids, errors — both write byte-identical rows.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureSystemSchema } from "../migrations/index.ts";
import { installCapture } from "../provenance/index.ts";
import { txfn } from "./support/cli.ts";
import { useTestDatabase } from "./support/database.ts";

const db = useTestDatabase();
const C = "txfn._provenance_capture_c";
const PLPGSQL = "txfn._provenance_capture";
const WRITER = () => `${db.name}_eqw`;

async function connect(applicationName = "eq"): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: db.url, application_name: applicationName });
  await c.connect();
  return c;
}

const rowTriggers = async () =>
  db.query<{ t: string; f: string }>(
    "SELECT tgrelid::regclass::text AS t, tgfoid::regproc::text AS f FROM pg_trigger WHERE tgname = 'txfn_provenance' AND tgparentid = 0 ORDER BY 1",
  );

beforeAll(async () => {
  const c = await connect();
  try {
    await c.query("BEGIN");
    await ensureSystemSchema(c);
    const r = await installCapture(c, { sync: false });
    await c.query("CREATE SCHEMA app");
    await c.query("CREATE TABLE app.t (id int PRIMARY KEY, v int)");
    await installCapture(c);
    await c.query("COMMIT");
    if (r.captureExtension === null) throw new Error("the txfn_capture extension is not installed in this PostgreSQL: run bash scripts/setup");
  } finally {
    await c.end();
  }
  await db.query(`CREATE ROLE ${WRITER()}`);
});
afterAll(async () => {
  await db.query(`DROP OWNED BY ${WRITER()}`).catch(() => {});
  await db.query(`DROP ROLE IF EXISTS ${WRITER()}`).catch(() => {});
});

describe("which row trigger the sync installs", () => {
  it("the C one where txfn_capture is installed; dropping or creating the extension re-syncs; status says which", async () => {
    expect(await rowTriggers()).toEqual([{ t: "app.t", f: C }]);
    let st = await txfn(["provenance", "status"], { DATABASE_URL: db.url });
    expect(st.stdout).toMatch(/^row trigger: C \(txfn_capture 1\.0\) on 1 table\(s\)$/m);

    // the DDL event trigger puts the PL/pgSQL trigger back at once: no change goes unrecorded
    await db.query("DROP EXTENSION txfn_capture CASCADE");
    expect(await rowTriggers()).toEqual([{ t: "app.t", f: PLPGSQL }]);
    st = await txfn(["provenance", "status"], { DATABASE_URL: db.url });
    expect(st.stdout).toMatch(/^row trigger: PL\/pgSQL on 1 table\(s\) \(the txfn_capture extension is not installed/m);
    await db.query("INSERT INTO app.t VALUES (1, 1)");

    await db.query("CREATE EXTENSION txfn_capture");
    expect(await rowTriggers()).toEqual([{ t: "app.t", f: C }]);
    await db.query("INSERT INTO app.t VALUES (2, 1)");
    expect(await db.query("SELECT op, key FROM txfn.provenance ORDER BY key->>'id'")).toEqual([
      { op: "I", key: { id: 1 } },
      { op: "I", key: { id: 2 } },
    ]);
  });

  it("a non-superuser's partitions of a captured table get the C trigger; its writes need no grant on txfn.provenance", async () => {
    await db.query(`GRANT USAGE, CREATE ON SCHEMA app TO ${WRITER()}; GRANT ALL ON app.t TO ${WRITER()}`);
    const c = await connect();
    try {
      await c.query(`SET ROLE ${WRITER()}`);
      await c.query("CREATE TABLE app.parts (region text, id int, PRIMARY KEY (region, id)) PARTITION BY LIST (region)"); // captured by the event trigger
      await c.query("CREATE TABLE app.parts_a PARTITION OF app.parts FOR VALUES IN ('a')"); // clones the C trigger: needs EXECUTE
      await c.query("CREATE TABLE app.parts_b PARTITION OF app.parts FOR VALUES IN ('b')");
      await c.query("INSERT INTO app.parts VALUES ('a', 1), ('b', 1)");
      // the column grant is what the PL/pgSQL trigger needs; the C one writes without it
      await c.query("RESET ROLE");
      await c.query("REVOKE INSERT ON txfn.provenance FROM PUBLIC");
      await c.query(`SET ROLE ${WRITER()}`);
      await c.query("INSERT INTO app.t VALUES (3, 1)");
      await c.query("RESET ROLE");
    } finally {
      await c.query("RESET ROLE").catch(() => {});
      await c.query("GRANT INSERT (seq, table_id, op, key, old_key, old_row, new_row) ON txfn.provenance TO PUBLIC");
      await c.end();
    }
    expect(await db.query("SELECT p.key, p.role FROM txfn.provenance p JOIN txfn.provenance_tables t ON t.id = p.table_id WHERE t.table_name IN ('t', 'parts') AND p.role <> current_user ORDER BY p.xid, p.seq")).toEqual([
      { key: { region: "a", id: 1 }, role: WRITER() },
      { key: { region: "b", id: 1 }, role: WRITER() },
      { key: { id: 3 }, role: WRITER() },
    ]);
    expect(await db.query("SELECT DISTINCT tgfoid::regproc::text AS f FROM pg_trigger WHERE tgname = 'txfn_provenance'")).toEqual([{ f: C }]);
    await db.query("DROP TABLE app.parts");
  });

  it("DDL on txfn.provenance in a transaction that already captured changes: a new index gets the later ones", async () => {
    const c = await connect();
    try {
      await c.query("BEGIN");
      await c.query("INSERT INTO app.t VALUES (10, 1)");
      await c.query("CREATE INDEX provenance_table_id ON txfn.provenance (table_id)");
      await c.query("INSERT INTO app.t VALUES (11, 1)");
      await c.query("ALTER TABLE txfn.provenance ALTER COLUMN application_name SET STATISTICS 10");
      await c.query("UPDATE app.t SET v = 2 WHERE id = 10");
      await c.query("COMMIT");
      const tid = (await c.query<{ id: number }>("SELECT id FROM txfn.provenance_tables WHERE table_name = 't'")).rows[0]!.id;
      const counts = async () =>
        (await c.query<{ a: number; b: number }>(
          "SELECT (SELECT count(*) FROM txfn.provenance WHERE table_id = $1 AND key->>'id' IN ('10', '11'))::int AS a, " +
            "(SELECT count(*) FROM txfn.provenance WHERE key = '{\"id\": 10}')::int AS b",
          [tid],
        )).rows[0];
      const bySeqScan = await counts();
      await c.query("SET enable_seqscan = off");
      const plan = (await c.query(`EXPLAIN SELECT count(*) FROM txfn.provenance WHERE table_id = ${tid}`)).rows.map((r) => r["QUERY PLAN"]).join("\n");
      expect(plan).toContain("provenance_table_id");
      expect(await counts()).toEqual(bySeqScan);
      expect(bySeqScan).toEqual({ a: 3, b: 2 });
      await c.query("DROP INDEX txfn.provenance_table_id");
    } finally {
      await c.end();
    }
  });

  it("misplaced, it is an error, not a crash", async () => {
    await db.query("CREATE TABLE app.misuse (id int)");
    await db.query(`CREATE TRIGGER early BEFORE INSERT ON app.misuse FOR EACH ROW EXECUTE FUNCTION ${C}('1')`);
    await expect(db.query("INSERT INTO app.misuse VALUES (1)")).rejects.toMatchObject({ code: "39P01", message: expect.stringContaining("must be an AFTER") });
    await db.query("DROP TRIGGER early ON app.misuse");
    await db.query(`CREATE TRIGGER bare AFTER INSERT ON app.misuse FOR EACH ROW EXECUTE FUNCTION ${C}()`);
    await expect(db.query("INSERT INTO app.misuse VALUES (1)")).rejects.toMatchObject({ code: "39P01", message: expect.stringContaining("has no arguments") });
    await db.query("DROP TRIGGER bare ON app.misuse");
    await db.query(`CREATE TRIGGER odd AFTER INSERT ON app.misuse FOR EACH ROW EXECUTE FUNCTION ${C}('x')`);
    await expect(db.query("INSERT INTO app.misuse VALUES (1)")).rejects.toMatchObject({ code: "22P02" });
    await db.query("DROP TABLE app.misuse");
  });

  it("concurrent SERIALIZABLE writers of different rows both commit", async () => {
    await db.query("INSERT INTO app.t VALUES (21, 1), (22, 1)");
    const updates = async () =>
      (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM txfn.provenance WHERE op = 'U' AND key->>'id' IN ('21', '22')"))[0]!.n;
    const before = await updates();
    const [a, b] = [await connect(), await connect()];
    try {
      await a.query("BEGIN ISOLATION LEVEL SERIALIZABLE");
      await b.query("BEGIN ISOLATION LEVEL SERIALIZABLE");
      await a.query("SELECT v FROM app.t WHERE id = 21");
      await b.query("SELECT v FROM app.t WHERE id = 22");
      await a.query("UPDATE app.t SET v = v + 1 WHERE id = 21");
      await b.query("UPDATE app.t SET v = v + 1 WHERE id = 22");
      await a.query("COMMIT");
      await b.query("COMMIT");
    } finally {
      await a.end();
      await b.end();
    }
    expect(await updates()).toBe(before + 2);
  });
});

// ---------------------------------------------------------------------------------------------
// Identical rows. The same DDL and writes run in schema eq_c (C row trigger) and eq_p (PL/pgSQL),
// each table with the same trigger arguments; the DDL event trigger is off, so nothing re-syncs
// them. Transaction by transaction, the rows of both sides are compared as binary images.

/** Tables: name, DDL, trigger arguments after the table id (key columns), partition leaves. */
const TABLES: { name: string; ddl: string[]; keys: string[]; leaves?: string[] }[] = [
  {
    name: "items",
    ddl: [
      "CREATE TABLE {s}.items (id text PRIMARY KEY, v int, note text, big text, tags text[], doc jsonb, amount numeric, f float8, " +
        "at timestamptz, b bytea, d date, gone int, twice int GENERATED ALWAYS AS (v * 2) STORED, iv interval, pt point)",
      "ALTER TABLE {s}.items DROP COLUMN gone",
    ],
    keys: ["id"],
  },
  { name: "pair", ddl: ["CREATE TABLE {s}.pair (a int, b text, v int, PRIMARY KEY (b, a))"], keys: ["b", "a"] },
  { name: "bag", ddl: ["CREATE TABLE {s}.bag (x int, y text)"], keys: [] },
  { name: "num", ddl: ["CREATE TABLE {s}.num (k numeric PRIMARY KEY, v int)"], keys: ["k"] },
  { name: "jkey", ddl: ["CREATE TABLE {s}.jkey (k jsonb PRIMARY KEY, v int)"], keys: ["k"] },
  { name: "akey", ddl: ["CREATE TABLE {s}.akey (k int[] PRIMARY KEY, v int)"], keys: ["k"] },
  {
    name: "parted",
    ddl: [
      "CREATE TABLE {s}.parted (region text, id int, v int, PRIMARY KEY (region, id)) PARTITION BY LIST (region)",
      "CREATE TABLE {s}.parted_eu PARTITION OF {s}.parted FOR VALUES IN ('eu')",
      // another column order and a dropped column: to_jsonb sees the leaf's own row type
      "CREATE TABLE {s}.parted_us (extra int, v int, id int NOT NULL, region text NOT NULL)",
      "ALTER TABLE {s}.parted_us DROP COLUMN extra",
      "ALTER TABLE {s}.parted ATTACH PARTITION {s}.parted_us FOR VALUES IN ('us')",
    ],
    keys: ["region", "id"],
    leaves: ["parted_eu", "parted_us"],
  },
  {
    // only scalar columns: the C trigger's cached per-table encoding (capture/src/capture_row.c)
    name: "scalars",
    ddl: [
      "CREATE DOMAIN {s}.posint AS int CHECK (VALUE > 0)",
      "CREATE TABLE {s}.scalars (id int PRIMARY KEY, i2 int2, i8 int8, n numeric, n2 numeric(12, 2), f4 float4, f8 float8, ok bool, " +
        "t text, vc varchar(10), ch char(8), d date, ts timestamp, tz timestamptz, u uuid, iv interval, dom {s}.posint, ir int4range, " +
        "nm name, gone int, \"a longer name\" text, twice int8 GENERATED ALWAYS AS (id::int8 * 2) STORED)",
      "ALTER TABLE {s}.scalars DROP COLUMN gone",
    ],
    keys: ["id"],
  },
  // a column of a type created by a user: PostgreSQL's to_jsonb again
  { name: "moods", ddl: ["CREATE TYPE {s}.mood AS ENUM ('sad', 'ok')", "CREATE TABLE {s}.moods (id int PRIMARY KEY, m {s}.mood)"], keys: ["id"] },
  // more columns than jsonb's offset stride (32): every 32nd entry holds an offset
  {
    name: "wide",
    ddl: [`CREATE TABLE {s}.wide (id int PRIMARY KEY, ${Array.from({ length: 40 }, (_, i) => `c${String(i).padStart(2, "0")} ${["int", "numeric", "text"][i % 3]}`).join(", ")})`],
    keys: ["id"],
  },
  // trigger arguments naming a column the table does not have: JSON null in the key
  { name: "oddkey", ddl: ["CREATE TABLE {s}.oddkey (b text, a int, v int)"], keys: ["b", "a", "zz"] },
];

/** A write script: transactions of statements; `fails` = the statement must fail (in a savepoint). */
type Step = string | { sql: string; fails: string };
const BIG = "(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 40000) g)"; // 1.28 MB, barely compressible: TOASTed out of line
const TRANSACTIONS: { name: string; begin?: string; steps: Step[]; rollback?: boolean }[] = [
  {
    name: "inserts of every type and key shape",
    steps: [
      "INSERT INTO {s}.items (id, v, note, tags, doc, amount, f, at, b, d, iv, pt) VALUES " +
        "('a', 1, 'x', '{p,q}', '{\"z\": [1, 2.50, {\"y\": null}], \"a\": \"ü\"}', 1.10, 'NaN', '2024-02-29 12:34:56.789012+02', '\\x00ff', '2024-01-01', '1 day 2 hours', '(1,2)'), " +
        "('b', 2, E'quote \" back \\\\ tab \\t nl \\n', NULL, 'null', 12345678901234567890.123456789, 'Infinity', 'infinity', '', '-infinity', '-1 year', NULL), " +
        "('c', 3, '☃ snow', '{}', '\"str\"', -0.0, -0.0, '1999-12-31 23:59:59.999999+00', NULL, NULL, NULL, NULL), " +
        "('ü-ключ', 4, NULL, '{NULL,\"\"}', '[]', 1e-20, 1.7976931348623157e308, NULL, NULL, NULL, NULL, NULL)",
      "INSERT INTO {s}.pair VALUES (1, 'one', 1), (2, 'two', 2)",
      "INSERT INTO {s}.bag VALUES (1, 'dup'), (1, 'dup'), (NULL, NULL)",
      "INSERT INTO {s}.num VALUES (1.0, 1), (2.50, 2)",
      "INSERT INTO {s}.jkey VALUES ('{\"b\": [1, {\"c\": 2}], \"a\": 1}', 1), ('3', 2), ('\"s\"', 3)",
      "INSERT INTO {s}.akey VALUES ('{1,2}', 1), ('{}', 2)",
      "INSERT INTO {s}.parted VALUES ('eu', 1, 1), ('us', 1, 1), ('us', 2, 2)",
      "INSERT INTO {s}.scalars VALUES (1, -32768, -9223372036854775808, 'NaN', 123.45, 'Infinity', '-Infinity', true, E'a\"b\\\\c\\n', 'vc  ', 'ch', " +
        "'2024-02-29', '2024-02-29 01:02:03.000004', '2024-02-29 01:02:03+05', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '1 mon', 5, '[1,5)', 'nm', 'ü')",
      "INSERT INTO {s}.scalars VALUES (2, 32767, 9223372036854775807, '-Infinity', 0, 1.5e-40, 5e-324, false, '', '', '', " +
        "'infinity', '-infinity', 'infinity', NULL, '-1 day', 1, 'empty', '', '')",
      "INSERT INTO {s}.scalars (id, i2, i8, n, n2, f4, f8) SELECT g, g, g::int8 * 100000000, g * 1.50, -g, g / 3.0, -g / 7.0 FROM generate_series(3, 12) g",
      "INSERT INTO {s}.scalars (id, i8, n) VALUES (13, 10000, 0.000), (14, -10000, -0.0), (15, 99990000, 1e30), (16, 1, 12345678901234567890.12345), (-2147483648, 0, 'Infinity')",
      "INSERT INTO {s}.scalars (id, n, n2) SELECT 200 + row_number() OVER (), x, CASE WHEN abs(x) < 1e9 THEN x END FROM unnest(ARRAY[0, 0.0, -0.0, 1e-20, " +
        "0.0001, 10000, 1e100, -1e-100, 123.4500, -99999999.99, 9999.9999, 100000000, 0.1, 1e-1000, 7e500]::numeric[]) x",
      "INSERT INTO {s}.moods VALUES (1, 'ok'), (2, NULL)",
      "INSERT INTO {s}.oddkey VALUES ('k', 1, 1), ('k', 2, 2)",
      "INSERT INTO {s}.wide SELECT g, g * 0, g / 2.0, repeat('x', g + 2), g * 3, g / 5.0, repeat('x', g + 5), g * 6, g / 8.0, repeat('x', g + 8), g * 9, g / 11.0, repeat('x', g + 11), g * 12, g / 14.0, repeat('x', g + 14), g * 15, g / 17.0, repeat('x', g + 17), g * 18, g / 20.0, repeat('x', g + 20), g * 21, g / 23.0, repeat('x', g + 23), g * 24, g / 26.0, repeat('x', g + 26), g * 27, g / 29.0, repeat('x', g + 29), g * 30, g / 32.0, repeat('x', g + 32), g * 33, g / 35.0, repeat('x', g + 35), g * 36, g / 38.0, repeat('x', g + 38), g * 39 FROM generate_series(1, 6) g",
    ],
  },
  {
    name: "updates: values, keys, no-ops, equal keys in another spelling",
    steps: [
      "UPDATE {s}.items SET v = v + 10, note = 'changed' WHERE id = 'a'",
      "UPDATE {s}.items SET id = 'a2' WHERE id = 'a'",
      "UPDATE {s}.items SET v = v WHERE id = 'b'",
      "UPDATE {s}.pair SET b = 'uno' WHERE a = 1",
      "UPDATE {s}.pair SET v = 9 WHERE a = 2",
      "UPDATE {s}.bag SET x = x WHERE y IS NULL",
      "UPDATE {s}.bag SET y = 'one' WHERE y = 'dup'",
      "UPDATE {s}.num SET k = 1.00 WHERE k = 1", // the same key for jsonb equality: no old_key
      "UPDATE {s}.num SET k = 3 WHERE k = 2.5",
      "UPDATE {s}.jkey SET k = '{\"a\": 1, \"b\": [1, {\"c\": 3}]}' WHERE v = 1",
      "UPDATE {s}.jkey SET v = 20 WHERE v = 2",
      "UPDATE {s}.akey SET k = '{2,1}' WHERE v = 1",
      "UPDATE {s}.scalars SET t = 'upd', i8 = i8 + 1 WHERE id % 3 = 0",
      "UPDATE {s}.scalars SET id = id + 100 WHERE id = 4",
      "UPDATE {s}.scalars SET ok = ok WHERE id = 2",
      "UPDATE {s}.moods SET m = 'sad'",
      "UPDATE {s}.oddkey SET v = 3 WHERE a = 1",
      "UPDATE {s}.oddkey SET a = 5 WHERE a = 2",
      "DELETE FROM {s}.oddkey WHERE a = 1",
      "UPDATE {s}.wide SET c05 = NULL, c06 = 7 WHERE id % 2 = 0",
      "DELETE FROM {s}.wide WHERE id > 4",
    ],
  },
  {
    name: "savepoints rolled back give their numbers back",
    steps: [
      "INSERT INTO {s}.bag VALUES (10, 'sp')",
      "SAVEPOINT a",
      "INSERT INTO {s}.bag VALUES (11, 'sp')",
      "SAVEPOINT b",
      "UPDATE {s}.items SET v = 100 WHERE id = 'b'",
      "ROLLBACK TO SAVEPOINT b",
      "INSERT INTO {s}.bag VALUES (12, 'sp')",
      "RELEASE SAVEPOINT a",
      "SAVEPOINT c",
      "DELETE FROM {s}.bag WHERE x = 10",
      "ROLLBACK TO SAVEPOINT c",
      "DELETE FROM {s}.bag WHERE x = 11",
      { sql: "INSERT INTO {s}.items (id, v) VALUES ('b', 1)", fails: "23505" },
      "INSERT INTO {s}.items (id, v) VALUES ('d', 5)",
      // PL/pgSQL exception blocks are subtransactions too
      "DO $$ BEGIN BEGIN INSERT INTO {s}.bag VALUES (13, 'do'); INSERT INTO {s}.items (id, v) VALUES ('d', 1); " +
        "EXCEPTION WHEN unique_violation THEN NULL; END; INSERT INTO {s}.bag VALUES (14, 'do'); END $$",
    ],
  },
  {
    name: "TRUNCATE between row changes (recorded by the shared sequence)",
    steps: [
      "INSERT INTO {s}.bag VALUES (20, 'before')",
      "TRUNCATE {s}.bag",
      "INSERT INTO {s}.bag VALUES (21, 'after')",
      "SAVEPOINT t",
      "TRUNCATE {s}.parted",
      "ROLLBACK TO SAVEPOINT t",
      "TRUNCATE {s}.parted_us",
      "INSERT INTO {s}.parted VALUES ('us', 3, 3)",
    ],
  },
  {
    name: "invocation ids, application name and role",
    steps: [
      "SELECT set_config('txfn.invocation_id', '42', true)",
      "INSERT INTO {s}.bag VALUES (30, 'inv')",
      // new settings between changes: the settings array grows and is sorted again (capture_guc.c)
      "SELECT set_config('eq.added_later', '1', true), set_config('a.first', '1', true), set_config('zz.last', '1', true)",
      "INSERT INTO {s}.bag VALUES (34, 'inv')",
      "SELECT set_config('txfn.invocation_id', ' 7 ', true)",
      "UPDATE {s}.bag SET y = 'inv7' WHERE x = 30",
      "SELECT set_config('txfn.invocation_id', '', true)",
      "SELECT set_config('application_name', '', true)",
      "INSERT INTO {s}.bag VALUES (31, 'none')",
      "SELECT set_config('application_name', 'other app', true)",
      "SET LOCAL ROLE {writer}",
      "INSERT INTO {s}.bag VALUES (32, 'writer')",
      "RESET ROLE",
      "SELECT set_config('txfn.invocation_id', 'abc', true)",
      { sql: "INSERT INTO {s}.bag VALUES (33, 'bad id')", fails: "22P02" },
      "SELECT set_config('txfn.invocation_id', '', true)",
    ],
  },
  {
    name: "TOASTed values, a column added later (missing in old rows), generated column",
    steps: [
      `INSERT INTO {s}.items (id, v, big) VALUES ('t', 1, ${BIG})`,
      "UPDATE {s}.items SET v = 2 WHERE id = 't'",
      "ALTER TABLE {s}.items ADD COLUMN late text DEFAULT 'later'",
      "UPDATE {s}.items SET v = v + 1 WHERE id IN ('b', 'c')",
      "DELETE FROM {s}.items WHERE id = 't'",
      "ALTER TABLE {s}.items ADD COLUMN later2 int",
      "INSERT INTO {s}.items (id, v) VALUES ('e', 7)",
      `INSERT INTO {s}.scalars (id, i8, t) VALUES (20, 1, ${BIG})`,
      "UPDATE {s}.scalars SET i8 = 2 WHERE id = 20",
      "ALTER TABLE {s}.scalars ADD COLUMN late text DEFAULT 'later'",
      "UPDATE {s}.scalars SET f8 = 1 WHERE id IN (1, 2, 20)",
      "ALTER TABLE {s}.scalars ALTER COLUMN i2 TYPE text",
      "DELETE FROM {s}.scalars WHERE id = 20",
      "INSERT INTO {s}.scalars (id, i2) VALUES (21, 'two')",
    ],
  },
  {
    name: "partitions: row movement, updates and deletes in leaves",
    steps: [
      "INSERT INTO {s}.parted VALUES ('eu', 2, 2), ('us', 4, 4)",
      "UPDATE {s}.parted SET region = 'us' WHERE region = 'eu' AND id = 2",
      "UPDATE {s}.parted SET v = v * 10",
      "DELETE FROM {s}.parted WHERE id = 1",
    ],
  },
  {
    name: "ON CONFLICT, data-modifying CTEs, nested triggers from a volatile function",
    steps: [
      "INSERT INTO {s}.pair VALUES (2, 'two', 5) ON CONFLICT (b, a) DO UPDATE SET v = excluded.v + {s}.pair.v",
      "INSERT INTO {s}.pair VALUES (2, 'two', 5) ON CONFLICT DO NOTHING",
      "WITH d AS (DELETE FROM {s}.bag WHERE x = 21 RETURNING *) INSERT INTO {s}.bag SELECT x + 1000, y FROM d",
      "UPDATE {s}.num SET v = v + {s}.bump(v)",
    ],
  },
  {
    name: "SERIALIZABLE",
    begin: "BEGIN ISOLATION LEVEL SERIALIZABLE",
    steps: ["UPDATE {s}.items SET v = v + 1 WHERE id = 'b'", "DELETE FROM {s}.akey"],
  },
  { name: "rolled back", steps: ["INSERT INTO {s}.bag VALUES (40, 'gone')", "DELETE FROM {s}.items"], rollback: true },
];

interface Ran {
  xid: string;
  time: string;
  errors: string[];
}

async function runSide(schema: "eq_c" | "eq_p"): Promise<Ran[]> {
  const c = await connect();
  const sql = (s: string) => s.replace(/\{s\}/g, schema).replace(/\{writer\}/g, WRITER());
  const ran: Ran[] = [];
  try {
    for (const t of TRANSACTIONS) {
      await c.query(t.begin ?? "BEGIN");
      const errors: string[] = [];
      for (const step of t.steps) {
        if (typeof step === "string") {
          await c.query(sql(step));
          continue;
        }
        await c.query("SAVEPOINT expect_error");
        const err = await c.query(sql(step.sql)).then(
          () => null,
          (e: { code: string; message: string }) => e,
        );
        expect(err, `${t.name}: ${step.sql} should fail`).toMatchObject({ code: step.fails });
        errors.push(`${err!.code} ${err!.message.replaceAll(schema, "{s}")}`);
        await c.query("ROLLBACK TO SAVEPOINT expect_error");
      }
      const r = await c.query<{ x: string; t: string }>("SELECT pg_current_xact_id()::text AS x, now()::text AS t");
      await c.query(t.rollback ? "ROLLBACK" : "COMMIT");
      ran.push({ xid: r.rows[0]!.x, time: r.rows[0]!.t, errors });
    }
  } finally {
    await c.end();
  }
  return ran;
}

describe("the C and PL/pgSQL row triggers write identical rows", () => {
  beforeAll(async () => {
    const c = await connect();
    try {
      await c.query("ALTER EVENT TRIGGER txfn_provenance_ddl DISABLE");
      for (const [schema, fn] of [["eq_c", C], ["eq_p", PLPGSQL]] as const) {
        const s = (q: string) => q.replace(/\{s\}/g, schema);
        await c.query(s("CREATE SCHEMA {s}"));
        await c.query(s(`GRANT USAGE ON SCHEMA {s} TO ${WRITER()}`));
        for (const [i, t] of TABLES.entries()) {
          for (const d of t.ddl) await c.query(s(d));
          const args = [String(100 + i), ...t.keys].map((a) => `'${a}'`).join(", ");
          await c.query(s(`CREATE TRIGGER txfn_provenance AFTER INSERT OR UPDATE OR DELETE ON {s}.${t.name} FOR EACH ROW EXECUTE FUNCTION ${fn}(${args})`));
          for (const leaf of t.leaves ?? [t.name]) {
            await c.query(s(`CREATE TRIGGER txfn_provenance_truncate BEFORE TRUNCATE ON {s}.${leaf} FOR EACH STATEMENT EXECUTE FUNCTION txfn._provenance_truncate(${args})`));
          }
          await c.query(s(`GRANT ALL ON {s}.${t.name} TO ${WRITER()}`));
        }
        // a volatile function writing another captured table from inside an UPDATE: nested triggers
        await c.query(s("CREATE FUNCTION {s}.bump(v int) RETURNS int LANGUAGE sql VOLATILE AS $$ INSERT INTO {s}.bag VALUES (v, 'bump') RETURNING 1 $$"));
      }
    } finally {
      await c.end();
    }
  });
  afterAll(async () => {
    await db.query("ALTER EVENT TRIGGER txfn_provenance_ddl ENABLE ALWAYS");
  });

  it("transaction by transaction, the same rows with the same numbers, byte for byte", async () => {
    const cSide = await runSide("eq_c");
    const pSide = await runSide("eq_p");
    let total = 0;
    const ops = new Set<string>();
    for (const [i, t] of TRANSACTIONS.entries()) {
      const [a, b] = [cSide[i]!, pSide[i]!];
      expect(a.errors, t.name).toEqual(b.errors);
      const rows = await db.query<{ seq: number; c: boolean; p: boolean; same: boolean; mine: boolean; op: string; ck: string; pk: string }>(
        "SELECT seq, c.seq IS NOT NULL AS c, p.seq IS NOT NULL AS p, coalesce(c.op, p.op) AS op, " +
          // *= compares binary images (record_image_eq: the detoasted bytes of each column)
          "ROW(c.table_id, c.op, c.key, c.old_key, c.old_row, c.new_row, c.invocation_id, c.role, c.application_name)::record *= " +
          "ROW(p.table_id, p.op, p.key, p.old_key, p.old_row, p.new_row, p.invocation_id, p.role, p.application_name)::record AS same, " +
          "c.tx_time = $3::timestamptz AND p.tx_time = $4::timestamptz AS mine, " +
          "row_to_json(c)::text AS ck, row_to_json(p)::text AS pk " +
          "FROM (SELECT * FROM txfn.provenance WHERE xid = $1::xid8) c FULL JOIN (SELECT * FROM txfn.provenance WHERE xid = $2::xid8) p USING (seq) ORDER BY seq",
        [a.xid, b.xid, a.time, b.time],
      );
      if (t.rollback) {
        expect(rows, t.name).toEqual([]);
        continue;
      }
      expect(rows.length, t.name).toBeGreaterThan(0);
      expect(rows.map((r) => r.seq), `${t.name}: gapless`).toEqual(rows.map((_, k) => k + 1));
      for (const r of rows) {
        expect({ seq: r.seq, c: r.c, p: r.p, same: r.same, mine: r.mine }, `${t.name}\nC:        ${r.ck}\nPL/pgSQL: ${r.pk}`).toEqual({
          seq: r.seq, c: true, p: true, same: true, mine: true,
        });
        ops.add(r.op);
      }
      total += rows.length;
    }
    expect([...ops].sort()).toEqual(["D", "I", "T", "U"]);
    expect(total).toBeGreaterThan(60);
    // the big value really was stored out of line in the table (TOAST), and reached the jsonb whole
    const big = await db.query<{ n: number }>("SELECT max(length(new_row->>'big'))::int AS n FROM txfn.provenance WHERE table_id = 100");
    expect(big[0]!.n).toBe(40000 * 32);
    const bigScalar = await db.query<{ n: number }>(`SELECT max(length(old_row->>'t'))::int AS n FROM txfn.provenance WHERE table_id = ${100 + TABLES.findIndex((t) => t.name === "scalars")}`);
    expect(bigScalar[0]!.n).toBe(40000 * 32);
  });
});
