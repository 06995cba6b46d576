/**
 * Throwaway clusters for tests: own temporary directory and port, never the user's
 * .txfn/pg. Leftovers of runs that were killed before their teardown are removed by
 * the next run.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EmbeddedCluster } from "../../db/cluster.ts";
import { pgBinDir } from "../../db/pg-install.ts";

const PREFIX = "txfn-test-";

export interface ThrowawayCluster {
  cluster: EmbeddedCluster;
  url: string;
  /** Stops the server and removes every file. Safe to call twice. */
  remove(): Promise<void>;
}

export async function startThrowawayCluster(): Promise<ThrowawayCluster> {
  removeAbandonedClusters();
  const root = mkdtempSync(join(tmpdir(), PREFIX));
  chmodSync(root, 0o755); // the cluster's OS user must reach it when we run as root
  writeFileSync(join(root, "owner.pid"), String(process.pid));
  const cluster = new EmbeddedCluster({ dir: join(root, "pg") });
  const remove = async () => {
    try {
      await cluster.destroy();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  };
  try {
    return { cluster, url: await cluster.start(), remove };
  } catch (err) {
    await remove().catch(() => {});
    throw err;
  }
}

/** Synchronous last resort (process exit): stop the server immediately and delete its files. */
export function removeNow(cluster: EmbeddedCluster): void {
  if (existsSync(join(cluster.dataDir, "postmaster.pid"))) {
    spawnSync(join(pgBinDir(), "pg_ctl"), ["-D", cluster.dataDir, "stop", "-m", "immediate", "-w"], {
      ...(process.getuid?.() === 0 ? { uid: ownerUid(cluster.dataDir), gid: ownerGid(cluster.dataDir) } : {}),
      stdio: "ignore",
      cwd: "/",
    });
  }
  rmSync(join(cluster.dir, ".."), { recursive: true, force: true });
}

function removeAbandonedClusters(): void {
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith(PREFIX)) continue;
    const root = join(tmpdir(), name);
    let owner = 0;
    try {
      owner = Number(readFileSync(join(root, "owner.pid"), "utf8"));
    } catch {
      continue;
    }
    if (owner && isAlive(owner)) continue;
    removeNow(new EmbeddedCluster({ dir: join(root, "pg") }));
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function ownerUid(path: string): number {
  return Number(spawnSync("stat", ["-c", "%u", path], { encoding: "utf8" }).stdout.trim());
}
function ownerGid(path: string): number {
  return Number(spawnSync("stat", ["-c", "%g", path], { encoding: "utf8" }).stdout.trim());
}
