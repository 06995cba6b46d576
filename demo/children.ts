/**
 * The demo's child processes: the long-running ones (the fake payment service, `txfn serve`,
 * `txfn worker`) and one-shot `txfn` commands. Each runs in its own process group, so a kill
 * also reaches what it started (esbuild's service process); output goes to a log file per
 * process; `stopAll` ends everything still running (SIGTERM, then SIGKILL), also on exit. The
 * processes are listed in `<logDir>/processes.json`, so a run killed before it could stop them
 * (SIGKILL) has its leftovers stopped by the next run — each only if its pid still runs the
 * command recorded for it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync, type WriteStream } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DemoError } from "./ui.ts";

export const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));
export const TXFN_BIN = join(REPO_ROOT, "bin", "txfn.js");

export interface Child {
  name: string;
  pid: number;
  proc: ChildProcess;
  logFile: string;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The last lines of its output (for failure messages). */
  tail(): string;
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  /** Resolves `spawnReady` with the first output line (stdout or stderr) this matches. */
  ready: RegExp;
  readyTimeoutMs?: number;
}

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function alive(c: ChildProcess): boolean {
  return c.exitCode === null && c.signalCode === null;
}

/** Signals a child's whole process group (it was spawned detached, as a group leader). */
function signalGroup(c: ChildProcess, signal: NodeJS.Signals): void {
  if (!c.pid) return;
  try {
    process.kill(-c.pid, signal);
  } catch {
    try {
      c.kill(signal);
    } catch {
      /* already gone */
    }
  }
}

interface Recorded {
  name: string;
  pid: number;
  /** argv joined by NUL, as /proc/<pid>/cmdline shows it. */
  cmdline: string;
}

/** SIGKILLs the process groups of recorded processes that still run their recorded command. */
function stopLeftovers(registry: string): string[] {
  if (!existsSync(registry)) return [];
  let recorded: Recorded[] = [];
  try {
    recorded = JSON.parse(readFileSync(registry, "utf8")) as Recorded[];
  } catch {
    return [];
  }
  const stopped: string[] = [];
  for (const r of recorded) {
    let cmdline = "";
    try {
      cmdline = readFileSync(`/proc/${r.pid}/cmdline`, "utf8").replace(/\0$/, "");
    } catch {
      continue; // gone
    }
    if (cmdline !== r.cmdline) continue; // the pid now belongs to something else
    try {
      process.kill(-r.pid, "SIGKILL");
      stopped.push(`${r.name} (pid ${r.pid})`);
    } catch {
      /* already gone */
    }
  }
  return stopped;
}

export class Children {
  private readonly running = new Set<Child>();
  /** Every process started, for the summary (the test checks none is left). */
  readonly started: { name: string; pid: number }[] = [];
  /** Processes of an earlier run that was killed before it could stop them, stopped now. */
  readonly leftovers: string[];
  private readonly registry: string;
  private readonly recorded: Recorded[] = [];
  private readonly onExit = () => {
    for (const c of this.running) signalGroup(c.proc, "SIGKILL");
  };

  constructor(readonly logDir: string) {
    mkdirSync(logDir, { recursive: true });
    this.registry = join(logDir, "processes.json");
    this.leftovers = stopLeftovers(this.registry);
    writeFileSync(this.registry, "[]\n");
    process.on("exit", this.onExit);
  }

  private track(name: string, proc: ChildProcess, log: WriteStream | null): Child {
    if (proc.pid) {
      this.recorded.push({ name, pid: proc.pid, cmdline: proc.spawnargs.join("\0") });
      writeFileSync(this.registry, JSON.stringify(this.recorded, null, 1) + "\n");
    }
    let tail = "";
    const keep = (d: Buffer) => {
      tail = (tail + d.toString()).slice(-4000);
      log?.write(d);
    };
    proc.stdout?.on("data", keep);
    proc.stderr?.on("data", keep);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      proc.on("error", (err) => {
        keep(Buffer.from(`spawn failed: ${err.message}\n`));
        resolve({ code: null, signal: null });
      });
      proc.on("exit", (code, signal) => resolve({ code, signal }));
    });
    const child: Child = { name, pid: proc.pid ?? -1, proc, logFile: log?.path.toString() ?? "", exited, tail: () => tail };
    this.running.add(child);
    this.started.push({ name, pid: child.pid });
    void exited.then(() => {
      this.running.delete(child);
      log?.end();
    });
    return child;
  }

  /**
   * Starts a long-running process (`node <args>`) and waits for its ready line.
   * @returns the child and the regex match of the ready line.
   */
  async spawnReady(name: string, args: string[], options: SpawnOptions): Promise<{ child: Child; match: RegExpExecArray }> {
    const logFile = join(this.logDir, `${name}.log`);
    const log = createWriteStream(logFile);
    const proc = spawn(process.execPath, args, {
      cwd: REPO_ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...options.env },
      detached: true,
    });
    const child = this.track(name, proc, log);
    const match = await new Promise<RegExpExecArray>((resolve, reject) => {
      let buffer = "";
      const timer = setTimeout(() => fail(`not ready after ${(options.readyTimeoutMs ?? 60_000) / 1000} s`), options.readyTimeoutMs ?? 60_000);
      const onData = (d: Buffer) => {
        buffer += d.toString();
        const lines = buffer.split("\n");
        buffer = lines.pop()!;
        for (const l of lines) {
          const m = options.ready.exec(l);
          if (m) {
            clearTimeout(timer);
            proc.stdout?.off("data", onData);
            proc.stderr?.off("data", onData);
            resolve(m);
            return;
          }
        }
      };
      function fail(why: string) {
        clearTimeout(timer);
        reject(new DemoError(`${name} (pid ${child.pid}) ${why}:\n${child.tail().trim()}`, `see ${logFile}`));
      }
      proc.stdout?.on("data", onData);
      proc.stderr?.on("data", onData);
      void child.exited.then(({ code, signal }) => fail(`exited (code ${code}, signal ${signal}) before it was ready`));
    }).catch(async (err: unknown) => {
      await this.stop(child);
      throw err;
    });
    return { child, match };
  }

  /** Runs `txfn <args>` to completion; stderr goes to the terminal when `showStderr` (progress bars). */
  run(args: string[], env: NodeJS.ProcessEnv = {}, showStderr = false): Promise<CommandResult> {
    const proc = spawn(process.execPath, [TXFN_BIN, ...args], {
      cwd: REPO_ROOT,
      stdio: ["ignore", "pipe", showStderr ? "inherit" : "pipe"],
      env: { ...process.env, ...env },
      detached: true,
    });
    let stdout = "";
    let stderr = "";
    proc.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
    proc.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    const child = this.track(`txfn ${args[0]}`, proc, null);
    return child.exited.then(({ code }) => ({ code, stdout, stderr }));
  }

  /** Like `run`, but a non-zero exit is an error carrying the command's own message. */
  async runOk(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
    const r = await this.run(args, env);
    if (r.code !== 0) throw new DemoError(`txfn ${args.join(" ")} exited with ${r.code}:\n${(r.stderr || r.stdout).trim()}`);
    return r.stdout;
  }

  /** Sends `signal` to the child's group and waits for it to exit (SIGKILL after `graceMs`). */
  async stop(child: Child, signal: NodeJS.Signals = "SIGTERM", graceMs = 10_000): Promise<void> {
    if (alive(child.proc)) signalGroup(child.proc, signal);
    const timer = setTimeout(() => signalGroup(child.proc, "SIGKILL"), graceMs);
    await child.exited;
    clearTimeout(timer);
    // What the group leader started may outlive it by a moment: make sure it is gone too.
    signalGroup(child.proc, "SIGKILL");
  }

  /** Stops every process still running. */
  async stopAll(): Promise<void> {
    await Promise.all([...this.running].map((c) => this.stop(c)));
  }

  dispose(): void {
    process.off("exit", this.onExit);
  }
}
