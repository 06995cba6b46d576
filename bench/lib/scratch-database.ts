/**
 * A database of its own for one benchmark run, on DATABASE_URL's server or the private cluster
 * (started when needed): dropped and re-created at the start (a previous run's leftovers go),
 * dropped at the end unless kept (`--keep`, to look at it with psql).
 */
import pg from "pg";
import { databaseUrl } from "../../db/connection.ts";

export interface ScratchDatabase {
  /** connection URL of the scratch database */
  url: string;
  /** Drops the database (unless `keep`) and closes the admin connection. */
  close(options: { keep: boolean }): Promise<void>;
}

/** @param name a plain SQL identifier (the benchmark's constant, never user input) */
export async function scratchDatabase(name: string): Promise<ScratchDatabase> {
  const base = await databaseUrl({ log: (m) => console.error(m) });
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async close({ keep }) {
      try {
        if (!keep) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    },
  };
}
