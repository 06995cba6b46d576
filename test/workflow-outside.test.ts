// \`txfn worker <dir>\` on a workflow project in a temp folder outside the checkout, as real
// processes: its \`import … from "txfn"\` resolves to this checkout (as \`build\` resolves it), its
// .ts files load as ES modules without a package.json, and a module that cannot be loaded is one
// error line naming the file and the cause.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT, txfn } from "./support/cli.ts";
import { useTestDatabase } from "./support/database.ts";
import { useWorkers } from "./support/worker.ts";
import { FAST_WORKER, GREET, writeGreetProject, writeProject } from "./support/workflow-project.ts";

const db = useTestDatabase();
const { start: worker, spawn: spawnWorker } = useWorkers(db.url, FAST_WORKER);
let outside: string; // a temp folder outside the checkout

beforeAll(() => {
  outside = mkdtempSync(join(tmpdir(), "txfn-outside-"));
  expect(outside.startsWith(REPO_ROOT)).toBe(false);
  writeGreetProject(join(outside, "proj", "wf"));
});

afterAll(() => {
  if (outside) rmSync(outside, { recursive: true, force: true });
});

const cli = (args: string[]) => txfn(args, { DATABASE_URL: db.url });

describe("txfn worker on a project outside the checkout", { timeout: 180_000 }, () => {
  it("txfn worker runs a project in a temp folder outside the checkout (no package.json, `import … from \"txfn\"`)", async () => {
    const w = await worker(join(outside, "proj", "wf"), ["--executor-id", "outside"]);
    expect(w.logs.find((l) => l.msg === "executor ready")).toMatchObject({ workflows: ["greet"] });
    const r = await cli(["workflow", "start", "greet", "--id", "g1", "--wait", "--timeout", "60000", "--input", '{"who":"you"}']);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ greeting: "hello you!" });
  });

  it("a module that cannot be loaded: one line naming the file and the cause, exit 1, no stack", async () => {
    const bad = writeProject(join(outside, "bad"), {
      "ok.ts": GREET.replace('"greet"', '"greet2"').replace('import { punctuation } from "../text.ts";', 'const punctuation = ".";'),
      "broken.ts": `import { workflow } from "txfn";\nimport pad from "no-such-package-txfn";\nexport const b = workflow("b", async () => pad);\n`,
    });
    const w = spawnWorker(bad);
    const { code } = await w.exited;
    expect(code).toBe(1);
    expect(w.stderr()).toBe(
      `txfn: cannot load ${join(bad, "workflows", "broken.ts")}: ERR_MODULE_NOT_FOUND: Cannot find package 'no-such-package-txfn' imported from ${join(bad, "workflows", "broken.ts")}\n`,
    );
  });

  it("the same project with package.json {\"type\": \"module\"} (and no node_modules) runs too", async () => {
    const dir = join(outside, "esm");
    writeProject(dir, { "greet.ts": GREET.replace('import { punctuation } from "../text.ts";', 'const punctuation = "?";') });
    writeFileSync(join(dir, "package.json"), '{"type":"module"}\n');
    await worker(dir);
    const r = await cli(["workflow", "start", "greet", "--id", "g2", "--wait", "--timeout", "60000", "--input", '{"who":"there"}']);
    expect([r.status, r.stderr]).toEqual([0, ""]);
    expect(JSON.parse(r.stdout)).toMatchObject({ greeting: "hello there?" });
  });

});
