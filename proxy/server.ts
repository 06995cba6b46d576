/**
 * The thin HTTP proxy (`txfn serve`): fastify with pino logs in front of a pg pool.
 *
 *   POST /v1/functions/:name   one `txfn.invoke` round trip; Idempotency-Key header
 *   GET  /v1/invocations/:id   a recorded invocation
 *   GET  /healthz /readyz /metrics /openapi.json
 *
 * Statuses: 200 output (204 when the function returns nothing), 422 recorded application
 * error, 400 malformed JSON or input failing the function's schema, 401/403 auth, 404 unknown
 * function, 409 key reused with other input, 413 body too large, 415 not JSON, 503 + Retry-After
 * database unreachable (or shutting down), 504 request timeout. A repeated key gets the same
 * status and body, with `Idempotent-Replayed: true`.
 */
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import pg from "pg";
import pino from "pino";
import { parseItem } from "structured-headers";
import { isConnectionError } from "../client/index.ts";
import { Catalog } from "./catalog.ts";
import { resolveConfig, type ProxyConfig } from "./config.ts";
import { Invoker, httpFailure, type HttpFailure } from "./invoker.ts";
import { ProxyMetrics } from "./metrics.ts";
import { openApiDocument, type PathItems } from "./openapi.ts";
import { AuthError, TokenCache, allows, type TokenGrant } from "./tokens.ts";
import { Watcher } from "./watcher.ts";

declare module "fastify" {
  interface FastifyRequest {
    /** The bearer token's grant (routes under /v1). */
    grant: TokenGrant | null;
    /** Facts for the request's log line. */
    facts: Record<string, unknown> | null;
  }
}

/** The parsed body of a JSON request: the text as sent (passed to the database) and its value. */
export interface JsonBody {
  raw: string;
  value: unknown;
}

const JSON_TYPE = "application/json; charset=utf-8";
const MAX_KEY_LENGTH = 1000;

/** Everything a route added by another part of txfn (workflows) needs from the proxy. */
export interface ProxyContext {
  app: FastifyInstance;
  pool: pg.Pool;
  config: ProxyConfig;
  /** Route-level onRequest hook: 401 unless a valid bearer token; sets `request.grant`. */
  authenticate: (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
  /** Sends `{"error": {...}}` with the failure's status (and Retry-After). */
  fail: (reply: FastifyReply, failure: HttpFailure) => FastifyReply;
  /** The request body as JSON (null when there was none). */
  body: (req: FastifyRequest) => JsonBody;
  /** A recorded error as answers show it: `stack` properties removed unless --expose-stacks. */
  errorView: <T>(error: T) => T;
  /** The Idempotency-Key header: the key, null when absent, or the 400 to send. */
  key: (req: FastifyRequest) => string | null | HttpFailure;
}

/** A part of the proxy registered by another package (e.g. the workflow endpoints). */
export interface ProxyExtension {
  /** Adds routes; runs before the server listens. */
  register(ctx: ProxyContext): void | Promise<void>;
  /** OpenAPI path items of those routes. */
  openApiPaths?(): PathItems;
  /** Runs after the server stopped accepting and in-flight requests finished, before the pool closes. */
  close?(): Promise<void>;
}

/** A running proxy (what `startProxy` resolves to). */
export interface ProxyServer {
  /** http://host:port the server listens on. */
  readonly url: string;
  readonly app: FastifyInstance;
  readonly config: ProxyConfig;
  readonly pool: pg.Pool;
  /** Graceful stop: refuse new requests (503), finish in-flight ones, close the pool. Idempotent. */
  close(): Promise<void>;
}

/** One info line per request (fastify's own pair of lines is replaced). */
class RequestLog extends LogController {
  constructor(private readonly infoEnabled: boolean) {
    super();
  }
  override incomingRequest(): void {}
  override requestCompleted(error: Error | null | undefined, req: FastifyRequest, reply: FastifyReply): void {
    if (!error && !this.infoEnabled) return;
    const line = { method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 100) / 100, ...req.facts };
    if (error) reply.log.error({ ...line, err: error }, "request failed");
    else reply.log.info(line, "request");
  }
}

function badJson(message: string): Error {
  return Object.assign(new Error(message), { statusCode: 400, code: "TXFN_BAD_JSON" });
}

/**
 * Starts a proxy and resolves once it listens.
 * @throws ProxyConfigError for bad options; the listen error (e.g. EADDRINUSE).
 */
export async function startProxy(
  options: Partial<ProxyConfig> & { invokerUrl: string },
  extensions: ProxyExtension[] = [],
): Promise<ProxyServer> {
  const config = resolveConfig(options);
  // Asynchronous stdout: log lines written while a write is in flight go out together, so a
  // request does not cost a write syscall of its own. Flushed on close.
  const logStream = pino.destination({ dest: 1, sync: false });
  const app = Fastify({
    logger: { level: config.logLevel, stream: logStream },
    logController: new RequestLog(["info", "debug", "trace"].includes(config.logLevel)),
    bodyLimit: config.bodyLimitBytes,
    return503OnClosing: false, // answered below, with Retry-After
    forceCloseConnections: "idle",
  });
  const pool = new pg.Pool({
    connectionString: config.invokerUrl,
    max: config.poolSize,
    application_name: config.applicationName,
    // The request timeout, applied by the server to every statement; no extra round trip.
    options: `-c statement_timeout=${config.timeoutMs}`,
    connectionTimeoutMillis: config.timeoutMs,
    idleTimeoutMillis: 300_000,
  });
  pool.on("error", (err) => app.log.warn({ err }, "an idle database connection failed"));
  const metrics = new ProxyMetrics(pool, config.poolSize);
  const catalog = new Catalog(pool, 30_000, (err) => app.log.warn({ err }, "could not read the deployed functions"));
  const tokens = new TokenCache(pool, config.tokenCacheMs);
  const invoker = new Invoker(pool, { maxRetries: config.maxRetries, onRetry: () => metrics.retry() });
  const watcher = new Watcher(config.invokerUrl, config.applicationName, {
    deploys: () => void catalog.refresh().catch(() => {}),
    tokens: () => tokens.clear(),
    connected: () => {
      tokens.clear();
      void catalog.refresh().catch(() => {});
    },
    error: (err) => app.log.warn({ err }, "lost the LISTEN connection (deploys, tokens); reconnecting"),
  });
  let closing = false;

  app.decorateRequest("grant", null);
  app.decorateRequest("facts", null);

  const fail = (reply: FastifyReply, f: HttpFailure): FastifyReply => {
    const { status, retryAfter, ...error } = f;
    if (retryAfter !== undefined) reply.header("retry-after", String(retryAfter));
    return reply.code(status).type(JSON_TYPE).send(JSON.stringify({ error }));
  };
  const failFrom = (req: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply => {
    const f = httpFailure(err);
    if (f.status >= 500) req.log.warn({ err }, f.message);
    return fail(reply, f);
  };

  // The body is kept as text: it becomes the jsonb input unchanged (every digit the caller sent).
  app.removeAllContentTypeParsers(); // anything but JSON is 415

  app.addContentTypeParser("application/json", { parseAs: "string" }, (_req, text, done) => {
    const raw = String(text);
    if (raw.trim() === "") return done(null, { raw: "null", value: null } satisfies JsonBody);
    try {
      done(null, { raw, value: JSON.parse(raw) } satisfies JsonBody);
    } catch (err) {
      done(badJson(`the body is not valid JSON: ${(err as Error).message}`), undefined);
    }
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    if (err.code === "TXFN_BAD_JSON") return fail(reply, { status: 400, code: "bad_json", message: err.message });
    if (err.statusCode === 413) return fail(reply, { status: 413, code: "payload_too_large", message: `the body is larger than the limit of ${config.bodyLimitBytes} bytes` });
    if (err.statusCode === 415) return fail(reply, { status: 415, code: "unsupported_media_type", message: "send the input as Content-Type: application/json" });
    if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
      return fail(reply, { status: err.statusCode, code: "bad_request", message: err.message });
    }
    return failFrom(req, reply, err);
  });
  app.setNotFoundHandler((req, reply) => fail(reply, { status: 404, code: "not_found", message: `no route ${req.method} ${req.url.split("?")[0]}` }));

  // Callback-style hooks: no promise per request on the hot path.
  app.addHook("onRequest", (_req, reply, done) => {
    if (!closing) return done();
    reply.header("connection", "close");
    fail(reply, { status: 503, code: "shutting_down", message: "the server is shutting down; retry (with the same Idempotency-Key)", retryAfter: 1 });
  });
  app.addHook("onSend", (_req, reply, payload, done) => {
    if (closing) reply.header("connection", "close"); // let keep-alive clients go while we drain
    done(null, payload);
  });
  app.addHook("onResponse", (req, reply, done) => {
    metrics.request(req.routeOptions.url ?? "unmatched", req.method, reply.statusCode, reply.elapsedTime / 1000);
    done();
  });

  const authenticate = async (req: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    try {
      req.grant = await tokens.authenticate(req.headers.authorization);
    } catch (err) {
      if (!(err instanceof AuthError)) return failFrom(req, reply, err);
      const challenge = err.reason === "missing" ? 'Bearer realm="txfn"' : `Bearer realm="txfn", error="invalid_token", error_description="${err.message}"`;
      reply.header("www-authenticate", challenge);
      return fail(reply, { status: 401, code: err.reason === "missing" ? "unauthorized" : "invalid_token", message: err.message });
    }
    return undefined;
  };
  const body = (req: FastifyRequest): JsonBody => (req.body as JsonBody | undefined) ?? { raw: "null", value: null };

  const stripStack = <T,>(error: T): T => (config.exposeStacks ? error : (withoutStacks(error) as T));

  app.post<{ Params: { name: string } }>(
    "/v1/functions/:name",
    {
      onRequest: async (req, reply) => {
        const denied = await authenticate(req, reply);
        if (denied) return denied;
        if (!allows(req.grant!, "function", req.params.name)) {
          reply.header("www-authenticate", 'Bearer realm="txfn", error="insufficient_scope"');
          return fail(reply, { status: 403, code: "forbidden", message: `this token may not invoke ${req.params.name}` });
        }
        return undefined;
      },
    },
    async (req, reply) => {
      const name = req.params.name;
      req.facts = { fn: name };
      const key = idempotencyKey(req.headers["idempotency-key"]);
      if (key !== null && typeof key === "object") return fail(reply, key);
      let fn;
      try {
        fn = await catalog.find(name);
      } catch (err) {
        return failFrom(req, reply, err);
      }
      if (!fn) {
        const visible = catalog.functions().filter((f) => allows(req.grant!, "function", f.name)).map((f) => f.name);
        return fail(reply, {
          status: 404,
          code: "function_not_found",
          message: catalog.version === null ? "nothing is deployed to this database" : `no function ${name} in the active bundle (version ${catalog.version})`,
          ...(visible.length ? { hint: `this token may call: ${visible.join(", ")}` } : {}),
        });
      }
      const input = body(req);
      const problems = catalog.validate(fn, input.value);
      if (problems.length) {
        return fail(reply, {
          status: 400,
          code: "invalid_input",
          message: `the input does not match ${name}'s input schema: ${problems.map((p) => `${p.path} ${p.message}`).join("; ")}`,
          details: problems,
        } as HttpFailure);
      }
      let env;
      try {
        env = await invoker.invoke({ fn, inputJson: input.raw, key, ...(config.timeoutMs ? { deadline: Date.now() + config.timeoutMs } : {}) });
      } catch (err) {
        return failFrom(req, reply, err);
      }
      catalog.noteVersion(env.version);
      metrics.invocation(!env.error, env.replayed);
      req.facts = { fn: name, invocationId: env.invocationId, replayed: env.replayed, ...(env.attempts > 1 ? { attempts: env.attempts } : {}) };
      reply.header("txfn-invocation-id", env.invocationId).header("txfn-version", String(env.version)).header("idempotent-replayed", String(env.replayed));
      if (env.error) return reply.code(422).type(JSON_TYPE).send(JSON.stringify({ error: stripStack(env.error) }));
      if (!("output" in env)) return reply.code(204).send();
      return reply.code(200).type(JSON_TYPE).send(JSON.stringify(env.output));
    },
  );

  app.get<{ Params: { id: string } }>("/v1/invocations/:id", { onRequest: authenticate }, async (req, reply) => {
    const id = req.params.id;
    if (!/^[1-9][0-9]{0,17}$/.test(id)) return fail(reply, { status: 400, code: "bad_id", message: `invocation id must be a positive integer, got ${JSON.stringify(id)}` });
    let row: Record<string, unknown> | undefined;
    try {
      row = await readInvocation(pool, id);
    } catch (err) {
      return failFrom(req, reply, err);
    }
    if (!row || !allows(req.grant!, "function", row.function as string)) {
      return fail(reply, { status: 404, code: "invocation_not_found", message: `no invocation ${id} of a function this token may call` });
    }
    if (row.error) row.error = stripStack(row.error);
    return reply.type(JSON_TYPE).send(JSON.stringify(row));
  });

  app.get("/healthz", async (_req, reply) => reply.type(JSON_TYPE).send('{"status":"ok"}'));
  app.get("/readyz", async (_req, reply) => {
    try {
      await ping(pool, 2_000);
      if (!catalog.loaded) await catalog.refresh();
    } catch (err) {
      return fail(reply, { status: 503, code: "not_ready", message: `the database does not answer: ${(err as Error).message}`, retryAfter: 1 });
    }
    return reply.type(JSON_TYPE).send(JSON.stringify({ status: "ready", version: catalog.version, listening: watcher.connected }));
  });
  app.get("/metrics", async (_req, reply) => {
    const m = await metrics.render();
    return reply.type(m.contentType).send(m.body);
  });
  app.get("/openapi.json", async (req, reply) => {
    try {
      if (!catalog.loaded) await catalog.refresh();
    } catch (err) {
      return failFrom(req, reply, err);
    }
    const extra = Object.assign({}, ...extensions.map((e) => e.openApiPaths?.() ?? {})) as PathItems;
    return reply.type(JSON_TYPE).send(JSON.stringify(openApiDocument(catalog.version, catalog.functions(), extra)));
  });

  const ctx: ProxyContext = { app, pool, config, authenticate, fail, body, errorView: stripStack, key: (req) => idempotencyKey(req.headers["idempotency-key"]) };
  const registered: ProxyExtension[] = [];
  try {
    for (const ext of extensions) {
      registered.push(ext);
      await ext.register(ctx);
    }
  } catch (err) {
    for (const ext of registered) await ext.close?.().catch(() => {});
    await pool.end().catch(() => {});
    throw err;
  }

  // The database may be down at start: serve 503s until it answers.
  await catalog.refresh().catch(() => {});
  watcher.start();
  try {
    await app.listen({ port: config.port, host: config.host });
  } catch (err) {
    for (const ext of extensions) await ext.close?.().catch(() => {});
    await watcher.stop();
    await pool.end().catch(() => {});
    throw err;
  }
  const addr = app.server.address();
  const port = typeof addr === "object" && addr ? addr.port : config.port;
  const host = config.host.includes(":") ? `[${config.host}]` : config.host;

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      closing = true;
      const force = setTimeout(() => app.server.closeAllConnections(), config.shutdownTimeoutMs);
      try {
        await app.close();
      } finally {
        clearTimeout(force);
      }
      for (const ext of extensions) await ext.close?.();
      await watcher.stop();
      await pool.end();
      try {
        logStream.flushSync();
      } catch {
        // stdout closed or busy: nothing more to do
      }
    })();
    return closed;
  };
  return { url: `http://${host}:${port}`, app, config, pool, close };
}

/** `value` without `stack` properties at any depth (recorded errors nest: a step's failure inside a workflow's). */
function withoutStacks(value: unknown, depth = 0): unknown {
  if (depth > 20 || value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((v) => withoutStacks(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (k !== "stack") out[k] = withoutStacks(v, depth + 1);
  return out;
}

/**
 * The Idempotency-Key header: a string of 1–1000 characters. The IETF draft
 * (draft-ietf-httpapi-idempotency-key-header) makes it a quoted structured-field string: one pair
 * of surrounding quotes is removed; a bare value is accepted as is; a quote at one end only is
 * refused (400), so `"q1` never counts as a key other than the client meant.
 */
function idempotencyKey(header: string | string[] | undefined): string | null | HttpFailure {
  if (header === undefined) return null;
  if (Array.isArray(header)) return { status: 400, code: "bad_idempotency_key", message: "send one Idempotency-Key header" };
  const key = header.startsWith('"') ? structuredString(header) : header;
  if (typeof key !== "string") return key;
  if (key.endsWith('"')) {
    return { status: 400, code: "bad_idempotency_key", message: "Idempotency-Key has an unbalanced quote: send \"key\" or key" };
  }
  if (key === "" || key.length > MAX_KEY_LENGTH) {
    return { status: 400, code: "bad_idempotency_key", message: `Idempotency-Key must be 1 to ${MAX_KEY_LENGTH} characters` };
  }
  return key;
}

/**
 * A quoted Idempotency-Key is an RFC 8941 sf-string (draft-ietf-httpapi-idempotency-key-header):
 * `"a\"b"` is the key `a"b`. Parameters after it are ignored, as RFC 8941 asks for unknown ones.
 */
function structuredString(header: string): string | HttpFailure {
  let value: unknown;
  try {
    [value] = parseItem(header);
  } catch (err) {
    const unbalanced = header.length < 2 || !/"(\s*;.*)?$/.test(header.slice(1));
    const why = unbalanced ? "has an unbalanced quote: send \"key\" or key" : `is not a valid quoted string (RFC 8941: ${(err as Error).message})`;
    return { status: 400, code: "bad_idempotency_key", message: `Idempotency-Key ${why}` };
  }
  if (typeof value !== "string") return { status: 400, code: "bad_idempotency_key", message: "Idempotency-Key must be a string" };
  return value;
}

/** SELECT 1 on a pooled connection, failing after `ms` (a connection obtained later is released). */
async function ping(pool: pg.Pool, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  const connecting = pool.connect();
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      reject(new Error(`no connection within ${ms} ms`));
    }, ms);
  });
  try {
    const conn = await Promise.race([connecting, timeout]);
    let broken: Error | undefined;
    try {
      await conn.query("SELECT 1");
    } catch (err) {
      broken = err as Error;
      throw err;
    } finally {
      conn.release(broken);
    }
  } finally {
    clearTimeout(timer);
    if (timedOut) connecting.then((c) => c.release(), () => {});
  }
}

async function readInvocation(pool: pg.Pool, id: string): Promise<Record<string, unknown> | undefined> {
  const conn = await pool.connect();
  let broken: Error | undefined;
  try {
    const r = await conn.query({
      name: "txfn_proxy_invocation",
      text:
        'SELECT id::text AS "id", function AS "function", version AS "version", status AS "status", ' +
        'idempotency_key AS "idempotencyKey", input AS "input", output AS "output", error AS "error", ' +
        'workflow_id AS "workflowId", workflow_step AS "workflowStep", started_at AS "startedAt", ended_at AS "endedAt" ' +
        "FROM txfn.invocations WHERE id = $1 AND status <> 'running'",
      values: [id],
    });
    const row = r.rows[0] as Record<string, unknown> | undefined;
    if (row) {
      if (row.status === "ok") delete row.error;
      else delete row.output;
    }
    return row;
  } catch (err) {
    if (isConnectionError(err)) broken = err as Error;
    throw err;
  } finally {
    conn.release(broken);
  }
}
