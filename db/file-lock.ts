/** A cross-process lock held by creating a file exclusively (for `txfn db start` racing itself). */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { dirname } from "node:path";

/** The lock file cannot be created at all (its directory is missing, not a directory, read-only…). */
export class LockFileError extends Error {
  override name = "LockFileError";
  constructor(
    readonly path: string,
    readonly reason: NodeJS.ErrnoException,
  ) {
    super(`cannot create its lock file ${path} (${errnoText(reason)})`);
  }
}

/** "no such file or directory" out of "ENOENT: no such file or directory, open '/x'". */
export function errnoText(err: NodeJS.ErrnoException): string {
  return /^[A-Z]+: ([^,]+)/.exec(err.message)?.[1] ?? err.message;
}

/**
 * mkdirSync(dir, { recursive: true }) one level at a time: Node's own loops forever where a parent
 * exists but refuses children with ENOENT (under /proc, say).
 */
export function mkdirp(dir: string, mode?: number): void {
  if (existsSync(dir)) return;
  const parent = dirname(dir);
  if (parent !== dir) mkdirp(parent);
  mkdirSync(dir, mode === undefined ? {} : { mode });
}

/**
 * Runs `body` while holding the lock file at `path`. A lock whose holder process is
 * gone is taken over. @throws LockFileError when the file cannot be created; Error after `timeoutMs` (default 120 s) of waiting.
 */
export async function withFileLock<T>(path: string, body: () => Promise<T>, timeoutMs = 120_000): Promise<T> {
  try {
    mkdirp(dirname(path));
  } catch (err) {
    throw new LockFileError(path, err as NodeJS.ErrnoException);
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fd = openSync(path, "wx", 0o644);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw new LockFileError(path, err as NodeJS.ErrnoException);
      if (!holderAlive(path)) {
        rmSync(path, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for the lock ${path} (held by pid ${readHolder(path)})`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  try {
    return await body();
  } finally {
    rmSync(path, { force: true });
  }
}

function readHolder(path: string): number {
  try {
    return Number(readFileSync(path, "utf8"));
  } catch {
    return 0;
  }
}

function holderAlive(path: string): boolean {
  const pid = readHolder(path);
  if (!pid) return true; // being written right now
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
