/**
 * Which database a txfn command talks to: DATABASE_URL when set, else the project's
 * private cluster (started on demand).
 */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { EmbeddedCluster } from "./cluster.ts";

/**
 * The private cluster's directory: `explicit` (from --data-dir), else TXFN_DATA_DIR,
 * else `.txfn/pg` in the project root (the nearest directory at or above the cwd that
 * holds `.txfn` or `package.json`; the cwd when none does).
 */
export function clusterDir(explicit?: string): string {
  if (explicit) return resolve(explicit);
  if (process.env.TXFN_DATA_DIR) return resolve(process.env.TXFN_DATA_DIR);
  return join(projectRoot(process.cwd()), ".txfn", "pg");
}

function projectRoot(start: string): string {
  for (let dir = resolve(start); ; dir = dirname(dir)) {
    if (existsSync(join(dir, ".txfn")) || existsSync(join(dir, "package.json"))) return dir;
    if (dirname(dir) === dir) return resolve(start);
  }
}

export interface ResolveOptions {
  dataDir?: string;
  log?: (message: string) => void;
}

/**
 * The connection URL for commands other than `txfn db …`: DATABASE_URL if set;
 * otherwise the private cluster's URL, starting the cluster first when it is not running.
 */
export async function databaseUrl(options: ResolveOptions = {}): Promise<string> {
  if (process.env.DATABASE_URL) return process.env.DATABASE_URL;
  const cluster = new EmbeddedCluster({ dir: clusterDir(options.dataDir), ...(options.log ? { log: options.log } : {}) });
  const status = cluster.status();
  if (status.running && status.url) return status.url;
  return cluster.start();
}
