/**
 * bench/replay/wire-instructions: the Node work of replay/wire.ts alone, for counting
 * instructions with callgrind (deterministic where a replay's CPU time on this shared machine is
 * not). A Wire over a fake socket that answers each message at once with a canned reply of
 * replay's two usual round trips: the open ("COMMIT; BEGIN …; EXECUTE txfn_replay_open(…)":
 * two command tags, a 3-column row with an envelope, SELECT 1) and the commit ("COMMIT; SELECT
 * <changes>": two 9-column provenance rows). No server, no sockets.
 *
 * Usage: npx tsx bench/replay/wire-instructions.ts [--wire path/to/wire.ts] [--pairs 20000] [--show]
 * (--show prints the first pair's results, to check two versions read the same).
 * Per pair of round trips: run it under callgrind with two --pairs values and divide the
 * difference, e.g.
 *   valgrind --tool=callgrind --callgrind-out-file=/dev/null node --single-threaded \
 *     --import tsx bench/replay/wire-instructions.ts --pairs 20000   (and --pairs 2000)
 */
import { EventEmitter } from "node:events";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import type pg from "pg";
import type { Wire as WireClass } from "../../replay/wire.ts";

const { values: args } = parseArgs({
  options: { wire: { type: "string", default: "replay/wire.ts" }, pairs: { type: "string", default: "20000" }, show: { type: "boolean", default: false } },
});

/** One backend message: type byte, length, payload. */
function msg(type: string, payload: Buffer): Buffer {
  const h = Buffer.alloc(5);
  h[0] = type.charCodeAt(0);
  h.writeInt32BE(4 + payload.length, 1);
  return Buffer.concat([h, payload]);
}
const cstr = (s: string) => Buffer.from(`${s}\0`, "utf8");
const int16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const commandComplete = (tag: string) => msg("C", cstr(tag));
const rowDescription = (names: string[]) =>
  msg("T", Buffer.concat([int16(names.length), ...names.map((n) => Buffer.concat([cstr(n), Buffer.alloc(18)]))]));
const dataRow = (values: (string | null)[]) =>
  msg(
    "D",
    Buffer.concat([
      int16(values.length),
      ...values.map((v) => {
        const len = Buffer.alloc(4);
        if (v === null) return (len.writeInt32BE(-1), len);
        const b = Buffer.from(v, "utf8");
        len.writeInt32BE(b.length);
        return Buffer.concat([len, b]);
      }),
    ]),
  );
const readyForQuery = msg("Z", Buffer.from("I"));

const envelope = JSON.stringify({ ok: true, result: { orderId: "3f0c5c1e-8d7a-4c61-9a55-0b8f1f7e2a11", total: 129.5, items: 3 }, version: 1 });
const OPEN = Buffer.concat([
  commandComplete("COMMIT"),
  commandComplete("BEGIN"),
  rowDescription(["pg_advisory_xact_lock", "e", "x"]),
  dataRow(["", envelope, "918273"]),
  commandComplete("SELECT 1"),
  readyForQuery,
]);
const change = (seq: number) => [
  "918273", String(seq), "3f0c5c1e-8d7a-4c61-9a55-0b8f1f7e2a11", "16412", "U", '{"id": 42}', null,
  '{"id": 42, "sku": "A-1", "stock": 17, "price": 12.5}', '{"id": 42, "sku": "A-1", "stock": 16, "price": 12.5}',
];
const COMMIT = Buffer.concat([
  commandComplete("COMMIT"),
  rowDescription(["xid", "seq", "invocation_id", "table_id", "op", "key", "old_key", "old_row", "new_row"]),
  dataRow(change(1)),
  dataRow(change(2)),
  commandComplete("SELECT 2"),
  readyForQuery,
]);

/** A socket that answers each write at once: OPEN and COMMIT in turn. */
class FakeSocket extends EventEmitter {
  private n = 0;
  write(_b: Buffer): boolean {
    this.emit("data", this.n++ % 2 === 0 ? OPEN : COMMIT);
    return true;
  }
}

const { Wire } = (await import(resolve(args.wire))) as { Wire: typeof WireClass };
const client = { connect: async () => {}, on: () => {}, end: async () => {}, connection: { stream: new FakeSocket() }, processID: 1 };
const w = new Wire(client as unknown as pg.Client);
await w.connect();
let rows = 0;
for (let k = 0; k < Number(args.pairs); k++) {
  const open = await w.query("COMMIT; BEGIN ISOLATION LEVEL READ COMMITTED; EXECUTE txfn_replay_open('a', '{}', 'b', '{}', 1)");
  const done = await w.query("COMMIT; SELECT changes");
  rows += open[2]!.rows.length + done[1]!.rows.length;
  if (args.show && k === 0) console.log(JSON.stringify([open, done])); // to compare two wire.ts
}
console.log(`${args.pairs} pairs, ${rows} rows`);
