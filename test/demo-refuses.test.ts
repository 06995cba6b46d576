// The demo never drops or reuses a database it did not make (demo/database.ts): a database that
// exists without the demo's mark (its COMMENT ON DATABASE) is refused with a message naming it,
// before anything is dropped, created or started, on the private-cluster path (--database) and
// for the race's <name>_oversell beside a DATABASE_URL database.
import { randomBytes } from "node:crypto";
import { dirname } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEMO_MARK, assertOwnedOrAbsent } from "../demo/database.ts";
import { runNode } from "./support/cli.ts";
import { adminUrl, useTestDatabase } from "./support/database.ts";

const db = useTestDatabase();
const tag = randomBytes(4).toString("hex");
const foreign = `t_${tag}_theirs`; // exists, no mark: must survive
const fresh = `t_${tag}_new`; // does not exist; its _oversell sibling does, without mark
const created: string[] = [foreign, `${fresh}_oversell`, `${db.name}_oversell`];
let dataDir = "";

async function admin<T>(body: (c: pg.Client) => Promise<T>, database = "postgres"): Promise<T> {
  const c = new pg.Client({ connectionString: adminUrl(database) });
  await c.connect();
  try {
    return await body(c);
  } finally {
    await c.end();
  }
}

async function makeForeign(name: string): Promise<void> {
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  await admin((c) => c.query("CREATE TABLE precious (v text); INSERT INTO precious VALUES ('keep me')"), name);
}

async function precious(name: string): Promise<string[]> {
  return admin(async (c) => (await c.query<{ v: string }>("SELECT v FROM precious")).rows.map((r) => r.v), name);
}

async function exists(name: string): Promise<boolean> {
  return admin(async (c) => (await c.query("SELECT 1 FROM pg_database WHERE datname = $1", [name])).rowCount === 1);
}

beforeAll(async () => {
  // The run's throwaway cluster stands in for the private cluster (TXFN_DATA_DIR): `txfn db start`
  // on it finds it running.
  dataDir = dirname(await admin(async (c) => (await c.query<{ data_directory: string }>("SHOW data_directory")).rows[0]!.data_directory));
  await makeForeign(foreign);
  await makeForeign(`${fresh}_oversell`);
  await makeForeign(`${db.name}_oversell`);
});

afterAll(async () => {
  for (const name of [...created, fresh]) await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
});

/** The demo (5 orders) with `env` laid over this process's environment minus DATABASE_URL. */
const runDemo = (args: string[], env: NodeJS.ProcessEnv) =>
  runNode(["--import", "tsx", "demo/main.ts", "--orders", "5", "--log-dir", dirname(dataDir) + "/demo-logs", ...args], { DATABASE_URL: undefined, NO_COLOR: "1", ...env });

describe("npm run demo refuses a database it did not make", () => {
  it("--database <an existing database without the mark>: exits non-zero naming it; the database and its data survive", { timeout: 120_000 }, async () => {
    const run = await runDemo(["--database", foreign], { TXFN_DATA_DIR: dataDir });
    expect(run.status, run.stdout + run.stderr).not.toBe(0);
    expect(run.stderr).toContain(`database ${foreign} already exists and was not made by npm run demo`);
    expect(run.stderr).toContain("npm run demo -- --database <another name>");
    expect(run.stderr).toContain(`drop ${foreign} yourself`);
    expect(run.stdout).not.toContain("[3/12]");
    expect(await precious(foreign)).toEqual(["keep me"]);
  });

  it("--database <new name> whose <name>_oversell exists without the mark: refused before the run's database is made", { timeout: 120_000 }, async () => {
    const run = await runDemo(["--database", fresh], { TXFN_DATA_DIR: dataDir });
    expect(run.status, run.stdout + run.stderr).not.toBe(0);
    expect(run.stderr).toContain(`database ${fresh}_oversell already exists and was not made by npm run demo`);
    expect(await precious(`${fresh}_oversell`)).toEqual(["keep me"]);
    expect(await exists(fresh)).toBe(false);
  });

  it("DATABASE_URL whose <name>_oversell exists without the mark: refused, both databases untouched", { timeout: 120_000 }, async () => {
    const run = await runDemo([], { DATABASE_URL: db.url });
    expect(run.status, run.stdout + run.stderr).not.toBe(0);
    expect(run.stderr).toContain(`database ${db.name}_oversell already exists and was not made by npm run demo`);
    expect(run.stderr).toContain("point DATABASE_URL at a database of another name");
    expect(await precious(`${db.name}_oversell`)).toEqual(["keep me"]);
    expect(await db.query("SELECT nspname FROM pg_namespace WHERE nspname IN ('shop', 'txfn')")).toEqual([]);
  });

  it("a database the demo made (marked by its comment) passes the check; one without the mark does not", async () => {
    const mine = `t_${tag}_mine`;
    created.push(mine);
    await admin((c) => c.query(`CREATE DATABASE ${mine}`));
    await admin((c) => c.query(`COMMENT ON DATABASE ${mine} IS '${DEMO_MARK}'`));
    await expect(assertOwnedOrAbsent(adminUrl(), mine)).resolves.toBeUndefined();
    await expect(assertOwnedOrAbsent(adminUrl(), `t_${tag}_absent`)).resolves.toBeUndefined();
    await expect(assertOwnedOrAbsent(adminUrl(), foreign)).rejects.toThrow(`database ${foreign} already exists and was not made by npm run demo`);
  });
});
