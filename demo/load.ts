/**
 * The demo's load: every order is a checkout workflow started over HTTP through `txfn serve`
 * (POST /v1/workflows/checkout, the order id as Idempotency-Key, `Prefer: wait` for the final
 * state), from `concurrency` clients at once, like shoppers. A client whose answer is lost or a
 * 503 retries with the same key; some orders are submitted twice at once (a double click) and
 * must come back as one workflow. Once half the orders have ended, `midway` runs (the demo kills
 * the executor) while the load goes on.
 */
import type { DemoOrder } from "./orders.ts";
import type { Progress } from "./ui.ts";
import { DemoError } from "./ui.ts";

export interface LoadOptions {
  baseUrl: string;
  token: string;
  orders: DemoOrder[];
  concurrency: number;
  /** Runs once when half the orders have ended; the load continues meanwhile. */
  midway: () => Promise<void>;
  progress: Progress;
  /** Longest time for the whole load before it is declared stuck. */
  timeoutMs: number;
}

/** A workflow as GET /v1/workflows/:id shows it (the fields the demo reads). */
export interface WorkflowView {
  id: string;
  status: "PENDING" | "SUCCESS" | "ERROR" | "CANCELLED" | "COMPENSATED";
  output?: unknown;
  error?: { name?: string; message?: string; [k: string]: unknown } | null;
}

export interface LoadResult {
  /** The final state of each order's workflow, as the API answered it. */
  outcomes: Map<string, WorkflowView>;
  duplicates: { sent: number; sameWorkflow: number };
  /** Requests retried with the same key after a 503 or a lost connection. */
  retriedRequests: number;
  durationMs: number;
}

/** The outcome classes the summary counts. */
export function outcomeClass(w: WorkflowView): "completed" | "compensated" | "out of stock" | "failed" | "pending" {
  if (w.status === "SUCCESS") return "completed";
  if (w.status === "COMPENSATED") return "compensated";
  if (w.status === "PENDING") return "pending";
  return w.status === "ERROR" && errorName(w) === "OutOfStock" ? "out of stock" : "failed";
}

/** The application error's name, where the engine nests it (a failed transaction step carries the recorded error). */
export function errorName(w: WorkflowView): string | undefined {
  const e = w.error as Record<string, unknown> | null | undefined;
  if (!e) return undefined;
  const inner = (e.recorded ?? e.cause ?? e.error) as Record<string, unknown> | undefined;
  const name = (inner && typeof inner.name === "string" ? inner.name : undefined) ?? (typeof e.name === "string" ? e.name : undefined);
  if (name === "StepFailedError" && typeof e.message === "string" && /OutOfStock|out of stock/.test(e.message)) return "OutOfStock";
  return name;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class Api {
  retried = 0;
  constructor(
    private readonly base: string,
    private readonly token: string,
    private readonly signal: AbortSignal,
  ) {}

  /** One request, retried with the same key on 503 and lost connections (at most 10 times). */
  private async request(method: string, path: string, key: string | null, body: unknown): Promise<{ status: number; json: WorkflowView & Record<string, unknown> }> {
    for (let attempt = 1; ; attempt++) {
      this.signal.throwIfAborted();
      let status: number;
      let text: string;
      try {
        const res = await fetch(this.base + path, {
          method,
          headers: {
            authorization: `Bearer ${this.token}`,
            prefer: "wait=60",
            ...(key !== null ? { "idempotency-key": key } : {}),
            ...(body !== undefined ? { "content-type": "application/json" } : {}),
          },
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
          signal: AbortSignal.any([this.signal, AbortSignal.timeout(90_000)]),
        });
        status = res.status;
        text = await res.text();
      } catch (err) {
        if (this.signal.aborted) throw err;
        if (attempt >= 10) {
          const cause = err instanceof Error ? ((err.cause as Error | undefined)?.message ?? err.message) : String(err);
          throw new DemoError(`${method} ${path}: no answer from txfn serve at ${this.base} after ${attempt} attempts (${cause})`);
        }
        this.retried++;
        await sleep(50 * attempt);
        continue;
      }
      if ((status === 503 || status === 502) && attempt < 10) {
        this.retried++;
        await sleep(100 * attempt);
        continue;
      }
      let json: WorkflowView & Record<string, unknown>;
      try {
        json = JSON.parse(text) as WorkflowView & Record<string, unknown>;
      } catch {
        throw new DemoError(`${method} ${path} answered ${status} with something that is not JSON: ${text.slice(0, 200)}`);
      }
      if (status !== 200 && status !== 202) throw new DemoError(`${method} ${path} answered ${status}: ${text.slice(0, 500)}`);
      return { status, json };
    }
  }

  /** Starts the order's workflow and waits for its final state. */
  async checkout(order: DemoOrder): Promise<WorkflowView> {
    let { status, json } = await this.request("POST", "/v1/workflows/checkout", order.id, order.input);
    while (status === 202) ({ status, json } = await this.request("GET", `/v1/workflows/${encodeURIComponent(order.id)}`, null, undefined));
    return json;
  }
}

/** Drives every order to its final state; throws if any request fails for good or the load stalls. */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const t0 = Date.now();
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DemoError(`the load did not finish within ${options.timeoutMs / 1000} s`)), options.timeoutMs);
  const api = new Api(options.baseUrl, options.token, controller.signal);
  const outcomes = new Map<string, WorkflowView>();
  const counts = { completed: 0, compensated: 0, "out of stock": 0, failed: 0, pending: 0 };
  const duplicates = { sent: 0, sameWorkflow: 0 };
  const total = options.orders.length;
  let next = 0;
  let inFlight = 0;
  let midway: Promise<void> | undefined;
  let failure: unknown;

  const show = () =>
    options.progress.update(
      outcomes.size,
      `completed ${counts.completed} · compensated ${counts.compensated} · out of stock ${counts["out of stock"]}` +
        (counts.failed ? ` · failed ${counts.failed}` : "") +
        ` · in flight ${inFlight}`,
    );

  async function client(): Promise<void> {
    while (next < total && !controller.signal.aborted) {
      const order = options.orders[next++]!;
      inFlight++;
      show();
      const first = api.checkout(order);
      if (order.duplicate) {
        duplicates.sent++;
        const [a, b] = await Promise.all([first, api.checkout(order)]);
        if (a.id === b.id && a.status === b.status) duplicates.sameWorkflow++;
        outcomes.set(order.id, a);
      } else {
        outcomes.set(order.id, await first);
      }
      inFlight--;
      counts[outcomeClass(outcomes.get(order.id)!)]++;
      show();
      if (!midway && outcomes.size >= Math.ceil(total / 2)) {
        midway = options.midway().catch((err: unknown) => {
          failure = err;
          controller.abort(err);
        });
      }
    }
  }

  try {
    const stopOnError = (err: unknown) => {
      failure ??= err;
      controller.abort(err);
      throw err;
    };
    await Promise.all(Array.from({ length: Math.min(options.concurrency, total) }, () => client().catch(stopOnError)));
    await midway;
  } catch (err) {
    throw failure ?? (controller.signal.aborted && controller.signal.reason ? controller.signal.reason : err);
  } finally {
    clearTimeout(timer);
    options.progress.stop();
  }
  if (failure) throw failure;
  return { outcomes, duplicates, retriedRequests: api.retried, durationMs: Date.now() - t0 };
}
