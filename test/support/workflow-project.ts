/** Workflow projects written to temp folders for the `txfn worker` tests (outside the checkout). */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** Worker flags for quick tests: short leases and polls. */
export const FAST_WORKER = ["--lease-ms", "1500", "--poll-ms", "100"];

/** Writes `files` into `<dir>/workflows/` (no package.json unless a test writes one); returns `dir`. */
export function writeProject(dir: string, files: Record<string, string>): string {
  mkdirSync(join(dir, "workflows"), { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, "workflows", name), text);
  return dir;
}

/** A workflow "greet" importing from "txfn" and from a sibling module `../text.ts` (writeGreetProject writes both). */
export const GREET = `import { workflow } from "txfn";
import { punctuation } from "../text.ts";
export const greet = workflow("greet", async (ctx, input: { who: string }) => {
  const at = await ctx.now();
  return { greeting: "hello " + input.who + punctuation, at };
});
`;

/** The greet project in `dir`: workflows/greet.ts and the text.ts it imports; returns `dir`. */
export function writeGreetProject(dir: string): string {
  writeProject(dir, { "greet.ts": GREET });
  writeFileSync(join(dir, "text.ts"), `export const punctuation: string = "!";\n`);
  return dir;
}
