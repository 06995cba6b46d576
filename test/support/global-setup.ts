/**
 * Vitest global setup: one throwaway PostgreSQL cluster per test run, torn down (files
 * removed) even when tests fail or the run is interrupted.
 */
import type { TestProject } from "vitest/node";
import { removeNow, startThrowawayCluster } from "./throwaway-cluster.ts";

declare module "vitest" {
  export interface ProvidedContext {
    /** Superuser URL of the run's cluster, database `txfn`. */
    adminUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const run = await startThrowawayCluster();
  const onExit = () => removeNow(run.cluster);
  process.once("exit", onExit);
  project.provide("adminUrl", run.url);
  return async () => {
    process.removeListener("exit", onExit);
    await run.remove();
  };
}
