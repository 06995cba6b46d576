/**
 * The manifest of a bundle: which functions it exports, with their options and JSON schemas.
 *
 * Function names and options come from evaluating the bundle itself (in a bare `vm` context,
 * the way the database will evaluate it), so the manifest cannot disagree with what runs;
 * the schemas come from the TypeScript checker (schema.ts).
 */
import vm from "node:vm";
import type { IsolationLevel } from "../types.ts";
import { BundleLoadError, LOAD_FILENAME } from "./load-error.ts";
import { BuildError } from "./options.ts";
import type { FunctionTypes, JsonSchema } from "./schema.ts";

export const MANIFEST_FORMAT = 1;

export interface ManifestFunction {
  /** Name of the generated SQL wrapper in the app schema (snake_case of the export name). */
  sqlName: string;
  /** Project file that exports it, relative to the package root. */
  file: string;
  options: { isolation: IsolationLevel; readOnly: boolean };
  /** JSON schema of the input, or {} when the types say nothing. */
  inputSchema: JsonSchema;
  /** JSON schema of the output; null for a function returning nothing. */
  outputSchema: JsonSchema | null;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  appSchema: string;
  functions: Record<string, ManifestFunction>;
}

interface Descriptor {
  __txfn: "transaction";
  options: { isolation: IsolationLevel; readOnly: boolean };
}

/** The same wrapper the runtime uses (runtime-sql/runtime.js: BUNDLE_HEADER). */
function evaluateBundle(code: string): Record<string, Record<string, unknown>> {
  const context = vm.createContext({}); // no require, process, timers: like the database
  const module = { exports: {} as Record<string, unknown> };
  const require = (name: string) => {
    throw new Error(`require(${JSON.stringify(name)}) is not available inside the database`);
  };
  try {
    const factory = vm.runInContext(`(function (module, exports, require) {\n${code}\n})`, context, {
      filename: LOAD_FILENAME, // its frames are mapped to the sources by load-error.ts
      timeout: 5_000,
    }) as (m: unknown, e: unknown, r: unknown) => void;
    factory(module, module.exports, require);
  } catch (err) {
    // Thrown in the vm context: not an instance of this realm's Error.
    const e = err as { name?: unknown; message?: unknown; stack?: unknown } | null;
    const reason = e !== null && typeof e === "object" && e.message !== undefined ? String(e.message) : String(err);
    throw new BundleLoadError(reason, typeof e?.stack === "string" ? e.stack : undefined);
  }
  return (module.exports.modules ?? {}) as Record<string, Record<string, unknown>>;
}

function isDescriptor(v: unknown): v is Descriptor {
  return typeof v === "object" && v !== null && (v as { __txfn?: unknown }).__txfn === "transaction";
}

/** reserveInventory → reserve_inventory; HTTPGet → http_get. */
export function sqlNameOf(name: string): string {
  return name
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .replace(/([A-Z]+)([A-Z][a-z])/g, "$1_$2")
    .replace(/[^A-Za-z0-9_]/g, "_")
    .toLowerCase();
}

/**
 * Builds the manifest from the bundle code and the schemas.
 * @throws BuildError when the bundle exports no transaction function, two files export the
 *   same name, or two names map to the same SQL wrapper; BundleLoadError when its top-level
 *   code throws (build() maps its stack through the source map).
 */
export function extractManifest(code: string, appSchema: string, types: Map<string, FunctionTypes>): Manifest {
  const modules = evaluateBundle(code);
  const functions: Record<string, ManifestFunction> = {};
  const bySqlName = new Map<string, string>();
  for (const [file, ns] of Object.entries(modules)) {
    for (const [name, value] of Object.entries(ns)) {
      if (!isDescriptor(value)) continue;
      const prior = functions[name];
      if (prior) throw new BuildError(`function ${name} is exported by both ${prior.file} and ${file}; names must be unique`);
      const sqlName = sqlNameOf(name);
      if (sqlName.length > 63) throw new BuildError(`function ${name}: its SQL name ${sqlName} is longer than 63 characters`);
      const clash = bySqlName.get(sqlName);
      if (clash) throw new BuildError(`functions ${clash} and ${name} would both become ${appSchema}.${sqlName}`);
      bySqlName.set(sqlName, name);
      const t = types.get(name);
      functions[name] = {
        sqlName,
        file,
        options: { isolation: value.options.isolation, readOnly: value.options.readOnly },
        inputSchema: t?.input ?? {},
        outputSchema: t ? t.output : {},
      };
    }
  }
  if (Object.keys(functions).length === 0) {
    throw new BuildError(
      `no transaction functions found: export at least one, e.g. export const f = transaction({}, (ctx, input) => …) (files: ${Object.keys(modules).join(", ")})`,
    );
  }
  return { format: MANIFEST_FORMAT, appSchema, functions };
}
