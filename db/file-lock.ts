/** A cross-process lock held by creating a file exclusively (for `txfn db start` racing itself). */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { dirname } from "node:path";

/**
 * Runs `body` while holding the lock file at `path`. A lock whose holder process is
 * gone is taken over. @throws Error after `timeoutMs` (default 120 s) of waiting.
 */
export async function withFileLock<T>(path: string, body: () => Promise<T>, timeoutMs = 120_000): Promise<T> {
  mkdirSync(dirname(path), { recursive: true });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fd = openSync(path, "wx", 0o644);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
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
