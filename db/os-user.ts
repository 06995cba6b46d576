/**
 * Which operating-system user runs the private cluster, and running programs as it.
 *
 * PostgreSQL refuses to run as root. When txfn is invoked as root, the cluster runs as
 * the owner of an existing data directory, else as the `postgres` user (override with
 * TXFN_DB_OS_USER). Otherwise it runs as the invoking user.
 */
import { execFileSync, spawnSync, type SpawnSyncOptions } from "node:child_process";
import { statSync } from "node:fs";
import { userInfo } from "node:os";
import { ClusterError } from "./errors.ts";

export interface OsUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** The cluster cannot run as any suitable OS user. */
export class OsUserError extends ClusterError {
  override name = "OsUserError";
}

/** Looks a user up in the passwd database (`getent passwd`). */
export function lookupUser(nameOrUid: string | number): OsUser | undefined {
  const res = spawnSync("getent", ["passwd", String(nameOrUid)], { encoding: "utf8" });
  if (res.status !== 0) return undefined;
  const [name, , uid, gid, , home] = res.stdout.trim().split(":");
  if (!name || uid === undefined || gid === undefined) return undefined;
  return { name, uid: Number(uid), gid: Number(gid), home: home ?? "/" };
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** The invoking user. */
export function currentUser(): OsUser {
  const info = userInfo();
  return { name: info.username, uid: info.uid, gid: info.gid, home: info.homedir };
}

/**
 * The user that must own and run the cluster in `dataDir`.
 * @throws OsUserError when no unprivileged user is available, or the data directory
 *   belongs to someone the invoking (non-root) user cannot act as.
 */
export function clusterOsUser(dataDir: string): OsUser {
  const owner = existingOwner(dataDir);
  if (!isRoot()) {
    const me = currentUser();
    if (owner !== undefined && owner !== me.uid) {
      const who = lookupUser(owner)?.name ?? `uid ${owner}`;
      throw new OsUserError(
        `the data directory ${dataDir} belongs to ${who}, but txfn runs as ${me.name}; ` +
          `run txfn as ${who} (or as root), or choose another directory with --data-dir / TXFN_DATA_DIR`,
      );
    }
    return me;
  }
  if (owner !== undefined && owner !== 0) {
    const user = lookupUser(owner);
    if (!user) throw new OsUserError(`the data directory ${dataDir} belongs to uid ${owner}, which has no passwd entry`);
    return user;
  }
  const wanted = process.env.TXFN_DB_OS_USER ?? "postgres";
  const user = lookupUser(wanted);
  if (!user || user.uid === 0) {
    throw new OsUserError(
      `txfn runs as root, and PostgreSQL refuses to; the unprivileged user '${wanted}' ` +
        `does not exist. Install PostgreSQL (apt-get install postgresql-15, which creates it) ` +
        `or set TXFN_DB_OS_USER to another unprivileged user`,
    );
  }
  return user;
}

function existingOwner(path: string): number | undefined {
  try {
    return statSync(path).uid;
  } catch {
    return undefined;
  }
}

/** Options that make a child process run as `user` (a no-op when that is us). */
export function runAsOptions(user: OsUser): Pick<SpawnSyncOptions, "uid" | "gid" | "env"> {
  const env = { ...process.env, HOME: user.home, USER: user.name, LOGNAME: user.name };
  if (process.getuid?.() === user.uid) return { env };
  return { uid: user.uid, gid: user.gid, env };
}

/** True when `user` can enter and read `dir` (checked by the kernel, as that user). */
export function canReach(user: OsUser, dir: string): boolean {
  if (process.getuid?.() === user.uid) return true;
  const res = spawnSync("test", ["-r", dir, "-a", "-x", dir], { ...runAsOptions(user), cwd: "/" });
  return res.status === 0;
}

/** chown -R, used when root prepares a directory for the cluster's user. */
export function chownTree(path: string, user: OsUser): void {
  if (!isRoot()) return;
  execFileSync("chown", ["-R", `${user.uid}:${user.gid}`, path]);
}
