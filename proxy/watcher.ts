/**
 * One dedicated connection that LISTENs to `txfn_deploys` (a bundle was activated) and
 * `txfn_tokens` (tokens changed), so the proxy's caches follow at once. Reconnects with backoff
 * when the connection is lost, and reports each (re)connection, after which the caches are
 * reloaded because notifications sent meanwhile were missed.
 */
import pg from "pg";

/** What the watcher calls on each notification and (re)connection. */
export interface WatcherHandlers {
  deploys(): void;
  tokens(): void;
  /** LISTEN is (again) in place: reload everything cached. */
  connected(): void;
  /** Logged, not thrown. */
  error(err: unknown): void;
}

/** The LISTEN connection; `start()` once, `stop()` on shutdown. */
export class Watcher {
  private client: pg.Client | undefined;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private delay = 250;
  private live = false;

  constructor(
    private readonly url: string,
    private readonly applicationName: string,
    private readonly on: WatcherHandlers,
  ) {}

  /** True while LISTEN is in place. */
  get connected(): boolean {
    return this.live;
  }

  /** Connects in the background (retrying until stop()). */
  start(): void {
    void this.connect();
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const client = new pg.Client({ connectionString: this.url, application_name: `${this.applicationName} (listen)` });
    this.client = client;
    const lost = (err?: unknown) => {
      if (this.client !== client) return;
      this.client = undefined;
      this.live = false;
      if (err) this.on.error(err);
      client.end().catch(() => {});
      if (!this.stopped) this.timer = setTimeout(() => void this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 5000);
    };
    client.on("error", lost);
    client.on("end", () => lost());
    client.on("notification", (n) => {
      if (n.channel === "txfn_deploys") this.on.deploys();
      else if (n.channel === "txfn_tokens") this.on.tokens();
    });
    try {
      await client.connect();
      await client.query("LISTEN txfn_deploys; LISTEN txfn_tokens");
      if (this.client !== client) return;
      this.live = true;
      this.delay = 250;
      this.on.connected();
    } catch (err) {
      lost(err);
    }
  }

  /** Closes the connection and stops reconnecting. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    const c = this.client;
    this.client = undefined;
    this.live = false;
    await c?.end().catch(() => {});
  }
}
