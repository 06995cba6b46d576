/**
 * The bundler's public face: `build(path, options)` turns a function project into a deployable
 * bundle (code, source map, manifest). Used by `txfn build` and `txfn deploy`.
 */
import { bundleProject, projectLayout, type ProjectLayout } from "./build.ts";
import { extractManifest, type Manifest } from "./manifest.ts";
import { BundleLoadError, mapLoadError } from "./load-error.ts";
import { resolveBuildOptions, type BuildOptions, type ResolvedBuildOptions } from "./options.ts";

export { BuildError, type BuildOptions } from "./options.ts";
export { sourcePosition } from "./load-error.ts";
export type { Manifest, ManifestFunction } from "./manifest.ts";
export { wrapperStatements, dropStatements } from "./sql.ts";

export interface Bundle {
  code: string;
  /** Source map v3 (JSON text); sources are relative to the project's package root. */
  sourceMap: string;
  manifest: Manifest;
  /** sha256 of the code (hex). */
  hash: string;
  sizeBytes: number;
  layout: ProjectLayout;
  options: ResolvedBuildOptions;
  warnings: string[];
}

/**
 * Builds the function project at `path` (a folder or an entry file).
 * @throws BuildError with a message naming the file/line, the import chain of a Node built-in,
 *   the size over the limit, or what is missing.
 */
export async function build(path: string, options: BuildOptions = {}): Promise<Bundle> {
  const resolved = resolveBuildOptions(options);
  const layout = projectLayout(path);
  const raw = await bundleProject(layout, resolved);
  // The TypeScript compiler takes seconds to load: only builds that want schemas pay for it.
  const types = resolved.schemas ? (await import("./schema.ts")).functionSchemas(layout.files, layout.dir) : new Map();
  let manifest: Manifest;
  try {
    manifest = extractManifest(raw.code, resolved.appSchema, types);
  } catch (err) {
    throw err instanceof BundleLoadError ? await mapLoadError(err, raw.sourceMap) : err;
  }
  return {
    code: raw.code,
    sourceMap: raw.sourceMap,
    manifest,
    hash: raw.hash,
    sizeBytes: raw.sizeBytes,
    layout,
    options: resolved,
    warnings: raw.warnings,
  };
}
