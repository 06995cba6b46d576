// `txfn audit --follow` reports every committed change exactly once while 4 writers make about
// 1,000 changes per second for 30 seconds — with transactions that commit in another order than
// their xids (they linger before COMMIT), rolled-back transactions, a follower whose connection
// is terminated mid-way (it reconnects), and a follower process killed and restarted from the
// cursor of the last line it printed. Checked by count and by key against the writers' own
// accounting and against txfn.provenance.
import { spawn, type ChildProcess } from "node:child_process";
import pg from "pg";
import { beforeAll, describe, expect, it } from "vitest";
import { ensureSystemSchema } from "../migrations/index.ts";
import { installCapture } from "../provenance/index.ts";
import { TXFN_BIN } from "./support/cli.ts";
import { useTestDatabase } from "./support/database.ts";

const db = useTestDatabase();
const SECONDS = 30;
const WRITERS = 4;
const RATE = 1000 / WRITERS; // changes per second per writer

beforeAll(async () => {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    await c.query("BEGIN");
    await ensureSystemSchema(c);
    await installCapture(c, { sync: false });
    await c.query("CREATE SCHEMA follow");
    await c.query("CREATE TABLE follow.events (id text PRIMARY KEY, writer int NOT NULL, touched int NOT NULL DEFAULT 0)");
    await installCapture(c);
    await c.query("COMMIT");
  } finally {
    await c.end();
  }
});

interface Reported {
  xid: string;
  seq: number;
  op: string;
  key: { id: string };
  cursor: string;
}

/** A follower process; complete stdout lines are parsed into `into`. */
function startFollower(into: Reported[], cursor?: string): { child: ChildProcess; stderr: () => string; closed: Promise<void> } {
  const args = [TXFN_BIN, "audit", "--follow", "--json", "--table", "follow.events", "--poll-ms", "100", ...(cursor ? ["--cursor", cursor] : [])];
  const child = spawn(process.execPath, args, { env: { ...process.env, DATABASE_URL: db.url }, stdio: ["ignore", "pipe", "pipe"] });
  let buf = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.trim()) into.push(JSON.parse(line) as Reported);
    }
  });
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const closed = new Promise<void>((resolve) => child.on("close", () => resolve()));
  return { child, stderr: () => err, closed };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until the follower has connected (its backend is visible). */
async function followerBackends(): Promise<number> {
  const r = await db.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'txfn-audit-follow' AND datname = current_database()",
  );
  return r[0]!.n;
}

interface WriterResult {
  /** Changes of committed transactions (inserts + updates). */
  committedChanges: number;
  insertedIds: string[];
  rolledBackIds: string[];
}

/**
 * One writer: transactions of 1–8 inserts plus sometimes an update of an earlier row; some
 * linger before COMMIT (so commit order differs from xid order), one in ten rolls back. Paced to
 * RATE committed changes per second.
 */
async function writer(w: number, until: number): Promise<WriterResult> {
  const c = new pg.Client({ connectionString: db.url, application_name: `writer-${w}` });
  await c.connect();
  const res: WriterResult = { committedChanges: 0, insertedIds: [], rolledBackIds: [] };
  const start = Date.now();
  let n = 0;
  try {
    while (Date.now() < until) {
      const k = 1 + Math.floor(Math.random() * 8);
      const ids = Array.from({ length: k }, () => `w${w}-${n++}`);
      const update = res.insertedIds.length > 0 && Math.random() < 0.5;
      const rollback = Math.random() < 0.1;
      await c.query("BEGIN");
      await c.query("INSERT INTO follow.events (id, writer) SELECT unnest($1::text[]), $2", [ids, w]);
      if (Math.random() < 0.3) await sleep(Math.random() * 40); // xid taken, commit later
      if (update) {
        const id = res.insertedIds[Math.floor(Math.random() * res.insertedIds.length)];
        await c.query("UPDATE follow.events SET touched = touched + 1 WHERE id = $1", [id]);
      }
      if (rollback) {
        await c.query("ROLLBACK");
        res.rolledBackIds.push(...ids);
        continue;
      }
      await c.query("COMMIT");
      res.insertedIds.push(...ids);
      res.committedChanges += k + (update ? 1 : 0);
      const due = start + (res.committedChanges / RATE) * 1000;
      if (due > Date.now()) await sleep(due - Date.now());
    }
  } finally {
    await c.end();
  }
  return res;
}

describe("txfn audit --follow", () => {
  it(
    `reports each change exactly once: ${WRITERS} writers × ${RATE}/s × ${SECONDS}s, a forced reconnect, a restart from the cursor`,
    async () => {
      const reported: Reported[] = [];
      let f = startFollower(reported);
      for (let i = 0; (await followerBackends()) === 0; i++) {
        if (i > 300) throw new Error(`the follower did not connect: ${f.stderr()}`);
        await sleep(100);
      }
      const t0 = Date.now();
      const writers = Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w, t0 + SECONDS * 1000)));

      // a third of the way: terminate the follower's connection; it must reconnect and go on
      await sleep((SECONDS * 1000) / 3);
      const killed = await db.query<{ ok: boolean }>(
        "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = 'txfn-audit-follow' AND datname = current_database()",
      );
      expect(killed.length).toBeGreaterThan(0);

      // two thirds: kill the follower process; restart it from the last line it printed
      await sleep((SECONDS * 1000) / 3);
      expect(f.stderr()).toMatch(/connection lost .*; reconnecting/);
      const beforeKill = reported.length;
      f.child.kill("SIGKILL");
      await f.closed;
      expect(reported.length).toBeGreaterThanOrEqual(beforeKill);
      const resumeAt = reported.at(-1)!.cursor;
      f = startFollower(reported, resumeAt);

      const results = await writers;
      const truth = await db.query<{ xid: string; seq: number; key: { id: string } }>(
        "SELECT p.xid::text, p.seq, p.key FROM txfn.provenance p JOIN txfn.provenance_tables t ON t.id = p.table_id " +
          "WHERE t.schema_name = 'follow' AND t.table_name = 'events' ORDER BY p.xid, p.seq",
      );
      const expected = results.reduce((s, r) => s + r.committedChanges, 0);
      expect(truth.length).toBe(expected);
      for (let i = 0; reported.length < expected && i < 600; i++) await sleep(100); // catch up
      await sleep(500); // and nothing more arrives
      f.child.kill("SIGTERM");
      await f.closed;
      expect(f.stderr()).toMatch(/cursor: \d+:\d+:/);

      // exactly once: no change twice, every committed change, nothing rolled back
      const ids = reported.map((r) => `${r.xid}.${r.seq}`);
      expect(new Set(ids).size).toBe(ids.length);
      expect(reported.length).toBe(expected);
      expect(new Set(ids)).toEqual(new Set(truth.map((t) => `${t.xid}.${t.seq}`)));
      const insertedReported = reported.filter((r) => r.op === "I").map((r) => r.key.id);
      const inserted = results.flatMap((r) => r.insertedIds);
      expect(insertedReported.length).toBe(inserted.length);
      expect(new Set(insertedReported)).toEqual(new Set(inserted));
      const rolledBack = new Set(results.flatMap((r) => r.rolledBackIds));
      expect(reported.filter((r) => rolledBack.has(r.key.id))).toEqual([]);
      // commit order did differ from xid order (otherwise a naive xid cursor would have passed too)
      const xids = reported.map((r) => BigInt(r.xid));
      expect(xids.some((x, i) => i > 0 && x < xids[i - 1]!)).toBe(true);
    },
    240_000,
  );
});
