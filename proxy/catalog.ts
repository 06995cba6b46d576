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

/** A function of the active bundle as the proxy needs it. */
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

/** The cached view of the active bundle's functions (see the file comment for when it reloads). */
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

  /**
   * The function `name` of the active version. Reloads first when nothing was loaded yet or the
   * name is unknown (it may just have been deployed); reloads in the background when the view is
   * older than `maxAgeMs`.
   */
  async find(name: string): Promise<CatalogFunction | undefined> {
    const snap = this.snap;
    if (!snap || !snap.functions.has(name)) await this.refresh();
    else if (Date.now() - snap.loadedAt > this.maxAgeMs) void this.refresh().catch(() => {});
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
      let compiled: ValidateFunction | null = null;
      try {
        if (s && typeof s === "object" && Object.keys(s).length > 0) compiled = snap.ajv.compile(s);
      } catch (err) {
        this.onError(new Error(`the input schema of ${fn.name} (version ${fn.version}) does not compile; its input is not validated: ${(err as Error).message}`));
      }
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
        const rows = await this.read();
        const version = rows[0]?.version ?? null;
        // A bundle version's manifest never changes: keep the compiled validators.
        if (this.snap && version === this.snap.version) this.snap.loadedAt = Date.now();
        else this.snap = snapshot(rows);
      } while (this.again);
    };
    this.loading = run().finally(() => (this.loading = undefined));
    this.loading.catch((err) => this.onError(err));
    return this.loading;
  }

  private async read(): Promise<FunctionRow[]> {
    const conn = await this.pool.connect();
    let broken: Error | undefined;
    let rows: FunctionRow[];
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
    return rows;
  }
}

interface FunctionRow {
  version: number;
  name: string;
  options: { isolation?: IsolationLevel; readOnly?: boolean } | null;
  input_schema: JsonSchema | null;
  output_schema: JsonSchema | null;
}

/** A fresh view of a version's functions, with an ajv of its own (validators compile on first use). */
function snapshot(rows: FunctionRow[]): Snapshot {
  // The schemas come from txfn's bundler: checking them against the meta-schema would cost more
  // than everything else a snapshot does (ajv compiles the 2020-12 meta-schema first).
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateSchema: false });
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
