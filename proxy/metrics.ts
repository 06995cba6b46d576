/**
 * The proxy's Prometheus metrics (prom-client, one registry per server so several servers can
 * live in one process): requests by route, method and status; a latency histogram; the pool's
 * connections in use, idle and waiting; invocations by outcome; retries; and prom-client's
 * default process metrics (CPU, memory, event-loop lag).
 */
import type pg from "pg";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** The metrics of one proxy; `render()` is the /metrics body. */
export class ProxyMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<"route" | "method" | "status">;
  private readonly duration: Histogram<"route" | "method">;
  private readonly invocations: Counter<"outcome" | "replayed">;
  private readonly retries: Counter;

  constructor(pool: pg.Pool, poolMax: number) {
    const registers = [this.registry];
    this.requests = new Counter({
      name: "txfn_http_requests_total",
      help: "HTTP requests answered, by route pattern, method and status",
      labelNames: ["route", "method", "status"],
      registers,
    });
    this.duration = new Histogram({
      name: "txfn_http_request_duration_seconds",
      help: "Time from receiving a request to sending its response, seconds",
      labelNames: ["route", "method"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.invocations = new Counter({
      name: "txfn_invocations_total",
      help: "Invocations answered, by outcome (ok = output, error = recorded application error) and replayed (same key again)",
      labelNames: ["outcome", "replayed"],
      registers,
    });
    this.retries = new Counter({
      name: "txfn_invoke_retries_total",
      help: "Retries of transient database errors (serialization failures, deadlocks, lost connections)",
      registers,
    });
    new Gauge({
      name: "txfn_pool_connections",
      help: "Database connections of the pool, by state (in_use, idle)",
      labelNames: ["state"],
      registers,
      collect() {
        this.set({ state: "in_use" }, pool.totalCount - pool.idleCount);
        this.set({ state: "idle" }, pool.idleCount);
      },
    });
    new Gauge({
      name: "txfn_pool_waiting",
      help: "Requests waiting for a free database connection",
      registers,
      collect() {
        this.set(pool.waitingCount);
      },
    });
    new Gauge({ name: "txfn_pool_max", help: "Configured pool size", registers }).set(poolMax);
    collectDefaultMetrics({ register: this.registry });
  }

  // Labelled children, kept so a request does not hash its labels again (routes and statuses are few).
  private readonly requestChildren = new Map<string, { inc(): void }>();
  private readonly durationChildren = new Map<string, { observe(v: number): void }>();
  private readonly invocationChildren = new Map<string, { inc(): void }>();

  /** Counts one answered request; `route` is the route pattern (e.g. /v1/functions/:name). */
  request(route: string, method: string, status: number, seconds: number): void {
    const rk = `${route} ${method} ${status}`;
    let r = this.requestChildren.get(rk);
    if (!r) this.requestChildren.set(rk, (r = this.requests.labels({ route, method, status: String(status) })));
    r.inc();
    const dk = `${route} ${method}`;
    let d = this.durationChildren.get(dk);
    if (!d) this.durationChildren.set(dk, (d = this.duration.labels({ route, method })));
    d.observe(seconds);
  }

  invocation(ok: boolean, replayed: boolean): void {
    const k = `${ok} ${replayed}`;
    let c = this.invocationChildren.get(k);
    if (!c) this.invocationChildren.set(k, (c = this.invocations.labels({ outcome: ok ? "ok" : "error", replayed: String(replayed) })));
    c.inc();
  }

  retry(): void {
    this.retries.inc();
  }

  /** The text exposition format and its content type. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
