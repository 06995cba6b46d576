/** `txfn serve`: the thin HTTP proxy in front of the database (proxy/). */
import type { Command } from "commander";
import { databaseUrl } from "../../db/connection.ts";
// proxy/config.ts has no dependencies; the server loads fastify, ajv and prom-client (~0.5 s),
// so it is imported only when `serve` runs, not for every txfn command.
import { DEFAULTS as PROXY_DEFAULTS, LOG_LEVELS, type LogLevel } from "../../proxy/config.ts";
import { CliError } from "../errors.ts";

interface ServeOptions {
  port: string;
  host: string;
  poolSize: string;
  role: string;
  invokerUrl?: string;
  timeout: string;
  bodyLimit: string;
  shutdownTimeout: string;
  retries: string;
  tokenCache: string;
  logLevel: string;
  exposeStacks?: boolean;
  workflows?: string;
  executorId?: string;
}

function int(option: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new CliError(`${option} must be an integer from ${min} to ${max}, got ${JSON.stringify(text)}`);
  }
  return n;
}

/** Registers `txfn serve` (options with units in their help; errors as CliError naming the option). */
export function registerServeCommands(program: Command): void {
  const d = PROXY_DEFAULTS;
  program
    .command("serve")
    .description(
      "serve the deployed functions over HTTP: POST /v1/functions/<name> (JSON body, Idempotency-Key header, " +
        "bearer token from `txfn token create`) runs one txfn.invoke; POST /v1/workflows/<name> starts a workflow and " +
        "GET /v1/workflows/<id> reads it; also GET /v1/invocations/<id>, /healthz, /readyz, " +
        "/metrics (Prometheus), /openapi.json. Functions run as a non-superuser role (--role, or --invoker-url). " +
        "SIGTERM/SIGINT: stop accepting, finish in-flight requests, close the pool.",
    )
    .option("--port <n>", "TCP port; 0 = any free port (the URL is printed)", String(d.port))
    .option("--host <address>", "address to listen on (0.0.0.0 = every interface)", d.host)
    .option("--pool-size <n>", "database connections in the pool = invocations running at once", String(d.poolSize))
    .option(
      "--role <name>",
      "non-superuser login role the functions run as; created or updated (LOGIN, member of txfn_invoker) through DATABASE_URL / the private cluster",
      "txfn_proxy",
    )
    .option("--invoker-url <url>", "connect as the role of this URL instead (made by you: non-superuser, GRANT txfn_invoker); env TXFN_INVOKER_URL")
    .option("--timeout <ms>", "request timeout in milliseconds: each invocation's statement_timeout and the longest wait for a free connection; 0 = none", String(d.timeoutMs))
    .option("--body-limit <bytes>", "largest request body in bytes (larger gets 413)", String(d.bodyLimitBytes))
    .option("--shutdown-timeout <ms>", "on SIGTERM, the longest wait in milliseconds for in-flight requests before connections are cut", String(d.shutdownTimeoutMs))
    .option("--retries <n>", "retries per request of transient database errors (serialization failure, deadlock, lost connection), same key", String(d.maxRetries))
    .option("--token-cache <ms>", "how long in milliseconds a token lookup is reused when no change notification arrives", String(d.tokenCacheMs))
    .option("--log-level <level>", `pino log level on stdout (${LOG_LEVELS.join(", ")})`, d.logLevel)
    .option("--expose-stacks", "include the recorded stack (source file:line) of application errors in 422 responses")
    .option(
      "--workflows <dir>",
      "run the workflows of this function project here (an embedded executor, like `txfn worker <dir>`); without it, " +
        "started workflows wait for a `txfn worker` that has them",
    )
    .option("--executor-id <id>", "with --workflows: stable executor id, so a restart recovers its workflows at once")
    .action(async (opts: ServeOptions) => {
      const { ProxyConfigError, ProxyRoleError, checkInvokerRole, provisionInvokerRole, startProxy, workflowEndpoints } = await import("../../proxy/index.ts");
      const { WorkflowError, WorkflowOptionsError, loadProject } = await import("../../workflows/index.ts");
      if (opts.executorId !== undefined && opts.workflows === undefined) throw new CliError("--executor-id needs --workflows <dir>");
      if (!(LOG_LEVELS as readonly string[]).includes(opts.logLevel)) throw new CliError(`--log-level must be one of ${LOG_LEVELS.join(", ")}`);
      const config = {
        port: int("--port", opts.port, 0, 65535),
        host: opts.host,
        poolSize: int("--pool-size", opts.poolSize, 1, 1000),
        timeoutMs: int("--timeout", opts.timeout, 0, 2_147_483_647),
        bodyLimitBytes: int("--body-limit", opts.bodyLimit, 1, 1 << 30),
        shutdownTimeoutMs: int("--shutdown-timeout", opts.shutdownTimeout, 0, 3_600_000),
        maxRetries: int("--retries", opts.retries, 0, 100),
        tokenCacheMs: int("--token-cache", opts.tokenCache, 0, 86_400_000),
        logLevel: opts.logLevel as LogLevel,
        exposeStacks: opts.exposeStacks === true,
      };
      let invokerUrl = opts.invokerUrl ?? process.env.TXFN_INVOKER_URL;
      let role: string;
      try {
        if (invokerUrl) role = await checkInvokerRole(invokerUrl);
        else {
          invokerUrl = await provisionInvokerRole(await databaseUrl({ log: (m) => console.error(m) }), opts.role);
          role = opts.role;
        }
      } catch (err) {
        if (err instanceof ProxyRoleError) throw new CliError(err.message);
        throw err;
      }
      let server;
      try {
        const project = opts.workflows === undefined ? undefined : await loadProject(opts.workflows);
        const workflows = workflowEndpoints({
          ...(project ? { workflows: project } : {}),
          ...(opts.executorId !== undefined ? { executor: { executorId: opts.executorId } } : {}),
        });
        server = await startProxy({ ...config, invokerUrl }, [workflows]);
        if (project) console.error(`txfn serve: running workflows ${project.workflows.map((w) => w.definition.name).join(", ")}`);
      } catch (err) {
        if (err instanceof ProxyConfigError || err instanceof WorkflowOptionsError || err instanceof WorkflowError) throw new CliError(err.message);
        const e = err as { code?: string; hostname?: string; syscall?: string };
        if (e.code === "EADDRINUSE") throw new CliError(`${config.host}:${config.port} is already in use`, "choose another --port (0 = any free one)");
        const hostHint = "--host takes an address of this machine, or a name that resolves to one: 127.0.0.1 (the default), 0.0.0.0 for every interface";
        if ((e.code === "ENOTFOUND" || e.code === "EAI_AGAIN") && e.hostname === config.host) throw new CliError(`cannot listen on --host ${config.host}: not an IP address, nor a name that resolves`, hostHint);
        if (e.code === "EADDRNOTAVAIL") throw new CliError(`cannot listen on --host ${config.host}: not an address of this machine`, hostHint);
        if (e.code === "EACCES" && e.syscall === "listen") throw new CliError(`cannot listen on ${config.host}:${config.port}: permission denied (ports below 1024 need privileges)`, "choose another --port (0 = any free one)");
        throw err;
      }
      console.error(
        `txfn serve: listening on ${server.url} (functions run as ${role}; pool ${config.poolSize}; timeout ${config.timeoutMs} ms; body limit ${config.bodyLimitBytes} bytes)`,
      );
      const signal = await new Promise<NodeJS.Signals>((resolve) => {
        process.once("SIGTERM", resolve);
        process.once("SIGINT", resolve);
      });
      console.error(`txfn serve: ${signal}: finishing in-flight requests (at most ${config.shutdownTimeoutMs} ms), then closing`);
      const again = () => {
        console.error("txfn serve: second signal, exiting now");
        process.exit(1);
      };
      process.once("SIGTERM", again);
      process.once("SIGINT", again);
      await server.close();
      console.error("txfn serve: stopped");
    });
}
