/** Deploying a fixture project into a test file's database, in-process (the CLI has its own tests). */
import { build, type BuildOptions } from "../../bundler/index.ts";
import { deploy, type DeployResult } from "../../client/index.ts";

export async function deployProject(url: string, dir: string, options: BuildOptions = {}): Promise<DeployResult> {
  return deploy(url, await build(dir, options));
}
