/**
 * Where the demo runs. On the embedded default it uses databases of its own on the private
 * cluster (`demo` for the checkout app, `demo_oversell` for the race), dropped and created again
 * by every run, so a second `npm run demo` starts from the same state as the first. Only databases
 * it made (marked by DEMO_MARK as their comment) are dropped: an existing one without the mark is
 * refused, on every path. With
 * DATABASE_URL it runs in that database, which must not hold the checkout app yet (the demo
 * never deletes data it did not create; a database it made itself, marked by a comment, it makes
 * again), and puts the race in `<name>_oversell` beside it.
 */
import pg from "pg";
import { DemoError } from "./ui.ts";

/** The URL of another database on the same server. */
export function siblingUrl(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

export function databaseName(url: string): string {
  return decodeURIComponent(new URL(url).pathname.replace(/^\//, "")) || "postgres";
}

/** The URL with its password hidden, for printing. */
export function redact(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = "***";
  return u.toString();
}

const ident = (name: string) => `"${name.replace(/"/g, '""')}"`;

async function withClient<T>(url: string, body: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url, application_name: "txfn demo" });
  await c.connect();
  try {
    return await body(c);
  } finally {
    await c.end();
  }
}

/** The comment that marks a database the demo made (and may therefore drop). */
export const DEMO_MARK = "made by npm run demo: dropped and created again by every run";

/**
 * Refuses a database the demo did not make: throws when `name` exists on the server of
 * `serverUrl` without DEMO_MARK. Absent or marked, it returns. `howToProceed` ends the message
 * (default: pick another --database name, or drop it yourself).
 * @throws DemoError naming the database.
 */
export async function assertOwnedOrAbsent(serverUrl: string, name: string, howToProceed?: string): Promise<void> {
  await withClient(siblingUrl(serverUrl, "postgres"), (c) => refuseForeign(c, name, howToProceed));
}

async function refuseForeign(c: pg.Client, name: string, howToProceed?: string): Promise<void> {
  const { rows } = await c.query<{ mark: string | null }>("SELECT shobj_description(oid, 'pg_database') AS mark FROM pg_database WHERE datname = $1", [name]);
  if (rows.length && rows[0]!.mark !== DEMO_MARK) {
    throw new DemoError(
      `database ${name} already exists and was not made by npm run demo (it lacks the comment '${DEMO_MARK}'), ` +
        "and the demo never drops or reuses a database it did not create: it left it untouched. " +
        (howToProceed ?? `Pick another name (npm run demo -- --database <another name>), or drop ${name} yourself if you no longer need it (DROP DATABASE ${ident(name)}).`),
    );
  }
}

/**
 * Drops `name` (disconnecting its sessions) and creates it again with txv8, but only when the demo
 * made it (it carries DEMO_MARK) or it does not exist yet: a database the demo did not make is
 * never dropped nor reused. @returns its URL.
 * @throws DemoError naming the database when it exists without the mark (see assertOwnedOrAbsent).
 */
export async function freshDatabase(serverUrl: string, name: string, howToProceed?: string): Promise<string> {
  await withClient(siblingUrl(serverUrl, "postgres"), async (c) => {
    await refuseForeign(c, name, howToProceed);
    await c.query(`DROP DATABASE IF EXISTS ${ident(name)} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${ident(name)}`);
    await c.query(`COMMENT ON DATABASE ${ident(name)} IS '${DEMO_MARK}'`);
  });
  const url = siblingUrl(serverUrl, name);
  await withClient(url, (c) => c.query("CREATE EXTENSION IF NOT EXISTS txv8"));
  return url;
}

/**
 * Makes the DATABASE_URL database ready: one the demo made before (marked; e.g. DATABASE_URL still
 * exported from the explore commands) is made again; any other must not hold the checkout app
 * yet. Installs txv8.
 */
export async function checkGivenDatabase(url: string): Promise<"recreated" | "used"> {
  const mine = await withClient(url, async (c) => {
    const { rows } = await c.query<{ mark: string | null }>("SELECT shobj_description(oid, 'pg_database') AS mark FROM pg_database WHERE datname = current_database()");
    return rows[0]?.mark === DEMO_MARK;
  });
  if (mine) {
    await freshDatabase(url, databaseName(url));
    return "recreated";
  }
  await withClient(url, async (c) => {
    const { rows } = await c.query<{ n: string }>("SELECT count(*) AS n FROM pg_namespace WHERE nspname IN ('shop', 'payment_service')");
    if (rows[0]!.n !== "0") {
      throw new DemoError(
        `database ${databaseName(url)} (DATABASE_URL) already holds the checkout app (schema shop or payment_service)`,
        "point DATABASE_URL at an empty database, or unset it to use the private cluster (the demo recreates its own database there)",
      );
    }
    await c.query("CREATE EXTENSION IF NOT EXISTS txv8");
  });
  return "used";
}

/** Runs `body` on a client of `url`, closed afterwards. */
export function onDatabase<T>(url: string, body: (c: pg.Client) => Promise<T>): Promise<T> {
  return withClient(url, body);
}
