/**
 * `npm run demo`: the main job end to end on the embedded default (scripts/demo runs the set-up,
 * then this). Stages:
 *
 *   1  the private cluster (`txfn db start`), or the database of DATABASE_URL
 *   2  a fresh database for the run (`demo`: dropped and created again, so runs repeat)
 *   3  deploy the checkout app, stock its SKUs (some scarce), a token for the proxy
 *   4  start the fake payment service (misbehaving), `txfn serve`, `txfn worker`
 *   5  the load: hundreds of seeded orders over HTTP; the executor SIGKILLed and restarted midway
 *   6  stop those processes
 *   7  exactly-once checks computed from the database
 *   8  the provenance of one order row (`txfn history`)
 *   9  faithful replay of the load's trace (`txfn replay`): zero divergences
 *   10 the oversell race recorded with the buggy split reserve, in a second database
 *   11 its faithful replay: the oversell comes back
 *   12 retroaction with the fixed function (`txfn retro --bundle … --check …`): the oversell is gone
 *
 * Options: --orders N (300), --skus N (40), --seed N, --concurrency N (24), --json (a last line
 * of JSON: the summary), --database NAME (demo; private cluster only), --log-dir DIR.
 */
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import pg from "pg";
import { EmbeddedCluster } from "../db/cluster.ts";
import { clusterDir } from "../db/connection.ts";
import { runChecks } from "./checks.ts";
import { Children, REPO_ROOT, type Child } from "./children.ts";
import { assertOwnedOrAbsent, checkGivenDatabase, databaseName, freshDatabase, redact, siblingUrl } from "./database.ts";
import { outcomeClass, runLoad, type LoadResult } from "./load.ts";
import { planOrders } from "./orders.ts";
import { NO_OVERSELL, OVERSELL_FIXED, OVERSELL_PROJECT, runRace, type RaceResult } from "./oversell.ts";
import { EXECUTOR_ID, PAYMENT_FAULTS, startPaymentService, startProxy, startWorker } from "./services.ts";
import { renderExplore, renderSummary, type DemoSummary } from "./summary.ts";
import { commandLine, describeCounts, seconds, timeTravel } from "./timetravel.ts";
import { DemoError, Ui, bold, cyan, dim, red } from "./ui.ts";

const USAGE = `usage: npm run demo -- [--orders N] [--skus N] [--seed N] [--concurrency N] [--json] [--database NAME] [--log-dir DIR]

  --orders N        checkout orders to send (default 300)
  --skus N          SKUs they are spread over, 5–100 (default 40)
  --seed N          the generator's seed (default 20240601): the same orders every run
  --concurrency N   HTTP clients sending orders at once (default 24)
  --database NAME   the demo's database on the private cluster (default demo), recreated each run;
                    an existing database the demo did not make is refused, never dropped;
                    with DATABASE_URL set, that database is used instead (it must not hold the app)
  --json            end with one line of JSON: the summary (for tests and scripts)
  --log-dir DIR     where the child processes' logs go (default .txfn/demo/<database>)`;

interface Options {
  orders: number;
  skus: number;
  seed: number;
  concurrency: number;
  database: string;
  json: boolean;
  logDir?: string;
}

/** util.parseArgs, its errors (unknown option, missing value, positional) as a usage message and exit 2. */
function parseDemoArgs(argv: string[]) {
  // `--skus -1`: parseArgs takes -1 for an option; read it as the value, for the range check to refuse.
  const args = argv.flatMap((a, i) => (/^-\d/.test(a) && /^--[a-z-]+$/.test(argv[i - 1] ?? "") ? [] : /^--[a-z-]+$/.test(a) && /^-\d/.test(argv[i + 1] ?? "") ? [`${a}=${argv[i + 1]}`] : [a]));
  try {
    return parseArgs({
      args,
      options: {
        orders: { type: "string", default: "300" },
        skus: { type: "string", default: "40" },
        seed: { type: "string", default: "20240601" },
        concurrency: { type: "string", default: "24" },
        database: { type: "string", default: "demo" },
        json: { type: "boolean", default: false },
        "log-dir": { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (err) {
    if (!String((err as { code?: unknown }).code).startsWith("ERR_PARSE_ARGS_")) throw err;
    console.error(`demo: ${(err as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
}

function parseOptions(argv: string[]): Options {
  const { values } = parseDemoArgs(argv);
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (name: string, text: string, min: number, max: number) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max) {
      console.error(`demo: --${name} must be an integer from ${min} to ${max}, got ${text}\n\n${USAGE}`);
      process.exit(2);
    }
    return n;
  };
  if (!/^[a-z_][a-z0-9_]{0,40}$/.test(values.database)) {
    console.error(`demo: --database must be a plain lower-case name, got ${values.database}`);
    process.exit(2);
  }
  return {
    orders: int("orders", values.orders, 1, 100_000),
    skus: int("skus", values.skus, 5, 100),
    seed: int("seed", values.seed, 0, 2 ** 32 - 1),
    concurrency: int("concurrency", values.concurrency, 1, 1000),
    database: values.database,
    json: values.json,
    ...(values["log-dir"] ? { logDir: values["log-dir"] } : {}),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2));
  const givenUrl = process.env.DATABASE_URL || undefined;
  const dbName = givenUrl ? databaseName(givenUrl) : opts.database;
  const oversellName = `${dbName}_oversell`;
  const logDir = opts.logDir ?? join(REPO_ROOT, ".txfn", "demo", dbName);
  const ui = new Ui(12);
  if (givenUrl) ui.rerunAll = "npm run demo (DATABASE_URL: a database without the checkout app, or one the demo made)";
  const children = new Children(logDir);
  if (children.leftovers.length) ui.line(dim(`(stopped what an interrupted earlier run left running: ${children.leftovers.join(", ")})`));
  const plan = planOrders({ orders: opts.orders, skus: opts.skus, seed: opts.seed });
  const summary: DemoSummary = {
    ok: false,
    durationMs: 0,
    database: dbName,
    oversellDatabase: oversellName,
    databaseUrlCommand: givenUrl ? "$DATABASE_URL" : `$(npx txfn db url --database ${dbName})`,
    options: { orders: opts.orders, skus: opts.skus, seed: opts.seed, concurrency: opts.concurrency },
    load: { from: "", to: "", durationMs: 0, duplicates: { sent: 0, sameWorkflow: 0 }, retriedRequests: 0, api: {}, scarce: plan.scarce },
    executor: { killedPid: 0, pendingAtKill: 0, runningAtKill: 0, restartedPid: 0, downMs: 0 },
    checks: null,
    provenance: null,
    replay: null,
    oversell: null,
    processes: children.started,
  };
  /** A command to redo a stage by hand, against the demo's database. */
  const byHand = (command: string, database = dbName) => (givenUrl && database === dbName ? command : `DATABASE_URL="$(npx txfn db url --database ${database})" ${command}`);
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\ndemo: ${signal}: stopping the processes it started (the cluster keeps running)\n`);
    void children.stopAll().then(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  let pool: pg.Pool | undefined;
  try {
    // 1. The server.
    let serverUrl = givenUrl ?? "";
    await ui.stage(
      givenUrl ? "the database of DATABASE_URL" : "start the private PostgreSQL cluster: npx txfn db start (.txfn/pg)",
      async () => {
        if (givenUrl) return ui.info(`DATABASE_URL=${redact(givenUrl)}`);
        ui.block((await children.runOk(["db", "start"])).replace(/^url: .*$/m, "").trim());
        serverUrl = new EmbeddedCluster({ dir: clusterDir() }).url();
      },
      { rerun: ["npx txfn db start", "npx txfn db status"] },
    );

    // 2. The run's database.
    const oversellHowTo = givenUrl
      ? `The race needs ${oversellName} beside the database of DATABASE_URL: point DATABASE_URL at a database of another name, or drop ${oversellName} yourself if you no longer need it.`
      : `Pick another name (npm run demo -- --database <another name>; the race uses <name>_oversell), or drop ${oversellName} yourself if you no longer need it.`;
    let url = givenUrl ?? "";
    await ui.stage(
      givenUrl ? `check that database ${dbName} (DATABASE_URL) is free for the demo` : `a fresh database for this run: ${dbName} (one this demo made is dropped and created again; any other is left alone)`,
      async () => {
        // Both databases are checked before anything is dropped, created or run.
        if (!givenUrl) await assertOwnedOrAbsent(serverUrl, dbName);
        await assertOwnedOrAbsent(givenUrl ?? serverUrl, oversellName, oversellHowTo);
        if (givenUrl && (await checkGivenDatabase(givenUrl)) === "recreated") ui.info("a database this demo made before: dropped and created again");
        else if (!givenUrl) url = await freshDatabase(serverUrl, dbName);
        ui.info(`${redact(url)}`);
      },
    );
    const env = { DATABASE_URL: url };
    pool = new pg.Pool({ connectionString: url, max: 4, application_name: "txfn demo" });
    pool.on("error", () => {});
    const db = pool;

    // 3. The app.
    let token = "";
    await ui.stage(
      "deploy the reference checkout app (functions/) and stock its SKUs",
      async () => {
        ui.info(cyan("$ npx txfn deploy functions"));
        ui.block((await children.runOk(["deploy", "functions"], env)).split("\n").slice(0, 12).join("\n"));
        ui.info(cyan("$ npx txfn provenance config --exclude payment_service") + dim("   # the payment service is an outside system"));
        await children.runOk(["provenance", "config", "--exclude", "payment_service"], env);
        const stock = Object.fromEntries(plan.stock);
        const c = await db.connect();
        let r: pg.QueryResult;
        try {
          await c.query("BEGIN");
          await c.query("SET LOCAL application_name = 'txfn demo (warehouse import)'"); // what provenance records
          r = await c.query("UPDATE shop.inventory i SET stock = s.value::int FROM jsonb_each_text($1::jsonb) s WHERE i.sku = s.key", [JSON.stringify(stock)]);
          await c.query("COMMIT");
        } finally {
          c.release();
        }
        if (r.rowCount !== plan.stock.size) throw new DemoError(`stocked ${r.rowCount} SKUs, expected ${plan.stock.size}`);
        ui.info(
          `stocked ${plan.stock.size} SKUs by plain SQL (captured as a write outside txfn); scarce, about half their demand: ` +
            plan.scarce.map((s) => `${s} ${plan.stock.get(s)}/${plan.demand.get(s)}`).join(", "),
        );
        ui.info(cyan("$ npx txfn token create --name demo-shop --workflows checkout"));
        token = (JSON.parse(await children.runOk(["token", "create", "--name", "demo-shop", "--workflows", "checkout", "--json"], env)) as { token: string }).token;
        ui.info(`a bearer token for the shop front-end (${token.slice(0, 6)}…, only its sha256 is stored)`);
      },
      { rerun: [byHand("npx txfn deploy functions")] },
    );

    // 4. The processes.
    let worker: Child | undefined;
    let proxyUrl = "";
    let paymentUrl = "";
    let proxy: Child | undefined;
    let payments: Child | undefined;
    ui.logFiles = [`${relative(process.cwd(), logDir) || "."}/*.log (the payment service, the proxy, the executor's lives)`];
    await ui.stage("start the fake payment service, the HTTP proxy (txfn serve) and an executor (txfn worker)", async () => {
      const p = await startPaymentService(children, url);
      payments = p.child;
      paymentUrl = p.url;
      ui.info(
        `payment service  ${paymentUrl} (pid ${p.child.pid}): ${PAYMENT_FAULTS.failRate * 100}% 503 before charging, ${PAYMENT_FAULTS.failAfterChargeRate * 100}% ` +
          `charged then 503 (reply lost), ${PAYMENT_FAULTS.hangRate * 100}% never answered, ${PAYMENT_FAULTS.slowRate * 100}% slow; ledger by idempotency key`,
      );
      const [s, w] = await Promise.all([startProxy(children, url), startWorker(children, url, paymentUrl, 1)]);
      proxy = s.child;
      proxyUrl = s.url;
      worker = w;
      ui.info(`txfn serve       ${proxyUrl} (pid ${s.child.pid}): POST /v1/workflows/checkout, Idempotency-Key = the order id`);
      ui.info(`txfn worker      --executor-id ${EXECUTOR_ID} (pid ${w.pid}): runs the checkout workflows`);
    });

    // 5. The load, with a crash in the middle.
    let load: LoadResult | undefined;
    await ui.stage(
      `the load: ${opts.orders} orders from ${opts.concurrency} concurrent clients over HTTP; the executor is SIGKILLed halfway`,
      async () => {
        ui.info(
          `orders of 1–3 items over ${opts.skus} SKUs (seed ${opts.seed}); ${plan.orders.filter((o) => o.input.card === "declined").length} with a card the payment service declines; ` +
            `${plan.orders.filter((o) => o.duplicate).length} sent twice with the same key`,
        );
        summary.load.from = ((await db.query<{ t: Date }>("SELECT clock_timestamp() AS t")).rows[0]!.t).toISOString();
        const progress = ui.progress("orders", plan.orders.length);
        /** Adds to a load failure which of the processes serving it has died. */
        const explain = (err: unknown): never => {
          const dead = [proxy, payments, worker].filter((c) => c && c.pid !== summary.executor.killedPid && (c.proc.exitCode !== null || c.proc.signalCode !== null));
          if (!dead.length) throw err;
          const what = dead.map((c) => `${c!.name} (pid ${c!.pid}) exited (${c!.proc.signalCode ?? `code ${c!.proc.exitCode}`}); its last output:\n${c!.tail().trim().slice(-1500)}`);
          throw new DemoError(`${err instanceof Error ? err.message : String(err)}\n${what.join("\n")}`);
        };
        load = await runLoad({
          baseUrl: proxyUrl,
          token,
          orders: plan.orders,
          concurrency: opts.concurrency,
          progress,
          timeoutMs: 150_000,
          midway: async () => {
            const [state] = (
              await db.query<{ pending: string; running: string }>(
                "SELECT count(*) AS pending, count(*) FILTER (WHERE owner IS NOT NULL) AS running FROM txfn.workflows WHERE status = 'PENDING'",
              )
            ).rows;
            const dead = worker!;
            await children.stop(dead, "SIGKILL");
            const down = Date.now();
            Object.assign(summary.executor, { killedPid: dead.pid, pendingAtKill: Number(state!.pending), runningAtKill: Number(state!.running) });
            progress.log(red(`SIGKILL → txfn worker (pid ${dead.pid}) with ${state!.pending} workflows pending, ${state!.running} claimed by it; orders keep coming`));
            await sleep(1000);
            worker = await startWorker(children, url, paymentUrl, 2);
            summary.executor.restartedPid = worker.pid;
            summary.executor.downMs = Date.now() - down;
            progress.log(`txfn worker restarted (pid ${worker.pid}, same --executor-id): it takes over the dead executor's workflows at once`);
          },
        }).catch(explain);
        summary.load.to = new Date(((await db.query<{ t: Date }>("SELECT clock_timestamp() AS t")).rows[0]!.t).getTime() + 1000).toISOString();
        summary.load.durationMs = load.durationMs;
        summary.load.duplicates = load.duplicates;
        summary.load.retriedRequests = load.retriedRequests;
        for (const w of load.outcomes.values()) summary.load.api[outcomeClass(w)] = (summary.load.api[outcomeClass(w)] ?? 0) + 1;
        ui.info(
          `all ${load.outcomes.size} orders answered in ${seconds(load.durationMs)}: ` +
            Object.entries(summary.load.api).map(([k, n]) => `${n} ${k}`).join(", ") +
            `; ${load.duplicates.sameWorkflow}/${load.duplicates.sent} double submissions got the same workflow; ${load.retriedRequests} requests retried by the clients`,
        );
      },
    );

    // 6. Stop what served the load.
    await ui.stage("stop the executor, the proxy and the payment service (SIGTERM)", async () => {
      for (const c of [worker, proxy, payments]) {
        if (!c) continue;
        await children.stop(c, "SIGTERM");
        const { code, signal } = await c.exited;
        ui.info(`${c.name} (pid ${c.pid}) stopped: ${signal ?? `exit ${code}`}`);
      }
    });

    // 7. Exactly once, from the database.
    let sample = { order: "", sku: plan.scarce[0] ?? "sku-001", recovered: false };
    await ui.stage("exactly-once checks, computed from the database", async () => {
      const c = await db.connect();
      try {
        await c.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
        summary.checks = await runChecks(c, plan.stock, load!.outcomes);
        const [s] = (
          await c.query<{ id: string; recovered: boolean }>(
            "SELECT id, attempts > 1 AS recovered FROM txfn.workflows WHERE name = 'checkout' AND status = 'SUCCESS' ORDER BY attempts > 1 DESC, id LIMIT 1",
          )
        ).rows;
        const [sold] = (await c.query<{ sku: string }>("SELECT sku FROM shop.inventory WHERE stock = 0 ORDER BY sku LIMIT 1")).rows;
        await c.query("COMMIT");
        sample = { order: s?.id ?? plan.orders[0]!.id, sku: sold?.sku ?? sample.sku, recovered: s?.recovered ?? false };
      } finally {
        c.release();
      }
      const r = summary.checks;
      ui.info(
        `workflows: ${r.workflows.completed} SUCCESS, ${r.workflows.compensated} COMPENSATED, ${r.workflows.outOfStock} ERROR (OutOfStock), ` +
          `${r.workflows.pending} PENDING; ${r.recovered} were run by both executor lives`,
      );
      ui.info(`invocations per function: ${Object.entries(r.invocations.byFunction).map(([f, n]) => `${f} ${n}`).join(", ")}; steps run twice: ${r.invocations.duplicateSteps}`);
      ui.info(
        `payment ledger: ${r.payments.charges} charges (${r.payments.approved} approved, ${r.payments.declined} declined, ${r.payments.refunded} refunded) from ` +
          `${r.payments.requests} charge requests; double payments: ${r.payments.doublePayments}`,
      );
      ui.info(`payment requests by outcome: ${Object.entries(r.payments.byOutcome).map(([k, n]) => `${k} ${n}`).join(", ")}`);
      ui.info(`stock: ${r.stock.unitsSold} units sold, ${r.stock.soldOut.length} SKUs sold out (${r.stock.soldOut.join(", ") || "none"}), mismatches: ${r.stock.mismatches.length}`);
      if (r.failures.length) throw new DemoError(`exactly-once check failed:\n- ${r.failures.join("\n- ")}`);
      ui.info("all checks hold");
    });

    // 8. Provenance of one row.
    await ui.stage(`the provenance of one row: order ${sample.order}${sample.recovered ? ", one the crash interrupted" : ""}`, async () => {
      const args = ["history", "shop.orders", sample.order];
      ui.info(cyan(`$ ${commandLine(args)}`));
      const text = await children.runOk(args, env);
      ui.block(text);
      const versions = Number(/: (\d+) change/.exec(text)?.[1] ?? 0);
      summary.provenance = { table: "shop.orders", key: sample.order, command: commandLine(args), versions };
    }, { rerun: [byHand(`npx txfn history shop.orders ${sample.order}`)] });

    // 9. Faithful replay of the load.
    const replayArgs = ["replay", "--from", summary.load.from, "--to", summary.load.to];
    await ui.stage(
      "faithful replay of the load's trace in a scratch database: txfn replay",
      async () => {
        ui.info(cyan(`$ ${commandLine(replayArgs)}`));
        const report = await timeTravel(children, url, replayArgs);
        summary.replay = {
          invocations: report.trace.invocations,
          transactions: report.trace.transactions,
          same: report.counts.same,
          divergences: report.firstDivergence ? report.trace.invocations - report.counts.same : 0,
          runMs: report.timings.runMs,
          reconstructMs: report.timings.reconstructMs,
        };
        ui.info(
          `${describeCounts(report)} (${report.trace.external} outside transactions re-applied); reconstruct ${seconds(report.timings.reconstructMs)}, ` +
            `run ${seconds(report.timings.runMs)} (the original took ${seconds(report.timings.originalMs)})`,
        );
        for (const w of report.warnings) ui.info(`warning: ${w}`);
        if (report.firstDivergence) {
          const d = report.firstDivergence;
          const what = d.firstWriteDiff
            ? `write #${d.firstWriteDiff.index}: recorded ${JSON.stringify(d.firstWriteDiff.recorded)}, replayed ${JSON.stringify(d.firstWriteDiff.replayed)}`
            : `recorded ${JSON.stringify(d.recorded)}, replayed ${JSON.stringify(d.replayed)}`;
          throw new DemoError(`the replay diverged at invocation ${d.id} (${d.function}): ${d.outcome}: ${what}`);
        }
        if (report.trace.invocations === 0) throw new DemoError("the trace is empty: no invocation recorded during the load");
        ui.info("zero divergences: every output, error and write as recorded");
      },
      { rerun: [byHand(commandLine(replayArgs))] },
    );

    // 10–12. The oversell race, its replay, and retroaction.
    const oversellUrl = siblingUrl(url, oversellName);
    const project = relative(REPO_ROOT, OVERSELL_PROJECT);
    const fixed = relative(REPO_ROOT, OVERSELL_FIXED);
    let race: RaceResult | undefined;
    await ui.stage(`record the oversell race: the buggy split reserve (${project}) in database ${oversellName}`, async () => {
      await freshDatabase(url, oversellName, oversellHowTo);
      ui.info(cyan(`$ npx txfn deploy ${project}`) + dim("   # checkStock, then takeStock: two transactions"));
      await children.runOk(["deploy", project], { DATABASE_URL: oversellUrl });
      race = await runRace(oversellUrl);
      for (const s of race.shoppers) ui.info(`${s.name.padEnd(6)} checkStock(widget) saw ${s.saw} → takeStock: ${s.took ? `took it, ${s.left} left` : "did not take"}`);
      ui.info(red(`widget stock is now ${race.widgetStock} with ${race.widgetOrders} orders for it: oversold`));
    });

    const fromArg = race!.from.toISOString();
    const raceReplay = ["replay", "--from", fromArg, "--check", NO_OVERSELL];
    await ui.stage(
      "replay the race faithfully: the oversell comes back",
      async () => {
        ui.info(cyan(`$ ${commandLine(raceReplay)}`));
        const report = await timeTravel(children, oversellUrl, raceReplay);
        const check = report.checks[0];
        ui.info(`${describeCounts(report)}; check ${check?.ok ? "holds" : `fails: ${JSON.stringify(check?.rows)}`}`);
        if (report.firstDivergence) throw new DemoError(`the race's replay diverged at invocation ${report.firstDivergence.id} (${report.firstDivergence.function})`);
        if (!check || check.ok) throw new DemoError("the faithful replay did not reproduce the oversell (the check found no negative stock)");
        summary.oversell = {
          widgetStock: race!.widgetStock,
          widgetOrders: race!.widgetOrders,
          invocations: race!.invocations,
          replay: { divergences: 0, checkOk: false, rows: check.rows },
          retro: { checkOk: false, nowFails: 0, counts: {} },
        };
      },
      { rerun: [byHand(commandLine(raceReplay), oversellName)] },
    );

    const retroArgs = ["retro", "--from", fromArg, "--bundle", fixed, "--check", NO_OVERSELL];
    await ui.stage(
      `retroaction: the same trace with the fixed takeStock (${fixed})`,
      async () => {
        ui.info(cyan(`$ ${commandLine(retroArgs)}`));
        const report = await timeTravel(children, oversellUrl, retroArgs);
        const check = report.checks[0];
        ui.info(describeCounts(report));
        for (const inv of report.invocations) {
          ui.info(`  invocation ${inv.id} ${inv.function}: ${inv.outcome}${inv.replayed?.error ? ` (${(inv.replayed.error as { message?: string }).message})` : ""}`);
        }
        for (const t of report.finalState) ui.info(`  final state of ${t.table}: ${t.count} rows differ from the record`);
        ui.info(`check ${NO_OVERSELL}: ${check?.ok ? "holds, no oversell" : `still fails: ${JSON.stringify(check?.rows)}`}`);
        if (!check?.ok) throw new DemoError("retroaction with the fixed takeStock still oversells");
        summary.oversell!.retro = { checkOk: true, nowFails: report.counts["now fails"], counts: report.counts };
      },
      { rerun: [byHand(commandLine(retroArgs), oversellName)] },
    );

    await children.stopAll();
    summary.ok = true;
    summary.durationMs = ui.elapsedMs();
    ui.line();
    ui.line(renderSummary(summary));
    ui.line();
    ui.line(renderExplore(summary, !givenUrl, sample));
    if (opts.json) ui.line(JSON.stringify(summary));
    return 0;
  } catch (err) {
    await children.stopAll();
    ui.failure(err);
    summary.durationMs = ui.elapsedMs();
    if (opts.json) ui.line(JSON.stringify({ ...summary, error: err instanceof Error ? err.message : String(err) }));
    return 1;
  } finally {
    await pool?.end().catch(() => {});
    children.dispose();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

process.exitCode = await main();
