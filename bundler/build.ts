/**
 * Bundling a function project with esbuild into one script for the database's V8.
 *
 * The output is CommonJS (ES2022) whose `module.exports.modules` maps each project file to its
 * namespace; the runtime (runtime-sql/runtime.js) evaluates it once per context and version.
 * npm dependencies are bundled and tree-shaken; Node built-ins are refused with the import
 * chain that reached them (found from esbuild's metafile, like Temporal's workflow bundler
 * refuses non-deterministic modules).
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, statSync } from "node:fs";
import { builtinModules } from "node:module";
import { basename, dirname, extname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import { BuildError, type ResolvedBuildOptions } from "./options.ts";

/** The authoring API a bundle gets for `import … from "txfn"`: always this checkout's. */
const TXFN_INDEX = fileURLToPath(new URL("../index.ts", import.meta.url));
const SOURCE_EXTENSIONS = [".ts", ".mts", ".js", ".mjs"];
const BUILTINS = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
const ENTRY = "<txfn-entry>";

/** Where a project's pieces are. */
export interface ProjectLayout {
  /** The folder of the project (the argument, or the entry file's folder). */
  dir: string;
  /** Nearest folder at or above `dir` with a package.json: source paths are relative to it. */
  root: string;
  /** Files whose exports are the functions. */
  files: string[];
  /** `<dir>/migrations` when it exists. */
  migrationsDir: string | undefined;
}

export interface RawBundle {
  code: string;
  sourceMap: string;
  /** sha256 of `code`, hex. */
  hash: string;
  sizeBytes: number;
  /** Project files relative to the root, in the order of `modules` in the bundle. */
  moduleKeys: string[];
  warnings: string[];
}

/**
 * Finds the files of a project: a single entry file, or every top-level source file of a folder
 * (not *.test.*, *.d.ts, nor files starting with "." or "_").
 * @throws BuildError when the path does not exist or holds no source file.
 */
export function projectLayout(path: string): ProjectLayout {
  const abs = resolve(path);
  if (!existsSync(abs)) throw new BuildError(`${path}: no such file or folder`);
  const isDir = statSync(abs).isDirectory();
  const dir = isDir ? abs : dirname(abs);
  const files = isDir
    ? readdirSync(abs)
        .filter((f) => SOURCE_EXTENSIONS.includes(extname(f)) && !/\.(test|spec)\.|\.d\.ts$/.test(f) && !/^[._]/.test(f))
        .sort()
        .map((f) => join(abs, f))
    : [abs];
  if (!isDir && !SOURCE_EXTENSIONS.includes(extname(abs))) {
    throw new BuildError(`${path}: not a TypeScript/JavaScript file (${SOURCE_EXTENSIONS.join(", ")})`);
  }
  if (files.length === 0) throw new BuildError(`${path}: no source files (${SOURCE_EXTENSIONS.join(", ")}) in this folder`);
  const migrations = join(dir, "migrations");
  return { dir, root: packageRoot(dir), files, migrationsDir: existsSync(migrations) ? migrations : undefined };
}

function packageRoot(start: string): string {
  for (let d = start; ; d = dirname(d)) {
    if (existsSync(join(d, "package.json"))) return d;
    if (dirname(d) === d) return start;
  }
}

/** The generated entry: imports each file as a namespace, keyed by its path. */
function entrySource(layout: ProjectLayout): { contents: string; keys: string[] } {
  const keys = layout.files.map((f) => relative(layout.root, f));
  const imports = layout.files.map((f, i) => `import * as m${i} from ${JSON.stringify(f)};`);
  const entries = keys.map((k, i) => `${JSON.stringify(k)}: m${i}`);
  return { contents: `${imports.join("\n")}\nexport const modules = { ${entries.join(", ")} };\n`, keys };
}

/**
 * Bundles the project. Refuses Node built-ins, reports esbuild's errors with file:line, and
 * refuses a bundle larger than `options.maxBundleBytes`.
 */
export async function bundleProject(layout: ProjectLayout, options: ResolvedBuildOptions): Promise<RawBundle> {
  const entry = entrySource(layout);
  const outfile = join(layout.root, "txfn-bundle.js");
  let result: esbuild.BuildResult & { outputFiles: esbuild.OutputFile[]; metafile: esbuild.Metafile };
  try {
    result = await esbuild.build({
      stdin: { contents: entry.contents, resolveDir: layout.dir, sourcefile: ENTRY, loader: "js" },
      absWorkingDir: layout.root,
      outfile,
      bundle: true,
      write: false,
      metafile: true,
      format: "cjs",
      platform: "neutral",
      target: "es2022", // V8 10.2 (libnode108) and plv8 3.x's V8 both run ES2022
      mainFields: ["module", "main"],
      conditions: ["import", "default"],
      sourcemap: "external",
      sourcesContent: false,
      keepNames: true, // error class names survive into recorded errors
      treeShaking: true,
      legalComments: "none",
      logLevel: "silent",
      alias: { txfn: TXFN_INDEX },
      plugins: [markBuiltinsExternal],
    });
  } catch (err) {
    const failure = err as esbuild.BuildFailure;
    if (!failure.errors) throw err;
    throw new BuildError(`build failed:\n${failure.errors.map((e) => formatMessage(e, layout.root)).join("\n")}`);
  }
  refuseBuiltins(result.metafile, layout.root);
  const js = result.outputFiles.find((f) => f.path.endsWith(".js"));
  const map = result.outputFiles.find((f) => f.path.endsWith(".js.map"));
  if (!js || !map) throw new BuildError("esbuild produced no output");
  // The runtime appends its own sourceURL; esbuild's sourceMappingURL comment is useless in the database.
  const code = js.text.replace(/\n\/\/# sourceMappingURL=[^\n]*\n?$/, "\n");
  const sizeBytes = Buffer.byteLength(code);
  if (sizeBytes > options.maxBundleBytes) {
    const largest = largestInputs(result.metafile, layout.root);
    throw new BuildError(
      `bundle is ${sizeBytes} bytes, over the limit of ${options.maxBundleBytes} (maxBundleBytes / --max-bundle-bytes)` +
        (largest ? `; largest inputs: ${largest}` : ""),
    );
  }
  return {
    code,
    sourceMap: map.text,
    hash: createHash("sha256").update(code).digest("hex"),
    sizeBytes,
    moduleKeys: entry.keys,
    warnings: result.warnings.map((w) => formatMessage(w, layout.root)),
  };
}

/** Lets the build finish with built-ins external so the metafile can name who imported them. */
const markBuiltinsExternal: esbuild.Plugin = {
  name: "txfn-builtins",
  setup(build) {
    build.onResolve({ filter: /.*/ }, (args) => (BUILTINS.has(args.path) ? { path: args.path, external: true } : undefined));
  },
};

function refuseBuiltins(meta: esbuild.Metafile, root: string): void {
  const problems: string[] = [];
  for (const [file, input] of Object.entries(meta.inputs)) {
    for (const imp of input.imports) {
      if (imp.external && BUILTINS.has(imp.path)) {
        const chain = [...importChain(meta, file), imp.path].filter((p) => !p.endsWith(ENTRY)).map((p) => displayPath(p, root));
        problems.push(`  ${imp.path}: ${chain.join(" -> ")}`);
      }
    }
  }
  if (problems.length) {
    throw new BuildError(
      `Node built-in modules are not available inside the database (no fs, net, child_process, timers, …):\n${problems.join("\n")}`,
    );
  }
}

/** Shortest import chain from the entry to `target` (breadth-first over the metafile). */
function importChain(meta: esbuild.Metafile, target: string): string[] {
  const prev = new Map<string, string>();
  const entry = Object.keys(meta.inputs).find((p) => p.endsWith(ENTRY)) ?? ENTRY;
  const queue = [entry];
  const seen = new Set(queue);
  while (queue.length) {
    const cur = queue.shift()!;
    if (cur === target) break;
    for (const imp of meta.inputs[cur]?.imports ?? []) {
      if (imp.external || seen.has(imp.path)) continue;
      seen.add(imp.path);
      prev.set(imp.path, cur);
      queue.push(imp.path);
    }
  }
  const chain = [target];
  for (let p = prev.get(target); p !== undefined; p = prev.get(p)) chain.unshift(p);
  return chain;
}

function displayPath(p: string, root: string): string {
  return p.startsWith("/") ? relative(root, p) : p;
}

function formatMessage(m: esbuild.Message, root: string): string {
  const loc = m.location ? `${displayPath(m.location.file, root)}:${m.location.line}:${m.location.column + 1}: ` : "";
  return `  ${loc}${m.text}`;
}

/** The three inputs that take most of the bundle ("" when esbuild's metafile names none). */
function largestInputs(meta: esbuild.Metafile, root: string): string {
  // The outputs are the .js and its .js.map (whose inputs are empty), in no promised order.
  const out = Object.entries(meta.outputs).find(([path]) => path.endsWith(".js"))?.[1];
  if (!out) return "";
  return Object.entries(out.inputs)
    .filter(([p, v]) => v.bytesInOutput > 0 && !p.endsWith(ENTRY))
    .sort((a, b) => b[1].bytesInOutput - a[1].bytesInOutput)
    .slice(0, 3)
    .map(([p, v]) => `${displayPath(p, root)} ${v.bytesInOutput} B`)
    .join(", ");
}
