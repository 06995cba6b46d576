/** Build options: defaults and the one place they are checked (unknown keys are errors). */

export interface BuildOptions {
  /** Largest accepted bundle, in bytes of JavaScript (source map not counted). Default 5 MiB. */
  maxBundleBytes?: number;
  /** Schema of the generated SQL wrappers. Default "app". */
  appSchema?: string;
  /** Extract input/output JSON schemas with the TypeScript checker. Default true. */
  schemas?: boolean;
}

export type ResolvedBuildOptions = Required<BuildOptions>;

export const DEFAULT_BUILD_OPTIONS: ResolvedBuildOptions = {
  maxBundleBytes: 5 * 1024 * 1024,
  appSchema: "app",
  schemas: true,
};

/** Thrown for any problem a user must fix in their project or command line. */
export class BuildError extends Error {
  override name = "BuildError";
}

export function resolveBuildOptions(options: BuildOptions = {}): ResolvedBuildOptions {
  const allowed = Object.keys(DEFAULT_BUILD_OPTIONS);
  const unknown = Object.keys(options).filter((k) => !allowed.includes(k));
  if (unknown.length) throw new BuildError(`unknown build option(s) ${unknown.join(", ")} (allowed: ${allowed.join(", ")})`);
  const out = { ...DEFAULT_BUILD_OPTIONS };
  for (const [k, v] of Object.entries(options)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  if (!Number.isInteger(out.maxBundleBytes) || out.maxBundleBytes <= 0) {
    throw new BuildError(`maxBundleBytes must be a positive integer, got ${JSON.stringify(out.maxBundleBytes)}`);
  }
  if (typeof out.appSchema !== "string" || !/^[a-z_][a-z0-9_]*$/.test(out.appSchema) || out.appSchema.length > 63) {
    throw new BuildError(`appSchema must be a lower-case SQL identifier (letters, digits, _), got ${JSON.stringify(out.appSchema)}`);
  }
  if (["txfn", "pg_catalog", "information_schema"].includes(out.appSchema)) {
    throw new BuildError(`appSchema ${out.appSchema} is reserved`);
  }
  if (typeof out.schemas !== "boolean") throw new BuildError(`schemas must be a boolean, got ${JSON.stringify(out.schemas)}`);
  return out;
}
