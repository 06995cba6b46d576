// txv8's pg_regress suite (extension/sql, extension/expected) against the run's cluster.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";
import { adminUrl } from "./support/database.ts";
import { REPO_ROOT } from "./support/cli.ts";

it("make -C extension installcheck passes", () => {
  const url = new URL(adminUrl());
  const res = spawnSync("make", ["-s", "-C", join(REPO_ROOT, "extension"), "installcheck"], {
    encoding: "utf8",
    env: {
      ...process.env,
      PGHOST: url.hostname,
      PGPORT: url.port,
      PGUSER: decodeURIComponent(url.username),
      PGPASSWORD: decodeURIComponent(url.password),
    },
    timeout: 600_000,
  });
  const diffs = join(REPO_ROOT, "extension", "regression.diffs");
  const detail = existsSync(diffs) ? readFileSync(diffs, "utf8").slice(0, 20_000) : res.stdout + res.stderr;
  expect(res.status, detail).toBe(0);
});
