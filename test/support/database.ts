/**
 * Per-test-file databases on the run's throwaway cluster: each file calls
 * `useTestDatabase()` once at top level and gets a fresh database with txv8 installed.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, inject } from "vitest";

export interface TestDatabase {
  /** Connection URL of this file's database. */
  url: string;
  name: string;
  /** A pool on it (closed after the file). */
  pool: pg.Pool;
  /** Runs one statement on the pool and returns its rows. */
  query<R extends pg.QueryResultRow = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]>;
}

export function adminUrl(database?: string): string {
  const url = new URL(inject("adminUrl"));
  if (database) url.pathname = `/${database}`;
  return url.toString();
}

/** Creates a database named t_<random> before the file's tests and drops it after. */
export function useTestDatabase(): TestDatabase {
  const name = `t_${randomBytes(5).toString("hex")}`;
  const db = { name, url: adminUrl(name) } as TestDatabase;
  beforeAll(async () => {
    await withAdmin((c) => c.query(`CREATE DATABASE ${name}`));
    db.pool = new pg.Pool({ connectionString: db.url, max: 10 });
    await db.pool.query("CREATE EXTENSION IF NOT EXISTS txv8");
    db.query = async (sql, params) => (await db.pool.query(sql, params)).rows;
  });
  afterAll(async () => {
    await db.pool?.end();
    await withAdmin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  });
  return db;
}

async function withAdmin<T>(body: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl("postgres") });
  await client.connect();
  try {
    return await body(client);
  } finally {
    await client.end();
  }
}
