/**
 * The proxy's view of the deployed functions: the active bundle version's functions, with their
 * declared isolation and JSON schemas, and input validators compiled by ajv once per version.
 *
 * Loaded at start, reloaded on NOTIFY txfn_deploys (proxy/watcher.ts), when an invocation
 * reports another version than the one cached, when a request names a function the cache does
 * not know, and every `maxAgeMs` as a fallback. A request is validated against the active
 * version's schema as last seen; the runtime runs whatever version is active when it commits.
 */
import Ajv2020Module from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import type { ValidateFunction } from "ajv";
import pg from "pg";
import { isConnectionError } from "../client/index.ts";
import type { IsolationLevel } from "../types.ts";

// CommonJS modules whose typings declare an ES default export; both also set `exports.default`.
const Ajv2020 = Ajv2020Module.default;
const addFormats = addFormatsModule.default;

export type JsonSchema = Record<string, unknown>;

export interface CatalogFunction {
  name: string;
  version: number;
  isolation: IsolationLevel;
  readOnly: boolean;
  /** JSON schema (draft 2020-12) of the input; {} = any. */
  inputSchema: JsonSchema;
  /** JSON schema of the output; null = returns nothing. */
  outputSchema: JsonSchema | null;
}

/** One problem found by input validation: where (JSON pointer) and what. */
export interface InputProblem {
  path: string;
  message: string;
}

interface Snapshot {
  /** Active bundle version; null when nothing is deployed. */
  version: number | null;
  functions: Map<string, CatalogFunction>;
  ajv: InstanceType<typeof Ajv2020>;
  validators: Map<string, ValidateFunction | null>;
  loadedAt: number;
}

export class Catalog {
  private snap: Snapshot | undefined;
  private loading: Promise<void> | undefined;
  private again = false;

  constructor(
    private readonly pool: pg.Pool,
    private readonly maxAgeMs = 30_000,
    private readonly onError: (err: unknown) => void = () => {},
  ) {}

  /** True once the functions were read at least once. */
  get loaded(): boolean {
    return this.snap !== undefined;
  }

  /** Active version as last seen (null = nothing deployed or not loaded yet). */
  get version(): number | null {
    return this.snap?.version ?? null;
  }

  /** The active version's functions as last seen. */
  functions(): CatalogFunction[] {
    return [...(this.snap?.functions.values() ?? [])];
  }

  /** The function `name` of the active version, reloading once when it is unknown or the cache is old. */
  async find(name: string): Promise<CatalogFunction | undefined> {
    const snap = this.snap;
    if (!snap || Date.now() - snap.loadedAt > this.maxAgeMs) await this.refresh();
    else if (!snap.functions.has(name)) await this.refresh();
    return this.snap?.functions.get(name);
  }

  /**
   * Validates `input` against the function's input schema (compiled once per version).
   * @returns the problems found (at most 10); empty when the input is acceptable.
   */
  validate(fn: CatalogFunction, input: unknown): InputProblem[] {
    const snap = this.snap;
    if (!snap || snap.version !== fn.version) return [];
    let validator = snap.validators.get(fn.name);
    if (validator === undefined) {
      const s = fn.inputSchema;
      const compiled = s && typeof s === "object" && Object.keys(s).length > 0 ? snap.ajv.compile(s) : null;
      snap.validators.set(fn.name, compiled);
      validator = compiled;
    }
    if (!validator || validator(input)) return [];
    return (validator.errors ?? []).slice(0, 10).map((e) => ({
      path: e.instancePath || "/",
      message: e.keyword === "additionalProperties" ? `unknown property ${JSON.stringify(e.params.additionalProperty)}` : (e.message ?? e.keyword),
    }));
  }

  /** An invocation ran on `version`: reload in the background when it is not the cached one. */
  noteVersion(version: number): void {
    if (this.snap && this.snap.version !== null && version > this.snap.version) void this.refresh().catch(() => {});
  }

  /**
   * Reads the active functions again. Concurrent calls share one read; a call made while a read
   * is running causes one more read after it (a NOTIFY may have come in between).
   * @throws the database error when the read fails (the previous view is kept).
   */
  refresh(): Promise<void> {
    if (this.loading) {
      this.again = true;
      return this.loading;
    }
    const run = async (): Promise<void> => {
      do {
        this.again = false;
        this.snap = await this.read();
      } while (this.again);
    };
    this.loading = run().finally(() => (this.loading = undefined));
    this.loading.catch((err) => this.onError(err));
    return this.loading;
  }

  private async read(): Promise<Snapshot> {
    const conn = await this.pool.connect();
    let broken: Error | undefined;
    let rows: { version: number; name: string; options: { isolation?: IsolationLevel; readOnly?: boolean } | null; input_schema: JsonSchema | null; output_schema: JsonSchema | null }[];
    try {
      const r = await conn.query("SELECT version, name, options, input_schema, output_schema FROM txfn.functions WHERE active");
      rows = r.rows;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === "3F000" || code === "42P01") rows = []; // nothing deployed to this database yet
      else {
        if (isConnectionError(err)) broken = err as Error;
        throw err;
      }
    } finally {
      conn.release(broken);
    }
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats(ajv);
    const functions = new Map<string, CatalogFunction>();
    for (const row of rows) {
      functions.set(row.name, {
        name: row.name,
        version: row.version,
        isolation: row.options?.isolation ?? "serializable",
        readOnly: row.options?.readOnly === true,
        inputSchema: row.input_schema ?? {},
        outputSchema: row.output_schema,
      });
    }
    return { version: rows[0]?.version ?? null, functions, ajv, validators: new Map(), loadedAt: Date.now() };
  }
}
