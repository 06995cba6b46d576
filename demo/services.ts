/**
 * The processes that serve the checkout app during the load, each a child process of the demo:
 * the fake payment service (told to misbehave), `txfn serve` (the HTTP proxy) and `txfn worker`
 * (the workflow executor, separate from the proxy so it can be killed on its own).
 */
import type { Faults } from "../functions/services/payment-service.ts";
import { TXFN_BIN, type Child, type Children } from "./children.ts";

/** The payment service's misbehaviour during the load (shares of charge requests). */
export const PAYMENT_FAULTS: Faults = { failRate: 0.05, failAfterChargeRate: 0.05, hangRate: 0.01, slowRate: 0.2, slowMs: 300 };

/** One executor id for every life of the worker: a restart recovers the dead one's workflows at once. */
export const EXECUTOR_ID = "demo-executor";

export async function startPaymentService(children: Children, databaseUrl: string): Promise<{ child: Child; url: string }> {
  const { child, match } = await children.spawnReady(
    "payment-service",
    ["--import", "tsx", "functions/services/payment-service.ts", "--faults", JSON.stringify(PAYMENT_FAULTS)],
    { env: { DATABASE_URL: databaseUrl }, ready: /\{"listening":"([^"]+)"\}/ }, // the URL in the environment: not in `ps`
  );
  return { child, url: match[1]! };
}

export async function startProxy(children: Children, databaseUrl: string): Promise<{ child: Child; url: string }> {
  const { child, match } = await children.spawnReady(
    "txfn-serve",
    [TXFN_BIN, "serve", "--port", "0", "--pool-size", "8", "--log-level", "warn", "--shutdown-timeout", "5000"],
    { env: { DATABASE_URL: databaseUrl }, ready: /listening on (http:\/\/\S+)/ },
  );
  return { child, url: match[1]! };
}

/** Starts life number `life` of the executor (`txfn worker functions`). */
export async function startWorker(children: Children, databaseUrl: string, paymentUrl: string, life: number): Promise<Child> {
  const { child } = await children.spawnReady(
    `txfn-worker-${life}`,
    [TXFN_BIN, "worker", "functions", "--executor-id", EXECUTOR_ID, "--concurrency", "64", "--poll-ms", "250", "--max-recovery-attempts", "100"],
    { env: { DATABASE_URL: databaseUrl, TXFN_PAYMENT_URL: paymentUrl }, ready: /"msg":"executor ready"/ },
  );
  return child;
}
