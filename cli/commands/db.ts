/** `txfn db start|stop|status|url|psql|destroy`: the embedded private PostgreSQL cluster. */
import { spawnSync } from "node:child_process";
import { createInterface } from "node:readline/promises";
import type { Command } from "commander";
import { EmbeddedCluster } from "../../db/cluster.ts";
import { clusterDir } from "../../db/connection.ts";
import { pgBinDir } from "../../db/pg-install.ts";
import { CliError } from "../errors.ts";

interface DbOptions {
  dataDir?: string;
}

function cluster(cmd: Command): EmbeddedCluster {
  const { dataDir } = cmd.optsWithGlobals<DbOptions>();
  return new EmbeddedCluster({ dir: clusterDir(dataDir), log: (m) => console.error(m) });
}

export function registerDbCommands(program: Command): void {
  const db = program
    .command("db")
    .description("manage the embedded private PostgreSQL 15 cluster (default directory .txfn/pg)")
    .option("--data-dir <dir>", "cluster directory (default: $TXFN_DATA_DIR, else .txfn/pg in the project root)");

  db.command("start")
    .description("initialise (first time) and start the cluster; re-applies changed settings. Harmless when running.")
    .action(async (_opts, cmd: Command) => {
      const c = cluster(cmd);
      const url = await c.start();
      const s = c.status();
      console.log(`PostgreSQL is running: 127.0.0.1:${s.port} (pid ${s.pid}, data ${c.dir})`);
      console.log(`url: ${url}`);
    });

  db.command("stop")
    .description("stop the cluster (fast shutdown); leaves no server process behind")
    .action(async (_opts, cmd: Command) => {
      const stopped = await cluster(cmd).stop();
      console.log(stopped ? "PostgreSQL stopped" : "PostgreSQL was not running");
    });

  db.command("status")
    .description("print whether the cluster is initialised and running, its port, pid and log file")
    .option("--json", "print the status as JSON: {dir, initialized, running, pid?, port?, url?, log}")
    .action((opts: { json?: boolean }, cmd: Command) => {
      const s = cluster(cmd).status();
      if (opts.json) {
        console.log(JSON.stringify(s, null, 2));
        return;
      }
      if (!s.initialized) console.log(`no cluster in ${s.dir} (txfn db start creates one)`);
      else if (!s.running) console.log(`stopped (port ${s.port}, data ${s.dir})`);
      else console.log(`running on 127.0.0.1:${s.port} (pid ${s.pid}, data ${s.dir}, log ${s.log})`);
      process.exitCode = s.running ? 0 : 3;
    });

  db.command("url")
    .description("print the connection URL (accepted by psql and by node-postgres)")
    .option("--database <name>", "database name in the URL", "txfn")
    .action((opts: { database: string }, cmd: Command) => {
      console.log(cluster(cmd).url(opts.database));
    });

  db.command("psql")
    .description("open psql on the cluster's txfn database (starts the cluster when needed); extra arguments go to psql")
    .allowUnknownOption()
    .option("--database <name>", "another database of the cluster (e.g. demo, the one npm run demo makes)", "txfn")
    .argument("[args...]", "arguments passed to psql")
    .action(async (args: string[], opts: { database: string }, cmd: Command) => {
      const c = cluster(cmd);
      await c.start();
      const url = c.url(opts.database);
      const psql = [`${pgBinDir()}/psql`, "/usr/bin/psql"].find((p) => spawnSync(p, ["--version"]).status === 0);
      if (!psql) throw new CliError("psql not found", "apt-get install postgresql-client-15");
      const res = spawnSync(psql, [url, ...args], { stdio: "inherit" });
      process.exitCode = res.status ?? 1;
    });

  db.command("destroy")
    .description("stop the cluster and delete its directory with all data (asks for confirmation unless --yes)")
    .option("-y, --yes", "do not ask for confirmation")
    .action(async (opts: { yes?: boolean }, cmd: Command) => {
      const c = cluster(cmd);
      if (!opts.yes) {
        if (!process.stdin.isTTY) throw new CliError(`refusing to delete ${c.dir} without confirmation`, "pass --yes");
        const rl = createInterface({ input: process.stdin, output: process.stdout });
        const answer = await rl.question(`Delete the cluster in ${c.dir} and all its data? [y/N] `);
        rl.close();
        if (!/^y(es)?$/i.test(answer.trim())) {
          console.log("kept");
          return;
        }
      }
      await c.destroy();
      console.log(`destroyed ${c.dir}`);
    });
}
