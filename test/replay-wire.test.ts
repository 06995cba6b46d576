// replay/wire.ts, the protocol connection of replay's scratch sessions, against the real cluster:
// every statement's result of a multi-statement message, text values and NULLs, row counts,
// parameters (NULL and non-ASCII text), rows wider than a read, server errors with their SQLSTATE (the rest of the message
// skipped, the connection usable after), a connection the server ends, and a clear error when
// node-postgres's socket is not where wire.ts takes it from.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Wire, WireError } from "../replay/wire.ts";
import { useTestDatabase } from "./support/database.ts";

const db = useTestDatabase();
let w: Wire;

beforeAll(async () => {
  w = new Wire(new pg.Client({ connectionString: db.url, application_name: "replay-wire-test" }));
  await w.connect();
});
afterAll(async () => {
  await w?.close();
});

describe("Wire", () => {
  it("returns each statement's result of one message, values as text", async () => {
    const r = await w.query("CREATE TEMP TABLE t (a int, b text); INSERT INTO t VALUES (1, 'x'), (2, NULL); SELECT a, b, a + 0.5 AS c FROM t ORDER BY a");
    expect(r.map((x) => x.command)).toEqual(["CREATE TABLE", "INSERT 0 2", "SELECT 2"]);
    expect(r[1]!.rowCount).toBe(2);
    expect(r[2]!.rows).toEqual([{ a: "1", b: "x", c: "1.5" }, { a: "2", b: null, c: "2.5" }]);
    expect(w.pid).toBeGreaterThan(0);
  });

  it("binds text parameters, NULL and multi-byte text included", async () => {
    const r = await w.queryParams("SELECT $1::text AS a, $2::text IS NULL AS n, length($3::text) AS l", ["é€😀", null, "ab"]);
    expect(r.rows).toEqual([{ a: "é€😀", n: "t", l: "2" }]);
    const u = await w.queryParams("UPDATE t SET b = $1 WHERE a = $2", ["y", "2"]);
    expect(u.rowCount).toBe(1);
  });

  it("reads rows wider than a socket read, and many rows in one reply", async () => {
    const [wide] = await w.query("SELECT repeat('ab€', 400000) AS v, 7 AS k");
    expect(wide!.rows[0]!.v!.length).toBe(1_200_000);
    expect(wide!.rows[0]!.v!.slice(0, 6)).toBe("ab€ab€");
    expect(wide!.rows[0]!.k).toBe("7");
    const [many] = await w.query("SELECT g::text AS g FROM generate_series(1, 50000) g");
    expect(many!.rowCount).toBe(50000);
    expect(many!.rows[49999]!.g).toBe("50000");
  });

  it("rejects with the server's error and SQLSTATE; the rest of the message does not run; the connection goes on", async () => {
    const err = await w.query("SELECT 1; SELECT 1/0; INSERT INTO t VALUES (3, 'z')").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WireError);
    expect(err).toBeInstanceOf(pg.DatabaseError); // the class node-postgres throws
    expect((err as WireError).code).toBe("22012");
    expect((err as WireError).message).toMatch(/division by zero/);
    expect((err as WireError).severity).toBe("ERROR");
    const bad = await w.queryParams("SELECT $1::int", ["nope"]).catch((e: unknown) => e);
    expect((bad as WireError).code).toBe("22P02");
    expect((await w.query("SELECT count(*) AS n FROM t"))[0]!.rows[0]!.n).toBe("2");
  });

  it("rejects pending and later queries when the server ends the connection", async () => {
    const other = new Wire(new pg.Client({ connectionString: db.url }));
    await other.connect();
    const killer = new pg.Client({ connectionString: db.url });
    await killer.connect();
    try {
      const pending = other.query("SELECT pg_sleep(30)").catch((e: unknown) => e);
      await new Promise((r) => setTimeout(r, 200));
      await killer.query("SELECT pg_terminate_backend($1)", [other.pid]);
      const e = await pending;
      expect(e).toBeInstanceOf(Error);
      expect((e as WireError).code).toBe("57P01"); // admin_shutdown: the FATAL that ended it
      await expect(other.query("SELECT 1")).rejects.toThrow();
    } finally {
      await killer.end();
      await other.close();
    }
  });

  it("says so when node-postgres's connection socket is not where it takes it from", async () => {
    const client = { connect: async () => {}, on: () => {}, end: async () => {} } as unknown as pg.Client;
    await expect(new Wire(client).connect()).rejects.toThrow(/connection socket is not accessible/);
  });
});
