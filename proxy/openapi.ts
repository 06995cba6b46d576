/**
 * The OpenAPI 3.1 document of a proxy, generated from the active bundle's manifest: one
 * `POST /v1/functions/<name>` per function with its input schema as the request body and its
 * output schema as the 200 response (JSON Schema 2020-12, which OpenAPI 3.1 uses as is).
 */
import type { CatalogFunction, JsonSchema } from "./catalog.ts";

const ERROR_SCHEMA: JsonSchema = {
  type: "object",
  required: ["error"],
  properties: {
    error: {
      type: "object",
      required: ["code", "message"],
      properties: {
        code: { type: "string", description: "stable machine-readable reason, e.g. function_not_found, invalid_input" },
        message: { type: "string" },
        hint: { type: "string" },
        sqlstate: { type: "string" },
        details: { type: "array", items: { type: "object", properties: { path: { type: "string" }, message: { type: "string" } } } },
      },
    },
  },
};

const RECORDED_ERROR_SCHEMA: JsonSchema = {
  type: "object",
  required: ["error"],
  properties: {
    error: {
      type: "object",
      description: "the application error recorded with the invocation (runtime-sql/README.md, Recorded errors)",
      required: ["name", "message"],
      properties: {
        name: { type: "string" },
        message: { type: "string" },
        sqlstate: { type: "string" },
        condition: { type: "string" },
        detail: { type: "string" },
        hint: { type: "string" },
        constraint: { type: "string" },
        data: { type: "object" },
        stack: { type: "string" },
      },
    },
  },
};

const INVOCATION_SCHEMA: JsonSchema = {
  type: "object",
  required: ["id", "function", "status", "startedAt"],
  properties: {
    id: { type: "string" },
    function: { type: "string" },
    version: { type: ["integer", "null"] },
    status: { enum: ["ok", "error"] },
    idempotencyKey: { type: ["string", "null"] },
    input: {},
    output: {},
    error: { type: "object" },
    workflowId: { type: ["string", "null"] },
    workflowStep: { type: ["integer", "null"] },
    startedAt: { type: "string", format: "date-time" },
    endedAt: { type: ["string", "null"], format: "date-time" },
  },
};

const error = (description: string, headers?: Record<string, unknown>) => ({
  description,
  ...(headers ? { headers } : {}),
  content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
});

const RETRY_AFTER = { "Retry-After": { description: "seconds to wait before retrying", schema: { type: "integer" } } };

const COMMON_ERRORS = {
  "401": error("missing, unknown, revoked or expired bearer token"),
  "403": error("the token does not allow this function"),
  "503": error("the database is unreachable or overloaded; nothing was recorded: retry with the same Idempotency-Key", RETRY_AFTER),
};

function functionPath(fn: CatalogFunction): Record<string, unknown> {
  const invocationHeaders = {
    "Txfn-Invocation-Id": { description: "id of the recorded invocation (GET /v1/invocations/{id})", schema: { type: "string" } },
    "Txfn-Version": { description: "bundle version that ran", schema: { type: "integer" } },
    "Idempotent-Replayed": { description: "true when the outcome was recorded by an earlier request with the same key", schema: { enum: ["true", "false"] } },
  };
  const ok =
    fn.outputSchema === null
      ? { "204": { description: "the function returned nothing", headers: invocationHeaders } }
      : { "200": { description: "the function's output", headers: invocationHeaders, content: { "application/json": { schema: fn.outputSchema } } } };
  return {
    post: {
      operationId: fn.name,
      summary: `invoke ${fn.name} (${fn.isolation}${fn.readOnly ? ", read-only" : ""})`,
      parameters: [{ $ref: "#/components/parameters/IdempotencyKey" }],
      requestBody: { required: false, content: { "application/json": { schema: fn.inputSchema } } },
      responses: {
        ...ok,
        "400": error("malformed JSON, or input that does not match the input schema"),
        ...COMMON_ERRORS,
        "404": error("no such function in the active bundle"),
        "409": error("the Idempotency-Key was used with another function or another input"),
        "413": error("request body larger than the configured limit"),
        "415": error("the body is not application/json"),
        "422": { description: "the recorded application error", headers: invocationHeaders, content: { "application/json": { schema: { $ref: "#/components/schemas/RecordedError" } } } },
        "504": error("the request timeout expired; nothing was recorded"),
      },
    },
  };
}

/** Extra paths contributed by other parts of the proxy (e.g. workflows). */
export type PathItems = Record<string, Record<string, unknown>>;

/** The document for `functions` of bundle `version` (null = nothing deployed). */
export function openApiDocument(version: number | null, functions: CatalogFunction[], extraPaths: PathItems = {}): Record<string, unknown> {
  const paths: Record<string, unknown> = {};
  for (const fn of [...functions].sort((a, b) => a.name.localeCompare(b.name))) {
    paths[`/v1/functions/${encodeURIComponent(fn.name)}`] = functionPath(fn);
  }
  paths["/v1/invocations/{id}"] = {
    get: {
      operationId: "getInvocation",
      summary: "a recorded invocation of a function the token allows",
      parameters: [{ name: "id", in: "path", required: true, schema: { type: "string", pattern: "^[1-9][0-9]*$" } }],
      responses: {
        "200": { description: "the invocation", content: { "application/json": { schema: { $ref: "#/components/schemas/Invocation" } } } },
        "400": error("id is not a positive integer"),
        ...COMMON_ERRORS,
        "404": error("no such invocation, or one of a function the token does not allow"),
      },
    },
  };
  Object.assign(paths, extraPaths);
  const open = (description: string) => ({ get: { security: [], summary: description, responses: { "200": { description: "ok" }, "503": { description: "not ready" } } } });
  paths["/healthz"] = open("liveness: the process answers");
  paths["/readyz"] = open("readiness: the database answers and the server is not shutting down");
  paths["/metrics"] = open("Prometheus text format");
  return {
    openapi: "3.1.0",
    info: {
      title: "txfn functions",
      version: version === null ? "nothing deployed" : `bundle ${version}`,
      description:
        "Transaction functions run inside PostgreSQL exactly once per Idempotency-Key: the same key again returns the recorded outcome (same status and body, Idempotent-Replayed: true).",
    },
    jsonSchemaDialect: "https://json-schema.org/draft/2020-12/schema",
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "a token from `txfn token create`" } },
      parameters: {
        IdempotencyKey: {
          name: "Idempotency-Key",
          in: "header",
          required: false,
          description: "the invocation runs at most once per key; repeating the request returns the recorded outcome. Bare, or quoted as an RFC 8941 string (\"a\\\"b\" is the key a\"b)",
          schema: { type: "string", maxLength: 1000 },
        },
      },
      schemas: { Error: ERROR_SCHEMA, RecordedError: RECORDED_ERROR_SCHEMA, Invocation: INVOCATION_SCHEMA },
    },
  };
}
