// `txfn db …` on clusters of their own: lifecycle, and the bad situations that must
// either recover by themselves or say clearly what is wrong.
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { lookupUser } from "../db/os-user.ts";
import { REPO_ROOT, txfnSync } from "./support/cli.ts";

const roots: string[] = [];
function scratch(mode = 0o755): string {
  const root = mkdtempSync(join(tmpdir(), "txfn-dbtest-"));
  chmodSync(root, mode);
  roots.push(root);
  return root;
}
afterAll(() => {
  for (const root of roots) {
    const dir = join(root, "pg");
    if (existsSync(dir)) txfnSync(["db", "destroy", "--yes", "--data-dir", dir]);
    rmSync(root, { recursive: true, force: true });
  }
});

/**
 * A checkout `user` can run txfn from: this one when that user can read it, else a copy (hard
 * links where the file system allows) in a world-readable scratch directory — a clone in a
 * root-only directory (mktemp -d's, /root) cannot be read by an unprivileged user.
 */
function checkoutReadableBy(user: string): string {
  if (spawnSync("runuser", ["-u", user, "--", "test", "-r", join(REPO_ROOT, "bin/txfn.js")]).status === 0) return REPO_ROOT;
  const copy = scratch();
  for (const entry of ["bin", "cli", "db", "bundler", "client", "migrations", "runtime-sql", "provenance", "proxy", "replay", "workflows", "index.ts", "types.ts", "package.json", "tsconfig.json", "node_modules"]) {
    if (!existsSync(join(REPO_ROOT, entry))) continue;
    const linked = spawnSync("cp", ["-al", join(REPO_ROOT, entry), copy]).status === 0;
    if (!linked) execFileSync("cp", ["-a", join(REPO_ROOT, entry), copy]);
  }
  return copy;
}

async function selectOne(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ one: number }>("SELECT 1 AS one");
    return rows[0]!.one;
  } finally {
    await client.end();
  }
}

function postmasterProcesses(dataDir: string): string[] {
  const out = spawnSync("ps", ["-eo", "pid,args"], { encoding: "utf8" }).stdout;
  return out.split("\n").filter((l) => l.includes(dataDir) || l.includes(realpathOr(dataDir)));
}
function realpathOr(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

describe("txfn db lifecycle", () => {
  const dir = join(scratch(), "pg");
  const at = ["--data-dir", dir];

  it("starts a private cluster, and starting it twice is harmless", () => {
    const first = txfnSync(["db", "start", ...at]);
    expect(first.status, first.stderr).toBe(0);
    expect(first.stderr).toMatch(/initialising a PostgreSQL 15 cluster/);
    const second = txfnSync(["db", "start", ...at]);
    expect(second.status, second.stderr).toBe(0);
    expect(second.stderr).not.toMatch(/initialising|starting/);
    expect(second.stdout).toBe(first.stdout);
  });

  it("prints a URL that both pg and psql accept", async () => {
    const url = txfnSync(["db", "url", ...at]).stdout.trim();
    expect(url).toMatch(/^postgresql:\/\/postgres:[0-9a-f]+@127\.0\.0\.1:\d+\/txfn$/);
    expect(await selectOne(url)).toBe(1);
    const psql = spawnSync("psql", [url, "-Atc", "SELECT current_database()"], { encoding: "utf8" });
    expect(psql.stdout.trim()).toBe("txfn");
  });

  it("listens on 127.0.0.1 and a unix socket, with txv8 preloaded", async () => {
    const url = txfnSync(["db", "url", ...at]).stdout.trim();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const { rows } = await client.query(
      "SELECT current_setting('listen_addresses') AS l, current_setting('unix_socket_directories') AS s, current_setting('shared_preload_libraries') AS p",
    );
    await client.end();
    expect(rows[0]).toMatchObject({ l: "127.0.0.1", p: "txv8" });
    expect(existsSync(join(rows[0].s, `.s.PGSQL.${new URL(url).port}`))).toBe(true);
  });

  it("keeps its port across restarts and reports status", () => {
    const before = JSON.parse(txfnSync(["db", "status", "--json", ...at]).stdout);
    expect(before).toMatchObject({ initialized: true, running: true });
    expect(txfnSync(["db", "stop", ...at]).stdout).toMatch(/stopped/);
    const stopped = txfnSync(["db", "status", ...at]);
    expect(stopped.status).toBe(3);
    expect(txfnSync(["db", "start", ...at]).status).toBe(0);
    const after = JSON.parse(txfnSync(["db", "status", "--json", ...at]).stdout);
    expect(after.port).toBe(before.port);
  });

  it("applies a changed setting on the next start", async () => {
    const conf = join(dir, "data", "txfn.conf");
    writeFileSync(conf, readFileSync(conf, "utf8").replace(/max_connections = \d+/, "max_connections = 33"));
    const res = txfnSync(["db", "start", ...at]);
    expect(res.stderr).toMatch(/settings changed; restarting/);
    const url = txfnSync(["db", "url", ...at]).stdout.trim();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const { rows } = await client.query("SHOW max_connections");
    await client.end();
    expect(rows[0].max_connections).toBe("200");
  });

  it("restarts a running cluster whose preloaded txv8 is not the installed one", () => {
    const stateFile = join(dir, "cluster.json");
    const state = JSON.parse(readFileSync(stateFile, "utf8"));
    const pidBefore = JSON.parse(txfnSync(["db", "status", "--json", ...at]).stdout).pid;
    writeFileSync(stateFile, JSON.stringify({ ...state, txv8Loaded: "an older build" }));
    const res = txfnSync(["db", "start", ...at]);
    expect(res.status, res.stderr).toBe(0);
    expect(res.stderr).toMatch(/txv8 was reinstalled; restarting/);
    expect(JSON.parse(txfnSync(["db", "status", "--json", ...at]).stdout).pid).not.toBe(pidBefore);
    expect(JSON.parse(readFileSync(stateFile, "utf8")).txv8Loaded).toBe(state.txv8Loaded);
  });

  it("recovers from a postmaster killed with SIGKILL (stale postmaster.pid)", async () => {
    const pid = Number(readFileSync(join(dir, "data", "postmaster.pid"), "utf8").split("\n")[0]);
    process.kill(pid, "SIGKILL");
    const res = txfnSync(["db", "start", ...at]);
    expect(res.status, res.stderr).toBe(0);
    expect(await selectOne(txfnSync(["db", "url", ...at]).stdout.trim())).toBe(1);
  });

  it("stop leaves no server process behind", () => {
    expect(txfnSync(["db", "stop", ...at]).status).toBe(0);
    expect(postmasterProcesses(join(dir, "data"))).toEqual([]);
    expect(txfnSync(["db", "stop", ...at]).stdout).toMatch(/was not running/);
  });

  it("moves to a free port when its remembered port is taken", async () => {
    const port = JSON.parse(txfnSync(["db", "status", "--json", ...at]).stdout).port as number;
    const squatter = createServer();
    await new Promise<void>((r) => squatter.listen(port, "127.0.0.1", r));
    try {
      const res = txfnSync(["db", "start", ...at]);
      expect(res.status, res.stderr).toBe(0);
      expect(res.stderr).toMatch(new RegExp(`port ${port} is taken`));
      const now = JSON.parse(txfnSync(["db", "status", "--json", ...at]).stdout).port;
      expect(now).not.toBe(port);
    } finally {
      squatter.close();
    }
  });

  it("destroy asks for confirmation unless --yes", () => {
    const refused = txfnSync(["db", "destroy", ...at]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/without confirmation.*\n.*--yes/);
    expect(existsSync(dir)).toBe(true);
    const done = txfnSync(["db", "destroy", "--yes", ...at]);
    expect(done.status).toBe(0);
    expect(existsSync(dir)).toBe(false);
    expect(postmasterProcesses(join(dir, "data"))).toEqual([]);
  });
});

describe.runIf(process.getuid?.() === 0)("txfn db as root", () => {
  it("runs the server as an unprivileged user, and relocates a cluster that user cannot reach", async () => {
    const root = scratch(0o700); // like a clone under /root
    const dir = join(root, "pg");
    const res = txfnSync(["db", "start", "--data-dir", dir]);
    expect(res.status, res.stderr).toBe(0);
    expect(res.stderr).toMatch(/cannot reach .*; the cluster lives in \/var\/lib\/txfn\//);
    expect(lstatSync(dir).isSymbolicLink()).toBe(true);
    const status = JSON.parse(txfnSync(["db", "status", "--json", "--data-dir", dir]).stdout);
    const owner = execFileSync("ps", ["-o", "user=", "-p", String(status.pid)], { encoding: "utf8" }).trim();
    expect(owner).toBe("postgres");
    const target = realpathSync(dir);
    expect(txfnSync(["db", "destroy", "--yes", "--data-dir", dir]).status).toBe(0);
    expect(existsSync(target)).toBe(false);
    expect(existsSync(dir)).toBe(false);
  });

  it("refuses, with a clear message, a data directory owned by another user", () => {
    const postgres = lookupUser("postgres")!;
    const nobody = lookupUser("nobody")!;
    const root = scratch();
    const dir = join(root, "pg");
    mkdirSync(dir);
    chownSync(dir, nobody.uid, nobody.gid);
    const bin = join(checkoutReadableBy("postgres"), "bin/txfn.js");
    const res = spawnSync(process.execPath, [bin, "db", "start", "--data-dir", dir], {
      encoding: "utf8",
      uid: postgres.uid,
      gid: postgres.gid,
      cwd: "/",
      env: { ...process.env, HOME: postgres.home },
      timeout: 180_000,
    });
    expect(res.status).toBe(1);
    expect(res.stderr).toMatch(/belongs to nobody, but txfn runs as postgres/);
  });

  it("says which PostgreSQL major txv8 was built for when the server is another one", () => {
    const fakeBin = scratch();
    writeFileSync(join(fakeBin, "postgres"), "#!/bin/sh\necho 'postgres (PostgreSQL) 16.4'\n", { mode: 0o755 });
    writeFileSync(join(fakeBin, "pg_config"), "#!/bin/sh\nexec /usr/lib/postgresql/15/bin/pg_config \"$@\"\n", { mode: 0o755 });
    const res = txfnSync(["db", "start", "--data-dir", join(scratch(), "pg")], { env: { TXFN_PG_BIN: fakeBin } });
    expect(res.status).toBe(1);
    expect(res.stderr).toMatch(/built for PostgreSQL 15, but the server is 16[\s\S]*scripts\/setup/);
  });
});

describe("set-up failures name the missing piece", () => {
  it("building txv8 without the libnode folder says how to get it", () => {
    const res = spawnSync("make", ["-C", join(REPO_ROOT, "extension"), "LIBNODE_DIR=/nonexistent/libnode"], { encoding: "utf8" });
    expect(res.status).not.toBe(0);
    expect(res.stderr).toMatch(/libnode108 not found in \/nonexistent\/libnode; run scripts\/setup/);
  });
});
