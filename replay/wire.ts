/**
 * A lean PostgreSQL protocol connection for replay's scratch sessions.
 *
 * A replayed invocation costs its session a message or two (BEGIN with the invocation, COMMIT),
 * ~15,600 for the bench's 10,000-invocation trace. Through node-postgres each one went through
 * its query queue, a Query and a Result per statement, an event per protocol message, type
 * parsers and Node's readable stream (measured with perf over a replay's run phase: node-postgres
 * and the stream machinery were half of the Node process's main-thread CPU). Replay needs none
 * of that: every value it reads is text, it sends one message at a time per session, and it
 * needs rows, row counts and errors. node-postgres still opens the connection (every URL form,
 * TLS, every authentication method); this class then reads the socket itself.
 *
 * Results are rows of text (null for NULL) keyed by column name; errors are WireError with the
 * server's SQLSTATE in `code`, as node-postgres gives them.
 */
import pg from "pg";

/** One statement's result. */
export interface WireResult {
  /** command tag, e.g. "INSERT 0 1", "SELECT 1", "COMMIT" */
  command: string;
  /** rows affected or returned (the tag's last number; 0 when it has none) */
  rowCount: number;
  rows: Record<string, string | null>[];
}

/** An ErrorResponse of the server: `code` is the SQLSTATE. */
export class WireError extends Error {
  code: string | undefined;
  severity: string | undefined;
  detail: string | undefined;
  hint: string | undefined;

  constructor(fields: Map<string, string>) {
    super(fields.get("M") ?? "unknown server error");
    this.code = fields.get("C");
    this.severity = fields.get("S");
    this.detail = fields.get("D");
    this.hint = fields.get("H");
  }
}

interface Pending {
  results: WireResult[];
  error: WireError | null;
  resolve: (r: WireResult[]) => void;
  reject: (e: Error) => void;
}

interface Socket {
  write(b: Buffer): boolean;
  on(event: "data", f: (b: Buffer) => void): unknown;
  on(event: "close" | "error", f: (e?: Error) => void): unknown;
  removeAllListeners(event: string): unknown;
}

const EMPTY = Buffer.alloc(0);

/** A connection that sends queries and reads their results itself; node-postgres only opened it. */
export class Wire {
  /** the server process of this connection */
  pid = 0;
  private socket: Socket | null = null;
  /** the start of a message not complete yet, in the chunks it came in, and the bytes it needs */
  private partial: Buffer[] = [];
  private partialBytes = 0;
  private partialNeeds = 0;
  private readonly queue: Pending[] = [];
  /** columns of the current result (RowDescription) */
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
    const socket = (this.client as unknown as { connection?: { stream?: Socket } }).connection?.stream;
    if (!socket || typeof socket.write !== "function") throw new Error("replay: node-postgres's connection socket is not accessible (pg version?)");
    this.pid = (this.client as unknown as { processID: number }).processID;
    socket.removeAllListeners("data"); // node-postgres's parser: the connection is idle (ReadyForQuery read)
    socket.on("data", (b) => this.onData(b));
    socket.on("close", () => this.lost(new Error("Connection terminated")));
    socket.on("error", (e) => this.lost(e ?? new Error("connection error")));
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
    const body = Buffer.from(text, "utf8");
    const m = Buffer.allocUnsafe(6 + body.length);
    m[0] = 0x51; // Query
    m.writeInt32BE(5 + body.length, 1);
    body.copy(m, 5);
    m[5 + body.length] = 0;
    return this.send(m);
  }

  /**
   * One statement with text parameters ($1 …), through the unnamed statement (Parse, Bind,
   * Describe, Execute, Sync in one write).
   * @throws WireError
   */
  async queryParams(text: string, values: (string | null)[]): Promise<WireResult> {
    const parts: Buffer[] = [];
    const msg = (type: number, payload: Buffer) => {
      const h = Buffer.allocUnsafe(5);
      h[0] = type;
      h.writeInt32BE(4 + payload.length, 1);
      parts.push(h, payload);
    };
    const sql = Buffer.from(text, "utf8");
    const parse = Buffer.alloc(1 + sql.length + 1 + 2); // "" name, text, no parameter types
    sql.copy(parse, 1);
    msg(0x50, parse);
    const vals = values.map((v) => (v === null ? null : Buffer.from(v, "utf8")));
    const bind = Buffer.alloc(2 + 2 + 2 + vals.reduce((n, v) => n + 4 + (v?.length ?? 0), 0) + 2);
    let o = 2; // "" portal, "" statement
    o = bind.writeInt16BE(0, o); // all parameters text
    o = bind.writeInt16BE(vals.length, o);
    for (const v of vals) {
      o = bind.writeInt32BE(v === null ? -1 : v.length, o);
      if (v) o += v.copy(bind, o);
    }
    bind.writeInt16BE(0, o); // all results text
    msg(0x42, bind);
    msg(0x44, Buffer.from([0x50, 0])); // Describe portal ""
    msg(0x45, Buffer.from([0, 0, 0, 0, 0])); // Execute portal "", all rows
    msg(0x53, EMPTY); // Sync
    const r = await this.send(Buffer.concat(parts));
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

  private onData(chunk: Buffer): void {
    let b = chunk;
    if (this.partial.length) {
      // A message longer than a read (a wide row) is joined once, when all of it is here.
      this.partial.push(chunk);
      this.partialBytes += chunk.length;
      if (this.partialBytes < this.partialNeeds) return;
      b = Buffer.concat(this.partial, this.partialBytes);
      this.partial = [];
    }
    let at = 0;
    while (b.length - at >= 5) {
      const len = b.readInt32BE(at + 1);
      if (b.length - at < 1 + len) break;
      this.message(b[at]!, b, at + 5, at + 1 + len);
      at += 1 + len;
    }
    if (at < b.length) {
      const rest = b.subarray(at);
      this.partial = [rest];
      this.partialBytes = rest.length;
      this.partialNeeds = rest.length >= 5 ? 1 + rest.readInt32BE(1) : 5;
    }
  }

  /** One backend message: type, and its payload as b[start, end). */
  private message(type: number, b: Buffer, start: number, end: number): void {
    const p = this.queue[0];
    switch (type) {
      case 0x54: { // RowDescription
        const n = b.readInt16BE(start);
        const fields: string[] = [];
        let o = start + 2;
        for (let k = 0; k < n; k++) {
          const z = b.indexOf(0, o);
          fields.push(b.toString("utf8", o, z));
          o = z + 1 + 18; // table oid, column, type oid, size, modifier, format
        }
        this.fields = fields;
        this.rows = [];
        return;
      }
      case 0x44: { // DataRow
        const n = b.readInt16BE(start);
        const row: Record<string, string | null> = {};
        let o = start + 2;
        for (let k = 0; k < n; k++) {
          const len = b.readInt32BE(o);
          o += 4;
          row[this.fields[k]!] = len < 0 ? null : b.toString("utf8", o, o + len);
          if (len > 0) o += len;
        }
        this.rows.push(row);
        return;
      }
      case 0x43: { // CommandComplete
        const command = b.toString("utf8", start, end - 1);
        const sp = command.lastIndexOf(" ");
        const count = sp < 0 ? NaN : Number(command.slice(sp + 1));
        p?.results.push({ command, rowCount: Number.isFinite(count) ? count : 0, rows: this.rows });
        this.fields = [];
        this.rows = [];
        return;
      }
      case 0x49: // EmptyQueryResponse
        p?.results.push({ command: "", rowCount: 0, rows: [] });
        return;
      case 0x45: { // ErrorResponse
        const fields = new Map<string, string>();
        let o = start;
        while (o < end && b[o] !== 0) {
          const z = b.indexOf(0, o + 1);
          fields.set(String.fromCharCode(b[o]!), b.toString("utf8", o + 1, z));
          o = z + 1;
        }
        const err = new WireError(fields);
        if (p) p.error ??= err;
        else this.lost(err); // FATAL outside a query (e.g. terminated by the administrator)
        this.fields = [];
        this.rows = [];
        return;
      }
      case 0x5a: { // ReadyForQuery
        this.queue.shift();
        if (!p) return;
        if (p.error) p.reject(p.error);
        else p.resolve(p.results);
        return;
      }
      default: // ParseComplete, BindComplete, NoData, notices, parameter status, notifications
        return;
    }
  }
}
