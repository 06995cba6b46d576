/**
 * Loads runtime-sql/runtime.js into Node (a vm context) to test its pure parts: the JSON
 * encoding, the PRNG, the pinned Date, source-map decoding, error classification. Everything
 * that touches SQL is tested against the real cluster instead.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import vm from "node:vm";

const source = readFileSync(fileURLToPath(new URL("../../runtime-sql/runtime.js", import.meta.url)), "utf8");

export interface RuntimePure {
  encode(value: unknown): string | null;
  envelopeText(id: string, version: number, output: string | null, error: string | null): string;
  makeRandom(seed: number): () => number;
  decodeMappings(mappings: string): number[][][];
  originalPosition(map: { sources: string[]; lines: number[][][] }, line: number, column: number): { source: string; line: number; column: number } | null;
  isTransient(e: unknown): boolean;
  packSqlstate(s: string): number;
  describeError(e: unknown): Record<string, unknown>;
  PinnedDate: DateConstructor;
  withPin<T>(pin: { time: number; random: () => number }, work: () => T): T;
}

/** A fresh runtime in its own JS context (so its Date/Math patches cannot leak into the test). */
export function loadRuntimePure(): { pure: RuntimePure; context: vm.Context } {
  const context = vm.createContext({});
  const factory = vm.runInContext(source, context, { filename: "runtime.js" }) as (plv8: unknown, id: string) => { _pure: RuntimePure };
  return { pure: factory({}, "test")._pure, context };
}
