/**
 * The database bench/replay's scripts record in: a scratch database (bench/lib/scratch-database.ts,
 * dropped and re-created) with txv8 and the shop of functions/examples/oversell deployed.
 */
import pg from "pg";
import { build } from "../../bundler/index.ts";
import { deploy } from "../../client/index.ts";
import { scratchDatabase, type ScratchDatabase } from "../lib/scratch-database.ts";

/** Creates database `name` (a plain identifier, the script's constant) with the shop deployed. */
export async function shopDatabase(name: string): Promise<ScratchDatabase> {
  const scratch = await scratchDatabase(name);
  try {
    await installShop(scratch.url);
  } catch (err) {
    await scratch.close({ keep: false });
    throw err;
  }
  return scratch;
}

/** CREATE EXTENSION txv8 and a deploy of functions/examples/oversell into an existing database. */
export async function installShop(url: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query("CREATE EXTENSION IF NOT EXISTS txv8");
  } finally {
    await c.end();
  }
  await deploy(url, await build("functions/examples/oversell"));
}
