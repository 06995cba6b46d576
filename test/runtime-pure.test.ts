// The pure parts of the in-database runtime (runtime-sql/runtime.js), run in a Node vm context.
import { TraceMap, originalPositionFor } from "@jridgewell/trace-mapping";
import vm from "node:vm";
import { describe, expect, it } from "vitest";
import { build } from "../bundler/index.ts";
import { loadRuntimePure } from "./support/runtime.ts";

const { pure, context } = loadRuntimePure();
const inCtx = <T>(code: string): T => vm.runInContext(code, context) as T;

describe("runtime JSON encoding (runtime-sql/README.md)", () => {
  it("encodes bigint as a decimal string, Date as ISO-8601 UTC, bytes as \\x hex, undefined as nothing", () => {
    expect(pure.encode(inCtx("({ n: 9007199254740993n, neg: -5n })"))).toBe('{"n":"9007199254740993","neg":"-5"}');
    expect(pure.encode(inCtx("({ at: new Date(Date.UTC(2024, 4, 1, 12, 30, 0, 123)) })"))).toBe('{"at":"2024-05-01T12:30:00.123Z"}');
    expect(pure.encode(inCtx("new Date(0)"))).toBe('"1970-01-01T00:00:00.000Z"');
    expect(pure.encode(inCtx("({ b: new Uint8Array([0, 15, 255]) })"))).toBe('{"b":"\\\\x000fff"}');
    expect(pure.encode(undefined)).toBeNull();
    expect(pure.encode(inCtx("({ a: undefined, b: [1, undefined, 2] })"))).toBe('{"b":[1,null,2]}');
    expect(pure.encode(null)).toBe("null");
  });

  it("keeps every double exactly (shortest round-trip), unlike plv8's 15-digit jsonb conversion", () => {
    const text = pure.encode(0.1 + 0.2)!;
    expect(text).toBe("0.30000000000000004");
    expect(JSON.parse(text)).toBe(0.1 + 0.2);
  });
});

describe("determinism", () => {
  it("a seed gives the same sequence every time; different seeds differ", () => {
    const a = pure.makeRandom(42);
    const b = pure.makeRandom(42);
    const c = pure.makeRandom(43);
    const sa = Array.from({ length: 5 }, () => a());
    expect(Array.from({ length: 5 }, () => b())).toEqual(sa);
    expect(Array.from({ length: 5 }, () => c())).not.toEqual(sa);
    for (const x of sa) expect(x >= 0 && x < 1).toBe(true);
  });

  it("pins Date.now(), new Date(), Date() and Math.random() inside withPin and restores them after", () => {
    const time = Date.UTC(2030, 0, 2, 3, 4, 5, 6);
    const seen = pure.withPin({ time, random: pure.makeRandom(7) }, () =>
      inCtx<{ now: number; fresh: number; str: string; r: number; isDate: boolean; explicit: number }>(
        "({ now: Date.now(), fresh: new Date().getTime(), str: Date(), r: Math.random(), isDate: new Date() instanceof Date, explicit: new Date(5).getTime() })",
      ),
    );
    expect(seen.now).toBe(time);
    expect(seen.fresh).toBe(time);
    expect(seen.str).toContain("2030");
    expect(seen.r).toBe(pure.makeRandom(7)());
    expect(seen.isDate).toBe(true);
    expect(seen.explicit).toBe(5);
    expect(Math.abs(inCtx<number>("Date.now()") - Date.now())).toBeLessThan(5_000);
  });
});

describe("errors", () => {
  it("classifies transient SQLSTATEs (never recorded) apart from application errors", () => {
    for (const s of ["40001", "40P01", "57P01", "57014", "08006", "53200", "XX001"]) expect(pure.isTransient({ sqlerrcode: s })).toBe(true);
    for (const s of ["23514", "23505", "22012", "P0001", "XX000", "42P01"]) expect(pure.isTransient({ sqlerrcode: s })).toBe(false);
    expect(pure.isTransient(new Error("plain"))).toBe(false);
    expect(pure.isTransient("a string")).toBe(false);
  });

  it("packs SQLSTATEs as PostgreSQL's MAKE_SQLSTATE", () => {
    // ERRCODE_T_R_SERIALIZATION_FAILURE = MAKE_SQLSTATE('4','0','0','0','1')
    expect(pure.packSqlstate("40001")).toBe(4 + (1 << 24));
    expect(pure.packSqlstate("00000")).toBe(0);
  });

  it("records name, message, SQL fields and the error's own data", () => {
    const e = inCtx("(() => { class OutOfStock extends Error { constructor() { super('no stock'); this.name = 'OutOfStock'; this.sku = 'a'; this.count = 3n; } } return new OutOfStock(); })()");
    const d = pure.describeError(e);
    expect(d).toMatchObject({ name: "OutOfStock", message: "no stock", data: { sku: "a", count: "3" } });
    expect(pure.describeError({ message: "check", sqlerrcode: "23514", constraint_name: "c", table_name: "t", name: "Error" })).toMatchObject({
      sqlstate: "23514",
      constraint: "c",
      table: "t",
    });
    expect(pure.describeError("just a string")).toEqual({ name: "Error", message: "just a string", thrown: "just a string" });
  });
});

describe("source maps", () => {
  it("decodes an esbuild map to the same positions as @jridgewell/trace-mapping", async () => {
    const b = await build("functions", { schemas: false });
    const raw = JSON.parse(b.sourceMap) as { sources: string[]; mappings: string };
    const map = { sources: raw.sources, lines: pure.decodeMappings(raw.mappings) };
    const oracle = new TraceMap(raw as never);
    const lines = b.code.split("\n");
    let checked = 0;
    for (let line = 1; line <= lines.length; line += 3) {
      for (const column of [1, 5, 17]) {
        if (column > lines[line - 1]!.length) continue;
        const want = originalPositionFor(oracle, { line, column: column - 1 });
        const got = pure.originalPosition(map, line, column);
        if (want.source === null) continue;
        expect(got).toEqual({ source: want.source, line: want.line, column: want.column! + 1 });
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(50);
  });
});

describe("recording odd errors", () => {
  it("an error whose data cannot be encoded (a cycle) is still described", () => {
    const e = inCtx("(() => { const e = new Error('cyclic'); e.self = { e }; e.self.back = e.self; return e; })()");
    expect(pure.describeError(e)).toMatchObject({ name: "Error", message: "cyclic", data: { unencodable: expect.stringMatching(/circular/i) } });
  });

  it("the fresh envelope matches the documented shape", () => {
    expect(JSON.parse(pure.envelopeText("7", 3, '{"a":1}', null))).toEqual({ output: { a: 1 }, invocationId: "7", version: 3, replayed: false });
    expect(JSON.parse(pure.envelopeText("7", 3, null, null))).toEqual({ invocationId: "7", version: 3, replayed: false });
    expect(JSON.parse(pure.envelopeText("7", 3, null, '{"name":"E"}'))).toEqual({ error: { name: "E" }, invocationId: "7", version: 3, replayed: false });
  });
});
