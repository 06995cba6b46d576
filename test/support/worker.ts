/** `txfn worker` as a real child process for the workflow tests: started, awaited, SIGKILLed. */
import { spawn, type ChildProcess } from "node:child_process";
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
