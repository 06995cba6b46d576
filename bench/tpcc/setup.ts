/**
 * bench/tpcc: one database with everything every implementation needs — the function project
 * deployed (its migration makes the TPC-C tables), the PL/pgSQL functions and node-pg's
 * idempotency table, DBOS's transaction_completion table, the data — and the switch of
 * provenance capture between rounds.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { PostgresDataSource } from "@dbos-inc/postgres-datasource";
import pg from "pg";
import { build } from "../../bundler/index.ts";
import { deploy, type DeployResult } from "../../client/index.ts";
import { configure } from "../../provenance/index.ts";
import { loadData } from "./load.ts";
import type { NURandConstants } from "./inputs.ts";
import type { Scale } from "./scale.ts";
import { dbosDataSourceOptions } from "./variants.ts";

/** The function project (bench/tpcc/functions). */
export const FUNCTIONS_DIR = fileURLToPath(new URL("./functions", import.meta.url));
const PLPGSQL = fileURLToPath(new URL("./plpgsql.sql", import.meta.url));

/** A URL naming another database on the same server. */
export function databaseUrlFor(base: string, name: string): string {
  const u = new URL(base);
  u.pathname = `/${name}`;
  return u.toString();
}

/** Runs `body` on a fresh connection to `url`, closed after. */
export async function withClient<T>(url: string, body: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url, application_name: "bench-tpcc-setup" });
  await c.connect();
  try {
    return await body(c);
  } finally {
    await c.end();
  }
}

/** (Re)creates database `name` on the server of `adminUrl` (a superuser connection). */
export async function recreateDatabase(adminUrl: string, name: string): Promise<string> {
  await withClient(adminUrl, async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  });
  return databaseUrlFor(adminUrl, name);
}

/** Drops database `name` (closing its connections). */
export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  await withClient(adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`));
}

export interface PreparedDatabase {
  url: string;
  deployed: DeployResult;
  /** NURand constants of the load, which the terminals use. */
  constants: NURandConstants;
  /** Seconds the data load took. */
  loadSeconds: number;
}

/**
 * Prepares a fresh database `url` (empty): deploy, baselines, DBOS's table, data. Leaves
 * provenance capture off (turn it on with setCapture) and excludes the baselines' schemas from it.
 */
export async function prepareDatabase(url: string, scale: Scale, seed = 1): Promise<PreparedDatabase> {
  const deployed = await deploy(url, await build(FUNCTIONS_DIR, { schemas: false }));
  await configure(url, { enabled: false, exclude: ["tpcc_baseline", "dbos"] });
  const t0 = performance.now();
  const constants = await withClient(url, async (c) => {
    await c.query(readFileSync(PLPGSQL, "utf8"));
    return loadData(c, scale, seed);
  });
  const loadSeconds = (performance.now() - t0) / 1000;
  await PostgresDataSource.initializeDBOSSchema(dbosDataSourceOptions(url, 1));
  return { url, deployed, constants, loadSeconds };
}

/** Turns provenance capture of the application tables on or off (DDL: between rounds only). */
export async function setCapture(url: string, enabled: boolean): Promise<void> {
  await configure(url, { enabled });
}

/** What was measured: this checkout's commit (+ "-dirty": uncommitted changes in what the run uses), txv8's version, which capture trigger the sync installs. */
export async function buildInfo(pool: pg.Pool | pg.ClientBase): Promise<{ commit: string; txv8: string; captureTrigger: string }> {
  const git = (a: string[]) => spawnSync("git", a, { encoding: "utf8" }).stdout?.trim() ?? "";
  const measured = ["runtime-sql", "migrations", "provenance", "capture", "extension/src", "client", "bundler", "bench/tpcc", "index.ts", "types.ts"];
  const commit = (git(["rev-parse", "--short", "HEAD"]) || "unknown") + (git(["status", "--porcelain", "--untracked-files=no", "--", ...measured]) ? "-dirty" : "");
  const r = await pool.query(
    `SELECT (SELECT extversion FROM pg_extension WHERE extname = 'txv8') AS ext, to_regproc('txv8_version') IS NOT NULL AS has_version,
            EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'txfn_capture') AS c_capture`,
  );
  const { ext, has_version, c_capture } = r.rows[0];
  const txv8 = has_version ? `txv8 ${(await pool.query("SELECT txv8_version() AS v")).rows[0].v}` : `txv8 extension ${ext ?? "?"}`;
  return { commit, txv8, captureTrigger: c_capture ? "C (txfn_capture)" : "PL/pgSQL" };
}
