/** `txfn build [dir]`, `txfn deploy [dir]`, `txfn versions`, `txfn rollback [version]`. */
import type { Command } from "commander";
import { BuildError, build, type BuildOptions } from "../../bundler/index.ts";
import { DeployError, deploy, listVersions, rollback } from "../../client/index.ts";
import { MigrationError } from "../../migrations/index.ts";
import { databaseUrl } from "../../db/connection.ts";
import { CliError } from "../errors.ts";

interface BuildFlags {
  maxBundleBytes?: string;
  schema?: string;
  schemas?: boolean;
}

function buildOptions(flags: BuildFlags): BuildOptions {
  const out: BuildOptions = {};
  if (flags.maxBundleBytes !== undefined) {
    const n = Number(flags.maxBundleBytes);
    if (!Number.isInteger(n) || n <= 0) throw new CliError(`--max-bundle-bytes must be a positive integer, got ${flags.maxBundleBytes}`);
    out.maxBundleBytes = n;
  }
  if (flags.schema !== undefined) out.appSchema = flags.schema;
  if (flags.schemas === false) out.schemas = false;
  return out;
}

async function buildOrExplain(dir: string, flags: BuildFlags) {
  try {
    return await build(dir, buildOptions(flags));
  } catch (err) {
    if (err instanceof BuildError) throw new CliError(err.message);
    throw err;
  }
}

function withBuildFlags(cmd: Command): Command {
  return cmd
    .argument("[dir]", "function project: a folder (its top-level .ts files) or an entry file", "functions")
    .option("--max-bundle-bytes <n>", "refuse a bundle larger than this many bytes (default 5 MiB)")
    .option("--schema <name>", "schema of the generated SQL wrappers (default app)")
    .option("--no-schemas", "skip JSON schema extraction from the TypeScript types");
}

export function registerDeployCommands(program: Command): void {
  withBuildFlags(
    program.command("build").description(
      "bundle a function project with esbuild (ES2022, npm deps tree-shaken, Node built-ins refused) and print its manifest",
    ),
  )
    .option("--json", "print the whole manifest as JSON")
    .action(async (dir: string, flags: BuildFlags & { json?: boolean }) => {
      const b = await buildOrExplain(dir, flags);
      for (const w of b.warnings) console.error(`warning:\n${w}`);
      if (flags.json) {
        console.log(JSON.stringify({ hash: b.hash, sizeBytes: b.sizeBytes, manifest: b.manifest }, null, 2));
        return;
      }
      console.log(`built ${b.layout.files.length} file(s): ${b.sizeBytes} bytes, sha256 ${b.hash.slice(0, 12)}`);
      for (const [name, f] of Object.entries(b.manifest.functions)) {
        console.log(`  ${name}  ->  ${b.manifest.appSchema}.${f.sqlName}(input jsonb, idempotency_key text)  [${f.options.isolation}${f.options.readOnly ? ", read only" : ""}]  ${f.file}`);
      }
    });

  withBuildFlags(
    program.command("deploy").description(
      "build, then in ONE transaction: txfn schema, the project's migrations (<dir>/migrations), the new bundle version, " +
        "its SQL wrappers and activation. On any failure the previous version stays active.",
    ),
  ).action(async (dir: string, flags: BuildFlags) => {
    const b = await buildOrExplain(dir, flags);
    const url = await databaseUrl({ log: (m) => console.error(m) });
    try {
      const r = await deploy(url, b, (m) => console.error(m));
      for (const m of r.migrations) console.log(`migrated: ${m}`);
      if (r.unchanged) console.log(`unchanged: version ${r.version} is active with this exact bundle (${r.functions.join(", ")})`);
      else console.log(`deployed version ${r.version} (${r.language}; previous ${r.previous ?? "none"}): ${r.functions.join(", ")}`);
    } catch (err) {
      if (err instanceof DeployError || err instanceof MigrationError) throw new CliError(err.message);
      throw err;
    }
  });

  program
    .command("versions")
    .description("list deployed bundle versions, newest first (* = active)")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }) => {
      const versions = await listVersions(await databaseUrl());
      if (opts.json) return console.log(JSON.stringify(versions, null, 2));
      if (versions.length === 0) return console.log("nothing deployed yet (txfn deploy <dir>)");
      for (const v of versions) {
        console.log(
          `${v.active ? "*" : " "} ${String(v.version).padStart(4)}  ${v.deployedAt.toISOString()}  ${String(v.sizeBytes).padStart(8)} B  ${v.hash.slice(0, 12)}  ${v.functions.join(", ")}`,
        );
      }
    });

  program
    .command("rollback")
    .description("activate an earlier version (default: the one before the active one); migrations are not undone")
    .argument("[version]", "bundle version to activate")
    .action(async (version: string | undefined) => {
      let v: number | undefined;
      if (version !== undefined) {
        v = Number(version);
        if (!Number.isInteger(v) || v <= 0) throw new CliError(`version must be a positive integer, got ${version}`);
      }
      try {
        const r = await rollback(await databaseUrl(), v);
        console.log(r.previous === r.version ? `version ${r.version} is already active` : `active version: ${r.version} (was ${r.previous ?? "none"})`);
      } catch (err) {
        if (err instanceof DeployError) throw new CliError(err.message);
        throw err;
      }
    });
}
