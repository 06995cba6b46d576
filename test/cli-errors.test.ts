// User mistakes get one clear line from the CLI (`txfn: <what was wrong>`, a hint at most), never a
// Node stack: bad DATABASE_URL, a server it cannot reach or log in to, a database that does not exist
// (naming host:port/database, never the password), an unusable --data-dir, a --host it cannot listen
// on, the demo's and the payment service's bad arguments. `txfn invocations` says when txfn is not
// installed, and a closed stdout ends quietly.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT, TXFN_BIN, txfn, txfnSync } from "./support/cli.ts";
import { useTestDatabase } from "./support/database.ts";

const db = useTestDatabase();
const env = (url = db.url) => ({ DATABASE_URL: url });
const tmp = mkdtempSync(join(tmpdir(), "txfn-cli-errors-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** One `txfn: …` line (plus an optional `hint: …` line), no stack frames. */
function expectOneLine(stderr: string, text: string | RegExp): void {
  const lines = stderr.trim().split("\n");
  expect(lines[0]).toMatch(/^txfn: /);
  expect(lines[0]).not.toMatch(/^txfn: txfn:/);
  if (typeof text === "string") expect(lines[0]).toContain(text);
  else expect(lines[0]).toMatch(text);
  expect(lines.slice(1).every((l) => l.startsWith("hint: ")), stderr).toBe(true);
  expect(stderr).not.toMatch(/^\s+at /m);
}

function withPassword(url: string, password: string, database?: string): string {
  const u = new URL(url);
  u.password = password;
  if (database) u.pathname = `/${database}`;
  return u.toString();
}

describe("connection mistakes", () => {
  it("DATABASE_URL that is not a URL", () => {
    const r = txfnSync(["versions"], { env: env("not-a-url") });
    expect(r.status).toBe(1);
    expectOneLine(r.stderr, "DATABASE_URL is not a valid PostgreSQL URL");
  });

  it("connection refused names host:port/database, never the password", () => {
    const r = txfnSync(["versions"], { env: env("postgresql://someone:sekrit@127.0.0.1:1/shop") });
    expect(r.status).toBe(1);
    expectOneLine(r.stderr, "cannot connect to PostgreSQL at 127.0.0.1:1/shop: connection refused");
    expect(r.stderr).not.toContain("sekrit");
  });

  it("unknown host", () => {
    const r = txfnSync(["invocations"], { env: env("postgresql://someone:sekrit@no-such-host.invalid:5432/shop") });
    expect(r.status).toBe(1);
    expectOneLine(r.stderr, "cannot connect to PostgreSQL at no-such-host.invalid:5432/shop: unknown host");
    expect(r.stderr).not.toContain("sekrit");
  });

  it("password authentication failed", () => {
    const url = withPassword(db.url, "wrong-password-xyz");
    const r = txfnSync(["versions"], { env: env(url) });
    expect(r.status).toBe(1);
    const u = new URL(db.url);
    expectOneLine(r.stderr, `cannot log in to PostgreSQL at ${u.hostname}:${u.port}/${db.name}: password authentication failed`);
    expect(r.stderr).not.toContain("wrong-password-xyz");
    expect(r.stderr).not.toContain(u.password);
  });

  it("database does not exist, also through txfn invoke", () => {
    const u = new URL(db.url);
    const url = withPassword(db.url, decodeURIComponent(u.password), "no_such_database");
    for (const args of [["versions"], ["invoke", "f"]]) {
      const r = txfnSync(args, { env: env(url) });
      expect(r.status, args.join(" ")).toBe(1);
      expectOneLine(r.stderr, `cannot connect to PostgreSQL at ${u.hostname}:${u.port}/no_such_database: database "no_such_database" does not exist`);
      expect(r.stderr).not.toContain(u.password);
    }
  });
});

describe("a database without txfn", () => {
  it("txfn invocations says txfn is not installed (text and --json); so does txfn invoke", () => {
    for (const args of [["invocations"], ["invocations", "--json"], ["invoke", "f"]]) {
      const r = txfnSync(args, { env: env() });
      expect(r.status, args.join(" ")).toBe(1);
      expectOneLine(r.stderr, "txfn: txfn is not installed in this database");
      expect(r.stdout).toBe("");
    }
  });
});

describe("deployed", () => {
  beforeAll(async () => {
    const d = await txfn(["deploy", "test/fixtures/provenance"], env());
    expect(d.status, d.stderr).toBe(0);
  }, 180_000);

  it("txfn history … | head: a closed stdout ends quietly with exit 0", async () => {
    await db.query("INSERT INTO prov.items (id, v) VALUES ('many', 0) ON CONFLICT (id) DO NOTHING");
    await db.query("DO $$ BEGIN FOR i IN 1..2000 LOOP UPDATE prov.items SET v = i WHERE id = 'many'; END LOOP; END $$");
    const res = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; got: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [TXFN_BIN, "history", "prov.items", "many"], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env() } });
      let got = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => {
        got += d;
        if (got.split("\n").length > 3) child.stdout.destroy(); // what `head -3` does
      });
      child.stderr.on("data", (d) => (stderr += d));
      child.on("error", reject);
      child.on("close", (code, signal) => resolve({ code, signal, stderr, got }));
    });
    expect(res.got.length).toBeGreaterThan(0);
    expect(res.stderr).toBe("");
    expect(res.code).toBe(0);
  });
});

describe("txfn invoke --help", () => {
  it("says what omitting --input means", () => {
    const r = txfnSync(["invoke", "--help"]);
    expect(r.stdout.replace(/\s+/g, " ")).toContain("without --input the function is called with null");
  });
});

describe("txfn db --data-dir that cannot be used", () => {
  it("a regular file: not a directory, and it is left alone", () => {
    const file = join(tmp, "a-file");
    writeFileSync(file, "keep");
    for (const cmd of ["start", "destroy"]) {
      const r = txfnSync(["db", cmd, "--yes", "--data-dir", file].filter((a) => cmd === "destroy" || a !== "--yes"));
      expect(r.status, r.stderr).toBe(1);
      expectOneLine(r.stderr, `the data directory ${file} is not usable: it exists and is not a directory`);
    }
    expect(spawnSync("cat", [file], { encoding: "utf8" }).stdout).toBe("keep");
  });

  it("a place where nothing can be created (/proc/nope): its lock file cannot be created", () => {
    const r = txfnSync(["db", "start", "--data-dir", "/proc/nope"]);
    expect(r.status).toBe(1);
    expectOneLine(r.stderr, "the data directory /proc/nope is not usable: cannot create its lock file /proc/nope.lock");
  });
});

describe("txfn serve --host", () => {
  it("an address that is not one: one line", () => {
    const r = txfnSync(["serve", "--host", "999.1.1.1", "--port", "0"], { env: env() });
    expect(r.status).toBe(1);
    expectOneLine(r.stderr, "cannot listen on --host 999.1.1.1: not an IP address, nor a name that resolves");
  });
});

describe("bad arguments to the demo and the payment service", () => {
  const run = (args: string[]) => spawnSync(process.execPath, ["--import", "tsx", ...args], { cwd: REPO_ROOT, encoding: "utf8", env: { ...process.env, DATABASE_URL: "" } });
  it.each([
    [["demo/main.ts", "--bogus"], "demo: Unknown option '--bogus'"],
    [["demo/main.ts", "--skus", "-1"], "demo: --skus must be an integer from 5 to 100, got -1"],
    [["demo/main.ts", "--orders"], "demo: Option '--orders <value>' argument missing"],
    [["functions/services/payment-service.ts", "--bogus"], "payment-service: Unknown option '--bogus'"],
    [["functions/services/payment-service.ts", "--database-url", "postgresql://x@127.0.0.1:1/x", "--port", "-1"], "payment-service: --port must be an integer"],
  ])("%j", (args, message) => {
    const r = run(args);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr.split("\n")[0]).toContain(message);
    expect(r.stderr).toMatch(/usage: /);
    expect(r.stderr).not.toMatch(/^\s+at /m);
  });
});
