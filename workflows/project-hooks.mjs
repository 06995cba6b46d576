// Node module hooks that loadProject (loader.ts) registers, so `txfn worker <dir>` loads a project
// outside this checkout as the bundler builds it (bundler/build.ts aliases "txfn" the same way):
//  - `import … from "txfn"` resolves to this checkout's package root (index.ts), wherever the
//    project is and whether or not it has a node_modules/txfn — the worker's definitions and
//    errors must be this txfn's;
//  - a project's .ts/.mts file outside node_modules is an ES module even without a package.json
//    {"type": "module"} (txfn projects are ESM; the bundler reads them so), where Node would
//    take it for CommonJS and fail with ERR_REQUIRE_CYCLE_MODULE.
// Plain JavaScript: hooks run on Node's loader thread. Registered after tsx's (bin/txfn.js), so
// these run first and hand the rewritten specifier on to tsx, which compiles the TypeScript.
let txfnIndex = "";

/** @param {{ txfnIndex: string }} data */
export function initialize(data) {
  txfnIndex = data.txfnIndex;
}

/** @type {import("node:module").ResolveHook} */
export async function resolve(specifier, context, nextResolve) {
  const resolved = await nextResolve(specifier === "txfn" ? txfnIndex : specifier, context);
  if (
    resolved.format === "commonjs" &&
    resolved.url.startsWith("file:") &&
    /\.m?ts$/.test(new URL(resolved.url).pathname) &&
    !resolved.url.includes("/node_modules/")
  ) {
    return { ...resolved, format: "module" };
  }
  return resolved;
}
