/** `txfn worker` as a real child process for the workflow tests: started, awaited, SIGKILLed; and polling until a condition holds. */
import { spawn, type ChildProcess } from "node:child_process";
import { afterEach } from "vitest";
import { TXFN_BIN } from "./cli.ts";

export interface WorkerProcess {
  child: ChildProcess;
  pid: number;
  /** Resolves when the executor logged "executor ready"; rejects if the process ends first. */
  ready: Promise<void>;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Parsed JSON log lines so far. */
  logs: Record<string, unknown>[];
  stderr(): string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Starts `txfn worker <dir> <args…>` with DATABASE_URL = `url` and TXFN_TEST_WORKER=1 (the
 * fixtures' poison workflow crashes only such processes).
 */
export function startWorker(url: string, dir: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): WorkerProcess {
  const child = spawn(process.execPath, [TXFN_BIN, "worker", dir, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, DATABASE_URL: url, TXFN_TEST_WORKER: "1", ...env },
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = "";
  let buffer = "";
  let onReady: () => void = () => {};
  let onFail: (e: Error) => void = () => {};
  const ready = new Promise<void>((resolve, reject) => {
    onReady = resolve;
    onFail = reject;
  });
  ready.catch(() => {});
  child.stdout!.on("data", (d: Buffer) => {
    buffer += d.toString();
    const lines = buffer.split("\n");
    buffer = lines.pop()!;
    for (const line of lines) {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === "executor ready") onReady();
      } catch {
        logs.push({ msg: line });
      }
    }
  });
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => {
      onFail(new Error(`worker exited (code ${code}, signal ${signal}) before it was ready: ${stderr}`));
      resolve({ code, signal });
    }),
  );
  return {
    child,
    pid: child.pid!,
    ready,
    exited,
    logs,
    stderr: () => stderr,
    async kill(signal: NodeJS.Signals = "SIGKILL") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

/**
 * Worker processes for one test file, started on `url` with `baseArgs` before each call's own
 * args. `start` waits until the worker is ready; `spawn` does not (for a worker expected to die).
 * Every worker claims any workflow it knows, so none may outlive its test: all are SIGKILLed after
 * each test.
 */
export function useWorkers(url: string, baseArgs: string[] = []) {
  const workers: WorkerProcess[] = [];
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.kill()));
  });
  const spawn = (dir: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): WorkerProcess => {
    const w = startWorker(url, dir, [...baseArgs, ...args], env);
    workers.push(w);
    return w;
  };
  const start = async (dir: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<WorkerProcess> => {
    const w = spawn(dir, args, env);
    await w.ready;
    return w;
  };
  return { start, spawn };
}

/**
 * Polls `probe` every `everyMs` milliseconds until it returns a truthy value, and returns that
 * value; throws "timed out waiting for <what>" after `ms` milliseconds (a minute by default:
 * worker processes start slowly on a busy 2-core machine).
 */
export async function waitFor<T>(
  probe: () => T | false | undefined | null | Promise<T | false | undefined | null>,
  what: string,
  ms = 60_000,
  everyMs = 25,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
