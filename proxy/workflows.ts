/**
 * The workflow endpoints of the proxy, on the workflow engine's API (workflows/):
 *
 *   POST /v1/workflows/:name   start a workflow; the JSON body is its input; Idempotency-Key = its id
 *   GET  /v1/workflows/:id     its state: status, output or error, steps so far
 *
 * With workflows registered here (`txfn serve --workflows <dir>`), the proxy embeds an executor
 * (`startExecutor`) and a workflow it knows starts running at once in this process; any other
 * name is enqueued through `WorkflowClient` for an executor that has registered it (`txfn
 * worker`; live, or stopped within the last hour). A name no executor has registered is refused:
 * 404 `workflow_not_found`, the message listing the known names (as an unknown function is a
 * 404), unless the endpoints were made with `allowUnregistered`. Tokens must list the workflow
 * (`txfn token create --workflows w`). Answers: 202 + Location while it runs; with `Prefer:
 * wait=<seconds>`, 200 once it has ended within that time; 400 bad name or id; 403 not allowed;
 * 404 no such workflow (or one the token may not see), or an unknown workflow name; 409 the id
 * exists with another workflow or input; 503 database unavailable.
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import {
  WorkflowClient,
  WorkflowConflictError,
  WorkflowFailedError,
  WorkflowNotFoundError,
  WorkflowOptionsError,
  WorkflowStateError,
  WorkflowTimeoutError,
  startExecutor,
  type Executor,
  type ExecutorTuning,
  type LoadedProject,
  type WorkflowDefinition,
  type WorkflowHandle,
  type WorkflowInfo,
} from "../workflows/index.ts";
import { httpFailure } from "./invoker.ts";
import type { PathItems } from "./openapi.ts";
import type { ProxyContext, ProxyExtension } from "./server.ts";
import { allows } from "./tokens.ts";

/** Options of `workflowEndpoints`. */
export interface WorkflowEndpointOptions {
  /**
   * Workflows to run in this process (an embedded executor): a loaded project
   * (`loadProject(dir)`) or definitions. Omitted: the proxy only starts and reads workflows, and
   * executors elsewhere (`txfn worker`) run them.
   */
  workflows?: LoadedProject | readonly WorkflowDefinition[];
  /** Transaction function namespaces for definitions given directly (see ExecutorOptions.functions). */
  functions?: readonly Record<string, unknown>[];
  /**
   * Enqueue a workflow whose name no executor has registered (for a worker not up yet) instead of
   * answering 404 workflow_not_found. Default false.
   */
  allowUnregistered?: boolean;
  /** Tuning of the embedded executor (lease, poll, concurrency…); `migrate` is false (the proxy's role cannot migrate). */
  executor?: Omit<ExecutorTuning, "migrate" | "logger">;
}

const JSON_TYPE = "application/json; charset=utf-8";
const MAX_WAIT_S = 300;

/** `Prefer: wait=<seconds>` (RFC 7240), at most MAX_WAIT_S; undefined when absent. */
function preferWait(header: string | string[] | undefined): number | undefined {
  const text = Array.isArray(header) ? header.join(",") : header;
  const m = text ? /(?:^|[,;\s])wait=(\d+)/i.exec(text) : null;
  return m ? Math.min(Number(m[1]), MAX_WAIT_S) : undefined;
}

/** The proxy extension that serves workflows; pass it to `startProxy(config, [workflowEndpoints()])`. */
export function workflowEndpoints(options: WorkflowEndpointOptions = {}): ProxyExtension {
  let client: WorkflowClient | undefined;
  let executor: Executor | undefined;
  let names: string[] = [];

  const view = (ctx: ProxyContext, info: WorkflowInfo): Record<string, unknown> => ({
    ...info,
    error: ctx.errorView(info.error),
    ...(info.status === "SUCCESS" ? {} : { output: undefined }),
  });

  return {
    async register(ctx: ProxyContext): Promise<void> {
      const { app, config, authenticate, fail, body } = ctx;
      client = new WorkflowClient({ databaseUrl: config.invokerUrl, poolSize: 2, applicationName: `${config.applicationName} (workflows)` });
      if (options.workflows) {
        executor = await startExecutor({
          ...options.executor,
          databaseUrl: config.invokerUrl,
          workflows: options.workflows,
          ...(options.functions ? { functions: options.functions } : {}),
          migrate: false,
          logger: app.log.child({ component: "workflows" }),
        });
        names = Array.isArray(options.workflows)
          ? (options.workflows as WorkflowDefinition[]).map((d) => d.name)
          : (options.workflows as LoadedProject).workflows.map((w) => w.definition.name);
      }

      const failWorkflow = (req: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply => {
        if (err instanceof WorkflowOptionsError) return fail(reply, { status: 400, code: "bad_workflow_request", message: err.message });
        if (err instanceof WorkflowConflictError) return fail(reply, { status: 409, code: "workflow_id_reused", message: err.message });
        if (err instanceof WorkflowNotFoundError) return fail(reply, { status: 404, code: "workflow_not_found", message: err.message });
        if (err instanceof WorkflowStateError) return fail(reply, { status: 503, code: "shutting_down", message: err.message, retryAfter: 1 });
        const f = httpFailure(err);
        if (f.status >= 500) req.log.warn({ err }, f.message);
        return fail(reply, f);
      };

      /** 200 with the final state when it has ended (within `wait` seconds), else 202 + Location. */
      const answer = async (reply: FastifyReply, handle: WorkflowHandle, wait: number | undefined): Promise<FastifyReply> => {
        if (wait !== undefined && wait > 0) {
          try {
            await handle.result({ timeoutMs: wait * 1000 });
          } catch (err) {
            if (!(err instanceof WorkflowFailedError) && !(err instanceof WorkflowTimeoutError)) throw err;
          }
        }
        const info = await handle.info();
        const done = info.status !== "PENDING";
        if (!done) reply.header("location", `/v1/workflows/${encodeURIComponent(info.id)}`);
        return reply.code(done ? 200 : 202).type(JSON_TYPE).send(JSON.stringify(view(ctx, info)));
      };

      app.post<{ Params: { name: string } }>(
        "/v1/workflows/:name",
        {
          onRequest: async (req, reply) => {
            const denied = await authenticate(req, reply);
            if (denied) return denied;
            if (!allows(req.grant!, "workflow", req.params.name)) {
              reply.header("www-authenticate", 'Bearer realm="txfn", error="insufficient_scope"');
              return fail(reply, { status: 403, code: "forbidden", message: `this token may not start workflow ${req.params.name}` });
            }
            return undefined;
          },
        },
        async (req, reply) => {
          const name = req.params.name;
          req.facts = { workflow: name };
          const key = ctx.key(req);
          if (key !== null && typeof key === "object") return fail(reply, key);
          const input = body(req).value;
          try {
            const start = key !== null ? { id: key } : {};
            const handle =
              executor && names.includes(name)
                ? await executor.start(name, input, start)
                : await client!.start(name, input, { ...start, ...(options.allowUnregistered ? { allowUnregistered: true } : {}) });
            req.facts = { workflow: name, workflowId: handle.workflowId };
            return await answer(reply, handle, preferWait(req.headers.prefer));
          } catch (err) {
            return failWorkflow(req, reply, err);
          }
        },
      );

      app.get<{ Params: { id: string } }>("/v1/workflows/:id", { onRequest: authenticate }, async (req, reply) => {
        try {
          const info = await client!.get(req.params.id);
          if (!allows(req.grant!, "workflow", info.name)) throw new WorkflowNotFoundError(`no workflow ${JSON.stringify(req.params.id)} this token may see`);
          req.facts = { workflow: info.name, workflowId: info.id };
          return await answer(reply, client!.handle(info.id), preferWait(req.headers.prefer));
        } catch (err) {
          if (err instanceof WorkflowNotFoundError) {
            return fail(reply, { status: 404, code: "workflow_not_found", message: `no workflow ${JSON.stringify(req.params.id)} this token may see` });
          }
          return failWorkflow(req, reply, err);
        }
      });
    },

    openApiPaths(): PathItems {
      const state = { content: { "application/json": { schema: { type: "object", description: "the workflow: id, name, status (PENDING, SUCCESS, ERROR, CANCELLED, COMPENSATED), input, output, error, times" } } } };
      const prefer = { name: "Prefer", in: "header", required: false, description: "wait=<seconds>: answer 200 once the workflow has ended within that time", schema: { type: "string" } };
      const responses = (extra: Record<string, unknown>) => ({
        "200": { description: "the workflow has ended", ...state },
        "202": { description: "the workflow is running; poll the Location", headers: { Location: { schema: { type: "string" } } }, ...state },
        ...extra,
        "401": { description: "missing, unknown, revoked or expired bearer token" },
        "503": { description: "the database is unavailable; retry" },
      });
      // One path item: OpenAPI treats /v1/workflows/{name} and /v1/workflows/{id} as the same path.
      const paths: PathItems = {
        "/v1/workflows/{workflow}": {
          post: {
            operationId: "startWorkflow",
            summary: `start a workflow${names.length ? ` (run here: ${names.join(", ")})` : ""}; the same Idempotency-Key returns the same workflow`,
            parameters: [
              { name: "workflow", in: "path", required: true, description: "the workflow's name", schema: names.length ? { type: "string", examples: names } : { type: "string" } },
              { $ref: "#/components/parameters/IdempotencyKey" },
              prefer,
            ],
            requestBody: { required: false, content: { "application/json": { schema: {} } } },
            responses: responses({
              "400": { description: "bad name, id or JSON" },
              "403": { description: "the token does not allow this workflow" },
              "404": { description: "unknown workflow: no executor has registered this name (code workflow_not_found)" },
              "409": { description: "the id exists with another workflow or input" },
            }),
          },
          get: {
            operationId: "getWorkflow",
            summary: "a workflow's state",
            parameters: [{ name: "workflow", in: "path", required: true, description: "the workflow's id", schema: { type: "string" } }, prefer],
            responses: responses({ "404": { description: "no such workflow, or one the token may not see" } }),
          },
        },
      };
      return paths;
    },

    async close(): Promise<void> {
      await executor?.stop();
      await client?.close();
    },
  };
}
