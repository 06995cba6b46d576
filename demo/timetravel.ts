/**
 * `txfn replay` and `txfn retro` as the demo runs them: the real commands, with `--json`, their
 * report parsed. Exit code 1 is an answer here (a diverged replay or a failed --check), not a
 * failure of the command; no report at all is.
 */
import type { ReplayReport } from "../replay/index.ts";
import type { Children } from "./children.ts";
import { DemoError } from "./ui.ts";

export type { ReplayReport };

/** The command line as a user would type it (quoted where needed). */
export function commandLine(args: string[]): string {
  return ["npx", "txfn", ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(" ");
}

/**
 * Runs `txfn replay|retro <args> --json` against `databaseUrl` and returns its report. On a
 * terminal the command's stderr is the terminal's, so its own progress bar shows (long traces).
 */
export async function timeTravel(children: Children, databaseUrl: string, args: string[]): Promise<ReplayReport> {
  const tty = Boolean(process.stderr.isTTY);
  const r = await children.run([...args, "--json", ...(tty ? [] : ["--no-progress"])], { DATABASE_URL: databaseUrl }, tty);
  const text = r.stdout.trim();
  if ((r.code === 0 || r.code === 1) && text.startsWith("{")) {
    try {
      return JSON.parse(text) as ReplayReport;
    } catch {
      /* fall through */
    }
  }
  const said = (r.stderr || r.stdout).trim().slice(-3000) || "(its message is above)";
  throw new DemoError(`${commandLine(args)} exited with ${r.code} without a report:\n${said}`);
}

/** "812 invocations in 640 transactions: 812 same" and the like. */
export function describeCounts(report: ReplayReport): string {
  const parts = Object.entries(report.counts)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${n} ${k}`);
  return `${report.trace.invocations} invocations in ${report.trace.transactions} transactions` + (parts.length ? `: ${parts.join(", ")}` : "");
}

export const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
