// Crash safety: a client process killed with SIGKILL at random moments and restarted, retrying
// with the same keys, ends with every effect applied exactly once.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { useTestDatabase } from "./support/database.ts";
import { deployProject } from "./support/deployed.ts";

const db = useTestDatabase();
const TOTAL = 2000;
const CLIENT = fileURLToPath(new URL("./fixtures/crash-client.ts", import.meta.url));
const amountOf = (i: number) => (i % 7) + 1; // as in crash-client.ts

beforeAll(async () => {
  await deployProject(db.url, "test/fixtures/rules", { schemas: false });
  await db.query("INSERT INTO rules.counters VALUES ('crash', 0)");
});

/** Runs the client from `from`; kills it (SIGKILL) `killAfterMs` after its first outcome unless it ends first. */
function runClient(from: number, killAfterMs: number, done: Set<number>): Promise<{ killed: boolean; status: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", CLIENT, db.url, String(from), String(TOTAL)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let buffer = "";
    let stderr = "";
    let timer: NodeJS.Timeout | undefined;
    let killed = false;
    child.stdout.on("data", (d: Buffer) => {
      buffer += d.toString();
      const lines = buffer.split("\n");
      buffer = lines.pop()!;
      for (const l of lines) if (l.startsWith("done ")) done.add(Number(l.slice(5)));
      if (Number.isFinite(killAfterMs)) {
        timer ??= setTimeout(() => {
          killed = true;
          child.kill("SIGKILL");
        }, killAfterMs);
      }
    });
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ killed, status, stderr });
    });
  });
}

describe("crash safety", () => {
  it(`${TOTAL} invocations from a client killed with SIGKILL and restarted apply exactly once`, { timeout: 300_000 }, async () => {
    const done = new Set<number>();
    let kills = 0;
    // Up to KILLS runs are killed at a random moment 20–320 ms after their first outcome; the
    // run after them is left to finish (a bound on time on a busy machine).
    const KILLS = 15;
    for (let round = 0; round < KILLS + 1; round++) {
      let from = 0;
      while (done.has(from)) from++;
      if (from >= TOTAL) break;
      const r = await runClient(from, round < KILLS ? 20 + Math.floor(Math.random() * 300) : Infinity, done);
      if (r.killed) kills++;
      else if (r.status !== 0) throw new Error(`client failed (exit ${r.status}): ${r.stderr}`);
      else break; // ran to the end
    }
    expect(done.size).toBe(TOTAL);
    expect(kills).toBeGreaterThan(2);
    const expected = Array.from({ length: TOTAL }, (_, i) => amountOf(i)).reduce((a, b) => a + b, 0);
    const [sum] = await db.query<{ n: string; rows: string; total: string }>(
      "SELECT (SELECT n FROM rules.counters WHERE name = 'crash') AS n, count(*) AS rows, sum(amount) AS total FROM rules.ledger WHERE key LIKE 'crash-%'",
    );
    expect(sum).toEqual({ n: String(expected), rows: String(TOTAL), total: String(expected) });
    const [inv] = await db.query<{ ok: string; other: string }>(
      "SELECT count(*) FILTER (WHERE status = 'ok') AS ok, count(*) FILTER (WHERE status <> 'ok') AS other FROM txfn.invocations WHERE idempotency_key LIKE 'crash-%'",
    );
    expect(inv).toEqual({ ok: String(TOTAL), other: "0" });
    console.log(`crash test: ${kills} SIGKILLs, ${TOTAL} invocations, total ${expected}`);
  });
});
