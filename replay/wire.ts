/**
 * A lean PostgreSQL protocol connection for replay's scratch sessions.
 *
 * A replayed invocation costs its session a message or two (BEGIN with the invocation, COMMIT),
 * ~15,600 for the bench's 10,000-invocation trace. Through node-postgres's Client each one went
 * through its query queue, a Query and a Result per statement, an event per protocol message,
 * type parsers and Node's readable stream (measured with perf over a replay's run phase:
 * node-postgres and the stream machinery were half of the Node process's main-thread CPU).
 * Replay needs none of that: every value it reads is text, it sends one message at a time per
 * session, and it needs rows, row counts and errors.
 *
 * So node-postgres's Client opens the connection (every URL form, TLS, every authentication
 * method), and this class then talks on its socket with node-postgres's own protocol codec,
 * pg-protocol: its serializer builds every message sent, its parser frames and decodes every
 * message read (partial and multi-read messages included). What is ours is only the bookkeeping
 * of which reply belongs to which query.
 *
 * Results are rows of text (null for NULL) keyed by column name; errors are WireError
 * (pg-protocol's DatabaseError, the class node-postgres throws) with the server's SQLSTATE in
 * `code`.
 */
import pg from "pg";
import { DatabaseError, parse, serialize } from "pg-protocol";
import type { BackendMessage, CommandCompleteMessage, DataRowMessage, RowDescriptionMessage } from "pg-protocol/dist/messages.js";

/** One statement's result. */
export interface WireResult {
  /** command tag, e.g. "INSERT 0 1", "SELECT 1", "COMMIT" */
  command: string;
  /** rows affected or returned (the tag's last number; 0 when it has none) */
  rowCount: number;
  rows: Record<string, string | null>[];
}

/** An ErrorResponse of the server (pg-protocol's DatabaseError): `code` is the SQLSTATE. */
export { DatabaseError as WireError };

interface Pending {
  results: WireResult[];
  error: DatabaseError | null;
  resolve: (r: WireResult[]) => void;
  reject: (e: Error) => void;
}

/** What Wire uses of node-postgres's connection socket (a net.Socket or tls.TLSSocket). */
interface Socket extends NodeJS.ReadableStream {
  write(b: Buffer): boolean;
}

/**
 * The socket of a connected node-postgres Client, taken over: node-postgres's reader of it is
 * removed (the connection is idle — connect() resolved after ReadyForQuery — so it holds no
 * unread message). This is the one place that depends on node-postgres's internals
 * (`client.connection.stream`, `client.processID`; pg 8).
 * @throws Error when they are not where pg 8 keeps them.
 */
function takeSocket(client: pg.Client): { socket: Socket; pid: number } {
  const c = client as unknown as { connection?: { stream?: Socket }; processID?: number };
  const socket = c.connection?.stream;
  if (!socket || typeof socket.write !== "function" || typeof socket.removeAllListeners !== "function" || typeof c.processID !== "number") {
    throw new Error("replay: node-postgres's connection socket is not accessible (client.connection.stream, client.processID: pg major version changed?)");
  }
  socket.removeAllListeners("data");
  return { socket, pid: c.processID };
}

/** A connection that sends queries and reads their results with pg-protocol; node-postgres only opened it. */
export class Wire {
  /** the server process of this connection */
  pid = 0;
  private socket: Socket | null = null;
  private readonly queue: Pending[] = [];
  /** column names of the current result (RowDescription) */
  private fields: string[] = [];
  private rows: Record<string, string | null>[] = [];
  private closed: Error | null = null;

  constructor(readonly client: pg.Client) {}

  /**
   * Connects through node-postgres, then reads the socket itself.
   * @throws the connection error, or an Error when node-postgres's socket is not where it was
   *   (another major version).
   */
  async connect(): Promise<void> {
    await this.client.connect();
    const { socket, pid } = takeSocket(this.client);
    this.pid = pid;
    void parse(socket, (m) => this.message(m));
    socket.on("close", () => this.lost(new Error("Connection terminated")));
    socket.on("error", (e?: Error) => this.lost(e ?? new Error("connection error")));
    // node-postgres reports a lost connection as an 'error' event of the client (which would
    // throw with no listener); the pending queries get it through lost(), later ones from send().
    this.client.on("error", () => {});
    this.socket = socket;
  }

  /** Ends the connection (Terminate); harmless when it is already gone. */
  async close(): Promise<void> {
    await this.client.end().catch(() => {});
  }

  /**
   * One simple-query message: every statement of `text` in one round trip.
   * @returns each statement's result, in order.
   * @throws WireError of the first statement that failed (the server skips the rest).
   */
  query(text: string): Promise<WireResult[]> {
    return this.send(serialize.query(text));
  }

  /**
   * One statement with text parameters ($1 …), through the unnamed statement (Parse, Bind,
   * Describe, Execute, Sync in one write).
   * @throws WireError
   */
  async queryParams(text: string, values: (string | null)[]): Promise<WireResult> {
    const m = Buffer.concat([
      serialize.parse({ text }),
      serialize.bind({ values }), // strings as text, null as NULL; results as text
      serialize.describe({ type: "P" }),
      serialize.execute(),
      serialize.sync(),
    ]);
    const r = await this.send(m);
    return r[r.length - 1]!;
  }

  private send(m: Buffer): Promise<WireResult[]> {
    if (this.closed) return Promise.reject(this.closed);
    if (!this.socket) return Promise.reject(new Error("replay: query on a connection that is not open"));
    return new Promise<WireResult[]>((resolve, reject) => {
      this.queue.push({ results: [], error: null, resolve, reject });
      this.socket!.write(m);
    });
  }

  private lost(err: Error): void {
    if (this.closed) return;
    this.closed = err;
    for (const p of this.queue.splice(0)) p.reject(p.error ?? err); // e.g. the FATAL that ended it
  }

  /** One backend message, as pg-protocol's parser decoded it. */
  private message(m: BackendMessage): void {
    const p = this.queue[0];
    switch (m.name) {
      case "rowDescription":
        this.fields = (m as RowDescriptionMessage).fields.map((f) => f.name);
        this.rows = [];
        return;
      case "dataRow": {
        const values = (m as DataRowMessage).fields as (string | null)[];
        const row: Record<string, string | null> = {};
        for (let k = 0; k < values.length; k++) row[this.fields[k]!] = values[k]!;
        this.rows.push(row);
        return;
      }
      case "commandComplete": {
        const command = (m as CommandCompleteMessage).text;
        const sp = command.lastIndexOf(" ");
        const count = sp < 0 ? NaN : Number(command.slice(sp + 1));
        p?.results.push({ command, rowCount: Number.isFinite(count) ? count : 0, rows: this.rows });
        this.fields = [];
        this.rows = [];
        return;
      }
      case "emptyQuery":
        p?.results.push({ command: "", rowCount: 0, rows: [] });
        return;
      case "error": {
        const err = m as DatabaseError;
        if (p) p.error ??= err;
        else this.lost(err); // FATAL outside a query (e.g. terminated by the administrator)
        this.fields = [];
        this.rows = [];
        return;
      }
      case "readyForQuery":
        this.queue.shift();
        if (!p) return;
        if (p.error) p.reject(p.error);
        else p.resolve(p.results);
        return;
      default: // parseComplete, bindComplete, noData, notices, parameter status, notifications
        return;
    }
  }
}
