#!/usr/bin/env node
// The txfn command: registers tsx so the TypeScript sources run directly, then runs the CLI.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../cli/main.ts");
await main(process.argv);
