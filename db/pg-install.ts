/** Where the PostgreSQL server binaries are, and whether txv8 is installed for them. */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ClusterError } from "./errors.ts";

/** The server's bin directory: TXFN_PG_BIN, else Debian's PostgreSQL 15. */
export function pgBinDir(): string {
  const dir = process.env.TXFN_PG_BIN ?? "/usr/lib/postgresql/15/bin";
  if (!existsSync(join(dir, "postgres"))) {
    throw new ClusterError(
      `PostgreSQL server binaries not found in ${dir}`,
      "install them: apt-get install postgresql-15 (or point TXFN_PG_BIN at another bin directory)",
    );
  }
  return dir;
}

/** Major version of the server in `binDir` (e.g. 15). */
export function pgMajorOf(binDir: string): number {
  const out = execFileSync(join(binDir, "postgres"), ["--version"], { encoding: "utf8" });
  const m = /\(PostgreSQL\) (\d+)/.exec(out);
  if (!m) throw new ClusterError(`cannot read the PostgreSQL version from: ${out.trim()}`);
  return Number(m[1]);
}

/**
 * Checks that txv8 is installed into this server's library directory and that the
 * build stamp written by `make -C extension install` names the same major version.
 * Returns the installed library's path.
 * @throws ClusterError with the command that fixes it.
 */
export function requireTxv8Installed(major: number): string {
  const pgConfig = join(pgBinDir(), "pg_config");
  const libdir = existsSync(pgConfig)
    ? execFileSync(pgConfig, ["--pkglibdir"], { encoding: "utf8" }).trim()
    : `/usr/lib/postgresql/${major}/lib`;
  if (!existsSync(join(libdir, "txv8.so"))) {
    throw new ClusterError(`the txv8 extension is not installed in ${libdir}`, "build and install it: bash scripts/setup");
  }
  const stamp = join(libdir, "txv8", "pg-major");
  if (existsSync(stamp)) {
    const built = Number(readFileSync(stamp, "utf8").trim());
    if (built !== major) {
      throw new ClusterError(
        `${join(libdir, "txv8.so")} was built for PostgreSQL ${built}, but the server is ${major}`,
        "rebuild it: bash scripts/setup",
      );
    }
  }
  return join(libdir, "txv8.so");
}

/** A fingerprint of a library file's content (sha1), to notice a reinstalled txv8. */
export function libraryFingerprint(path: string): string {
  return createHash("sha1").update(readFileSync(path)).digest("hex");
}
