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
  if (process.env.DATABASE_URL) {
    checkDatabaseUrl(process.env.DATABASE_URL);
    return (resolvedUrl = process.env.DATABASE_URL);
  }
  const cluster = new EmbeddedCluster({ dir: clusterDir(options.dataDir), ...(options.log ? { log: options.log } : {}) });
  const status = cluster.status();
  if (status.running && status.url) return (resolvedUrl = status.url);
  return (resolvedUrl = await cluster.start());
}

let resolvedUrl: string | undefined;

/** The URL databaseUrl() last returned (for error messages), if any. */
export function lastDatabaseUrl(): string | undefined {
  return resolvedUrl;
}

/** DATABASE_URL that node-postgres cannot use as a connection URL. */
export class DatabaseUrlError extends Error {
  override name = "DatabaseUrlError";
  readonly hint = "e.g. DATABASE_URL=postgresql://user:password@localhost:5432/mydb, or unset it to use the private cluster";
}

/**
 * @throws DatabaseUrlError unless `url` is a postgres:// or postgresql:// URL (node-postgres reads
 * anything else as something it is not: "not-a-url" becomes the host "base").
 */
export function checkDatabaseUrl(url: string): void {
  let u: URL | undefined;
  try {
    u = new URL(url);
  } catch {
    // not a URL at all; it is not echoed (it may hold a password)
  }
  if (!u || (u.protocol !== "postgres:" && u.protocol !== "postgresql:")) {
    throw new DatabaseUrlError("DATABASE_URL is not a valid PostgreSQL URL (expected postgresql://user:password@host:port/database)");
  }
}

/** host:port/database of a connection URL, never its password; undefined when it is not a URL. */
export function describeUrl(url: string): string | undefined {
  try {
    const u = new URL(url);
    const database = decodeURIComponent(u.pathname.replace(/^\//, "")) || decodeURIComponent(u.username) || "(default database)";
    return `${u.hostname || "localhost"}:${u.port || "5432"}/${database}`;
  } catch {
    return undefined;
  }
}
