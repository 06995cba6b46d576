/** Helpers shared by the replay tests: the CLI's JSON report, and a client on another database. */
import pg from "pg";
import type { ReplayReport } from "../../replay/index.ts";
import { txfn } from "./cli.ts";

/** Runs `txfn <args> --json` on DATABASE_URL = `url`; throws with its stderr when it printed no report. */
export async function replayReport(url: string, args: string[]): Promise<{ status: number | null; report: ReplayReport; stderr: string }> {
  const r = await txfn([...args, "--json"], { DATABASE_URL: url });
  if (!r.stdout.trim().startsWith("{")) throw new Error(`txfn ${args.join(" ")} failed (${r.status}): ${r.stderr}`);
  return { status: r.status, report: JSON.parse(r.stdout) as ReplayReport, stderr: r.stderr };
}

/** Runs `body` on a connection of its own to `url` (a scratch or admin database), closed afterwards. */
export async function onDatabase<T>(url: string, body: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await body(c);
  } finally {
    await c.end();
  }
}
