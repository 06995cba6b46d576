/**
 * Loading a project's workflows in Node (for `txfn worker <dir>` and an embedding proxy): imports
 * `<dir>/workflows/*.ts` and the project's top-level files (the ones the bundler bundles), and
 * collects the exported workflow definitions and the names of the exported transaction functions
 * (a descriptor's name is its export name, so `ctx.transaction(reserveInventory, …)` can be sent
 * to the database by name).
 *
 * Each workflow's code hash is the sha256 of the module file that exports it: a workflow recorded
 * with one hash is never silently continued by code with another (executor.ts parks it).
 * TypeScript files need a loader that runs .ts (the txfn command registers tsx). A project outside
 * this checkout loads as the bundler builds it: project-hooks.mjs resolves `import … from "txfn"`
 * to this package and treats the project's .ts files as ES modules. A module that cannot be
 * imported is a WorkflowLoadError naming the file and the cause.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { register } from "node:module";
import { extname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { TransactionFunction } from "../types.ts";
import { isWorkflow } from "./define.ts";
import { WorkflowLoadError, WorkflowOptionsError } from "./errors.ts";
import { isTransactionDescriptor } from "./options.ts";
import type { WorkflowDefinition } from "./types.ts";

/** A workflow ready for an executor: its definition and the hash of its code. */
export interface LoadedWorkflow {
  definition: WorkflowDefinition;
  codeHash: string;
  /** The module file that exports it (absolute), or null when the hash comes from the body's text. */
  file: string | null;
}

export interface LoadedProject {
  dir: string;
  workflows: LoadedWorkflow[];
  /** Transaction function descriptor → its export name. */
  functions: Map<TransactionFunction<any, any>, string>;
}

const SOURCE_EXTENSIONS = [".ts", ".mts", ".js", ".mjs"];

/** Top-level source files of a folder, as the bundler picks them (no tests, no .d.ts, no ./_ prefixes). */
function sourceFiles(dir: string): string[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return [];
  return readdirSync(dir)
    .filter((f) => SOURCE_EXTENSIONS.includes(extname(f)) && !/\.(test|spec)\.|\.d\.ts$/.test(f) && !/^[._]/.test(f))
    .sort()
    .map((f) => join(dir, f));
}

let hooksRegistered = false;

/** Registers project-hooks.mjs once per process (Node's module.register; a no-op where that is unavailable). */
function registerProjectHooks(): void {
  if (hooksRegistered) return;
  hooksRegistered = true;
  if (typeof register !== "function") return;
  register(new URL("./project-hooks.mjs", import.meta.url).href, { data: { txfnIndex: new URL("../index.ts", import.meta.url).href } });
}

/** sha256 (hex) of a workflow body's text: the code hash of a definition not loaded from a file. */
export function bodyHash(definition: WorkflowDefinition): string {
  return createHash("sha256").update(`${definition.name}\n${definition.body.toString()}`).digest("hex");
}

/**
 * Imports the project at `dir` (a folder) and returns its workflows and transaction functions.
 * @throws WorkflowOptionsError when the folder does not exist, holds no workflow, or two
 *   different definitions share a name; WorkflowLoadError (file, cause) when an import fails.
 */
export async function loadProject(dir: string): Promise<LoadedProject> {
  const abs = resolve(dir);
  if (!existsSync(abs) || !statSync(abs).isDirectory()) throw new WorkflowOptionsError(`${dir}: no such folder (a function project with a workflows/ folder)`);
  // Workflow modules first: a definition re-exported by a top-level file hashes as its own module.
  const files = [...sourceFiles(join(abs, "workflows")), ...sourceFiles(abs)];
  const workflows = new Map<string, LoadedWorkflow>();
  const functions = new Map<TransactionFunction<any, any>, string>();
  registerProjectHooks();
  for (const file of files) {
    let ns: Record<string, unknown>;
    try {
      ns = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
    } catch (err) {
      throw new WorkflowLoadError(file, err);
    }
    for (const [exportName, value] of Object.entries(ns)) {
      if (isTransactionDescriptor(value)) {
        if (!functions.has(value)) functions.set(value, exportName);
      } else if (isWorkflow(value)) {
        const prior = workflows.get(value.name);
        if (prior && prior.definition !== value) {
          throw new WorkflowOptionsError(`two workflows are named ${JSON.stringify(value.name)} (${prior.file} and ${file}); names must be unique`);
        }
        if (!prior) workflows.set(value.name, { definition: value, codeHash: createHash("sha256").update(readFileSync(file)).digest("hex"), file });
      }
    }
  }
  if (workflows.size === 0) {
    throw new WorkflowOptionsError(`${dir}: no workflows found: export one from ${join(dir, "workflows")}/<name>.ts, e.g. export const w = workflow("w", async (ctx, input) => …)`);
  }
  return { dir: abs, workflows: [...workflows.values()], functions };
}
