/**
 * What the demo prints: numbered stages with their duration, indented detail lines, progress
 * bars (cli-progress on a terminal, a line every few seconds otherwise), and a failure report
 * naming the stage, the reason and how to rerun.
 */
import cliProgress from "cli-progress";

const tty = Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;
const paint = (code: string) => (s: string) => (tty ? `\u001b[${code}m${s}\u001b[0m` : s);
export const bold = paint("1");
export const dim = paint("2");
export const green = paint("32");
export const red = paint("31");
export const yellow = paint("33");
export const cyan = paint("36");

/** A stage failed: which one, why, and how to run it again. */
export class StageError extends Error {
  constructor(
    readonly stage: string,
    readonly reason: string,
    readonly rerun: string[],
    readonly logs: string[],
  ) {
    super(`stage "${stage}" failed: ${reason}`);
    this.name = "StageError";
  }
}

/** A failure inside a stage with a specific hint (added to the stage's rerun lines). */
export class DemoError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = "DemoError";
  }
}

export interface StageOptions {
  /** Commands that redo this stage by hand (printed on failure). */
  rerun?: string[];
}

export interface Progress {
  update(done: number, detail?: string): void;
  /** Prints a line above the bar. */
  log(line: string): void;
  stop(): void;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export class Ui {
  private index = 0;
  private readonly started = Date.now();
  /** Log files worth reading when something fails (child processes). */
  logFiles: string[] = [];
  /** The generic way to start over, printed with every failure. */
  rerunAll = "npm run demo  (every run starts in a fresh database; the cluster keeps running)";

  constructor(private readonly totalStages: number) {}

  line(text = ""): void {
    process.stdout.write(text + "\n");
  }

  info(text: string): void {
    this.line(`    ${text}`);
  }

  /** Indents a block (a command's output). */
  block(text: string, indent = "      "): void {
    for (const l of text.replace(/\s+$/, "").split("\n")) this.line(indent + l);
  }

  /** Runs one stage: prints its title, then its duration; wraps any error in a StageError. */
  async stage<T>(title: string, body: () => Promise<T>, options: StageOptions = {}): Promise<T> {
    this.index++;
    this.line(bold(`==> [${this.index}/${this.totalStages}] ${title}`));
    const t0 = Date.now();
    try {
      const value = await body();
      this.info(dim(`(${seconds(Date.now() - t0)})`));
      return value;
    } catch (err) {
      if (err instanceof StageError) throw err;
      const reason = err instanceof Error ? err.message : String(err);
      const rerun = [...(err instanceof DemoError && err.hint ? [err.hint] : []), ...(options.rerun ?? [])];
      throw new StageError(`[${this.index}/${this.totalStages}] ${title}`, reason, rerun, this.logFiles);
    }
  }

  elapsedMs(): number {
    return Date.now() - this.started;
  }

  /** A progress bar on a terminal; elsewhere a line at most every 3 s (and at the end). */
  progress(label: string, total: number): Progress {
    if (tty) {
      const multi = new cliProgress.MultiBar(
        { format: `    ${label} [{bar}] {value}/{total} {detail}`, hideCursor: true, clearOnComplete: false, barsize: 30, stopOnComplete: false },
        cliProgress.Presets.shades_classic,
      );
      const bar = multi.create(total, 0, { detail: "" });
      return {
        update: (done, detail = "") => bar.update(done, { detail }),
        log: (l) => multi.log(`    ${l}\n`),
        stop: () => multi.stop(),
      };
    }
    let printedAt = Date.now();
    let printedDone = -1;
    let current = { done: 0, detail: "" };
    const flush = () => {
      if (current.done === printedDone) return;
      this.info(`${label} ${current.done}/${total} ${current.detail}`);
      printedAt = Date.now();
      printedDone = current.done;
    };
    return {
      update: (done, detail = "") => {
        current = { done, detail };
        if (done === total || Date.now() - printedAt >= 3000) flush();
      },
      log: (l) => this.info(l),
      stop: flush,
    };
  }

  /** The failure report: which stage, why, how to rerun, where the logs are. */
  failure(err: unknown): void {
    const e =
      err instanceof StageError
        ? err
        : new StageError("(outside any stage)", err instanceof Error ? (err.stack ?? err.message) : String(err), [], this.logFiles);
    process.stderr.write("\n" + red(bold(`demo failed at stage ${e.stage}`)) + "\n");
    process.stderr.write(`  why: ${e.reason.replace(/\n/g, "\n       ")}\n`);
    for (const l of e.logs) process.stderr.write(`  log: ${l}\n`);
    process.stderr.write(`  rerun the whole demo: ${this.rerunAll}\n`);
    for (const r of e.rerun) process.stderr.write(`  or by hand: ${r}\n`);
  }
}
