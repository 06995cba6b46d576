/** Running the real `txfn` command in a child process. */
import { spawn, spawnSync, type SpawnSyncOptions } from "node:child_process";
import { fileURLToPath } from "node:url";

export const TXFN_BIN = fileURLToPath(new URL("../../bin/txfn.js", import.meta.url));
export const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `txfn <args>` to completion (no stdin). */
export function txfnSync(args: string[], options: SpawnSyncOptions = {}): CliResult {
  const res = spawnSync(process.execPath, [TXFN_BIN, ...args], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 180_000,
    ...options,
    env: { ...process.env, ...options.env },
  });
  return { status: res.status, stdout: String(res.stdout), stderr: String(res.stderr) };
}

/** Async version, so a test can run several at once. */
export function txfn(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return runNode([TXFN_BIN, ...args], env);
}

/**
 * Runs `node <argv…>` in the checkout's root to completion (no stdin). `env` is laid over this
 * process's environment; a key set to `undefined` is left out (Node skips undefined values).
 */
export function runNode(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, {
      cwd: REPO_ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}
