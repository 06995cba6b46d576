/** `txfn token create|list|revoke`: bearer tokens of the HTTP proxy (proxy/tokens.ts). */
import type { Command } from "commander";
import { databaseUrl } from "../../db/connection.ts";
import { CliError } from "../errors.ts";

/** The proxy's token functions, imported on use (the proxy package loads fastify). */
const tokens = () => import("../../proxy/index.ts");

const list = (text: string | undefined): string[] => (text ? text.split(",").map((s) => s.trim()).filter(Boolean) : []);

/** A time in the future: ISO-8601, or a duration from now (30m, 12h, 30d). */
function parseExpiry(text: string): Date {
  const m = /^(\d+)(m|h|d)$/.exec(text);
  if (m) return new Date(Date.now() + Number(m[1]) * { m: 60e3, h: 3600e3, d: 86400e3 }[m[2] as "m" | "h" | "d"]);
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new CliError(`--expires: cannot read ${JSON.stringify(text)} as a time`, "use a duration (30m, 12h, 30d) or ISO-8601");
  return new Date(t);
}

async function run<T>(body: () => Promise<T>): Promise<T> {
  const { TokenError } = await tokens();
  try {
    return await body();
  } catch (err) {
    if (err instanceof TokenError) throw new CliError(err.message);
    throw err;
  }
}

/** Registers `txfn token create|list|revoke`. */
export function registerTokenCommands(program: Command): void {
  const token = program.command("token").description("bearer tokens for `txfn serve`: each allows a list of functions and workflows");

  token
    .command("create")
    .description("create a token and print it once (only its sha256 is stored); give at least one of --functions, --workflows")
    .option("--name <name>", "a label to recognise and revoke it by (unique among live tokens, not all digits)")
    .option("--functions <list>", "comma-separated functions it may invoke, '*' = all (e.g. reserveInventory,markPaid)")
    .option("--workflows <list>", "comma-separated workflows it may start and read, '*' = all")
    .option("--expires <when>", "when it stops working: a duration from now (30m, 12h, 30d) or an ISO-8601 time; default never")
    .option("--json", "print {id, name, token, functions, workflows, expiresAt} as JSON")
    .action(async (opts: { name?: string; functions?: string; workflows?: string; expires?: string; json?: boolean }) => {
      const spec = {
        ...(opts.name !== undefined ? { name: opts.name } : {}),
        functions: list(opts.functions),
        workflows: list(opts.workflows),
        ...(opts.expires !== undefined ? { expiresAt: parseExpiry(opts.expires) } : {}),
      };
      const t = await run(async () => (await tokens()).createToken(await databaseUrl({ log: (m) => console.error(m) }), spec));
      for (const f of t.unknownFunctions) console.error(`txfn: warning: ${f} is not a function of the active bundle (the token allows it anyway)`);
      if (opts.json) {
        const { unknownFunctions: _unknown, ...out } = t;
        return console.log(JSON.stringify(out, null, 2));
      }
      console.log(t.token);
      console.error(
        `token ${t.id}${t.name ? ` (${t.name})` : ""}: functions ${t.functions.join(",") || "none"}; workflows ${t.workflows.join(",") || "none"}; ` +
          `expires ${t.expiresAt ? t.expiresAt.toISOString() : "never"}. Keep it secret: it is not shown again. ` +
          "Use it as: Authorization: Bearer <token>",
      );
    });

  token
    .command("list")
    .description("list tokens (never the secrets): id, name, prefix, what they allow, expiry")
    .option("--all", "include revoked tokens")
    .option("--json", "print JSON")
    .action(async (opts: { all?: boolean; json?: boolean }) => {
      const rows = await run(async () => (await tokens()).listTokens(await databaseUrl({ log: (m) => console.error(m) }), { all: opts.all === true }));
      if (opts.json) return console.log(JSON.stringify(rows, null, 2));
      if (rows.length === 0) return console.log("no tokens");
      for (const r of rows) {
        const state = r.revokedAt ? `revoked ${r.revokedAt.toISOString()}` : r.expiresAt ? `expires ${r.expiresAt.toISOString()}` : "no expiry";
        console.log(
          `${String(r.id).padStart(5)}  ${(r.name ?? "-").padEnd(16)} ${r.prefix}…  functions ${r.functions.join(",") || "-"}  ` +
            `workflows ${r.workflows.join(",") || "-"}  ${state}`,
        );
      }
    });

  token
    .command("revoke")
    .description("revoke a live token by id or name; running proxies stop accepting it at once (NOTIFY)")
    .argument("<id-or-name>", "the token's id or name (see txfn token list)")
    .action(async (idOrName: string) => {
      const r = await run(async () => (await tokens()).revokeToken(await databaseUrl({ log: (m) => console.error(m) }), idOrName));
      console.log(`revoked token ${r.id}${r.name ? ` (${r.name})` : ""}`);
    });
}
