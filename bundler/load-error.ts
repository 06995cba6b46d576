/**
 * A bundle whose top-level code throws while loading (evaluated at build time by manifest.ts):
 * its stack frames mapped through the bundle's source map to the project's TypeScript files,
 * as the runtime maps errors thrown by function bodies (runtime-sql/runtime.js: mapStack).
 */
import { SourceMapConsumer } from "source-map";
import { BuildError } from "./options.ts";

/** The file name manifest.ts evaluates the bundle under (frames that name it are the bundle's). */
export const LOAD_FILENAME = "txfn-bundle.js";
/** Lines manifest.ts puts before the bundle's first line (the module wrapper). */
export const LOAD_HEADER_LINES = 1;
/** Frames of the mapped stack shown under the message. */
const MAX_FRAMES = 5;

/** The bundle's top-level code threw: the thrown value's stack, mapped by `mapLoadError`. */
export class BundleLoadError extends BuildError {
  constructor(
    readonly reason: string,
    readonly bundleStack: string | undefined,
  ) {
    super(`the bundle failed while loading its modules: ${reason}`);
  }
}

const FRAME = new RegExp(`${LOAD_FILENAME.replace(/\./g, "\\.")}:(\\d+):(\\d+)`);

/**
 * The source position of a bundle position (line 1-based, column 0-based) as file:line:column,
 * the nearest mapped segment at or after `column` on that line; null when unmapped or the map
 * cannot be read.
 */
export async function sourcePosition(sourceMap: string, line: number, column: number): Promise<string | null> {
  try {
    return await SourceMapConsumer.with(sourceMap, null, (map) => {
      const at = (bias: number) => map.originalPositionFor({ line, column, bias });
      let pos = at(SourceMapConsumer.LEAST_UPPER_BOUND);
      if (pos.source === null) pos = at(SourceMapConsumer.GREATEST_LOWER_BOUND);
      return pos.source === null || pos.line === null ? null : `${pos.source}:${pos.line}:${(pos.column ?? 0) + 1}`;
    });
  } catch {
    return null;
  }
}

/**
 * The BuildError to report for a load failure: the first frame in the project's sources as
 * file:line:column in the message, then the mapped stack frames. A map that cannot be read
 * leaves the message as it was.
 */
export async function mapLoadError(err: BundleLoadError, sourceMap: string): Promise<BuildError> {
  const frames = (err.bundleStack ?? "").split("\n").filter((l) => /^\s+at /.test(l) && FRAME.test(l));
  if (frames.length === 0) return err;
  let mapped: { text: string; at: string | null }[];
  try {
    mapped = await SourceMapConsumer.with(sourceMap, null, (map) =>
      frames.map((line) => {
        const m = FRAME.exec(line)!;
        const pos = map.originalPositionFor({ line: Number(m[1]) - LOAD_HEADER_LINES, column: Number(m[2]) - 1 });
        if (pos.source === null || pos.line === null) return { text: line.trim(), at: null };
        const at = `${pos.source}:${pos.line}:${(pos.column ?? 0) + 1}`;
        return { text: line.trim().replace(FRAME, at), at };
      }),
    );
  } catch {
    return err; // a broken map must not hide the user's error
  }
  const first = mapped.find((f) => f.at !== null && !/(^|\/)node_modules\//.test(f.at)) ?? mapped.find((f) => f.at !== null);
  if (!first) return err;
  // One frame is the location already named; more show the way there.
  const stack = mapped.length > 1 ? `\n${mapped.slice(0, MAX_FRAMES).map((f) => `    ${f.text}`).join("\n")}` : "";
  return new BuildError(`the bundle failed while loading its modules, at ${first.at}: ${err.reason}${stack}`);
}
