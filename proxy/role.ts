/**
 * The database role functions run as behind the proxy.
 *
 * The proxy's pool CONNECTS as a non-superuser login role that is a member of `txfn_invoker`,
 * rather than connecting as an administrator and running SET ROLE: code running in a session
 * can RESET ROLE, so SET ROLE would be no boundary for the functions' SQL. Two ways to get it:
 *
 * - `--invoker-url`: the operator made the role and gives its URL (`checkInvokerRole` verifies it);
 *   the proxy then never sees administrator credentials.
 * - otherwise `provisionInvokerRole` makes it from the administrator URL (DATABASE_URL or the
 *   private cluster): CREATE/ALTER ROLE … LOGIN, GRANT txfn_invoker. Its password is derived from
 *   the administrator's (HMAC-SHA256), so every proxy started with the same URL agrees on it and
 *   nothing is stored; it is sent as a SCRAM-SHA-256 verifier, never as clear text.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";
import pg from "pg";
import { ensureSystemSchema } from "../migrations/index.ts";

/** The role cannot serve: superuser, missing grant, schema too old, or a bad name. */
export class ProxyRoleError extends Error {
  override name = "ProxyRoleError";
}

const ROLE_RE = /^[a-z_][a-z0-9_]{0,62}$/;

/** The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677), so ALTER ROLE never carries the password. */
export function scramVerifier(password: string, salt = randomBytes(16), iterations = 4096): string {
  const salted = pbkdf2Sync(password.normalize("NFKC"), salt, iterations, 32, "sha256");
  const clientKey = createHmac("sha256", salted).update("Client Key").digest();
  const storedKey = createHash("sha256").update(clientKey).digest();
  const serverKey = createHmac("sha256", salted).update("Server Key").digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString("base64")}$${storedKey.toString("base64")}:${serverKey.toString("base64")}`;
}

/** The URL of `role` at the same server and database as `adminUrl`, with its derived password. */
export function invokerUrlFor(adminUrl: string, role: string): string {
  const url = new URL(adminUrl);
  const secret = decodeURIComponent(url.password) || process.env.PGPASSWORD || "";
  if (!secret) throw new ProxyRoleError("the administrator URL has no password to derive the proxy role's from; give --invoker-url instead");
  const password = createHmac("sha256", secret).update(`txfn proxy role ${role}`).digest("base64url");
  url.username = role;
  url.password = password;
  return url.toString();
}

interface RoleState {
  rolsuper: boolean;
  rolcanlogin: boolean;
  member: boolean;
}

async function roleState(c: pg.ClientBase, role: string): Promise<RoleState | undefined> {
  const r = await c.query<RoleState>(
    "SELECT rolsuper, rolcanlogin, pg_has_role(oid, 'txfn_invoker', 'MEMBER') AS member FROM pg_roles WHERE rolname = $1",
    [role],
  );
  return r.rows[0];
}

async function canConnect(url: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: url });
  try {
    await c.connect();
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => {});
  }
}

/**
 * Brings the txfn schema up to date and makes sure `role` exists as a non-superuser login role
 * in `txfn_invoker` whose password is the derived one.
 * @returns the URL the proxy's pool connects with.
 * @throws ProxyRoleError for a bad name or a role that is a superuser.
 */
export async function provisionInvokerRole(adminUrl: string, role: string): Promise<string> {
  if (!ROLE_RE.test(role)) throw new ProxyRoleError(`--role ${JSON.stringify(role)}: use a lower-case SQL name (letters, digits, _), at most 63 characters`);
  const url = invokerUrlFor(adminUrl, role);
  const admin = new pg.Client({ connectionString: adminUrl, application_name: "txfn-serve" });
  await admin.connect();
  try {
    await admin.query("BEGIN");
    try {
      await ensureSystemSchema(admin);
      await admin.query("COMMIT");
    } catch (err) {
      await admin.query("ROLLBACK").catch(() => {});
      throw err;
    }
    for (let attempt = 1; ; attempt++) {
      const state = await roleState(admin, role);
      if (state?.rolsuper) throw new ProxyRoleError(`role ${role} is a superuser: functions must run as a non-superuser role (choose another --role)`);
      if (state?.rolcanlogin && state.member && (await canConnect(url))) return url;
      const verifier = admin.escapeLiteral(scramVerifier(new URL(url).password));
      const ident = admin.escapeIdentifier(role);
      try {
        if (!state) await admin.query(`CREATE ROLE ${ident} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD ${verifier}`);
        else await admin.query(`ALTER ROLE ${ident} WITH LOGIN PASSWORD ${verifier}`);
        await admin.query(`GRANT txfn_invoker TO ${ident}`);
        return url;
      } catch (err) {
        // Another proxy (or test database) is setting up the same cluster-wide role right now.
        const code = (err as { code?: string }).code;
        const raced = code === "42710" || code === "23505" || /concurrently/.test((err as Error).message);
        if (!raced || attempt >= 5) throw err;
        await new Promise((r) => setTimeout(r, 50 * attempt));
      }
    }
  } finally {
    await admin.end().catch(() => {});
  }
}

/**
 * Verifies that `invokerUrl` logs in as a non-superuser member of txfn_invoker, in a database
 * whose txfn schema has tokens.
 * @returns the role name.
 * @throws ProxyRoleError saying what to change.
 */
export async function checkInvokerRole(invokerUrl: string): Promise<string> {
  const c = new pg.Client({ connectionString: invokerUrl, application_name: "txfn-serve" });
  await c.connect();
  try {
    const r = await c.query<{ role: string; rolsuper: boolean; has_invoker: boolean; member: boolean | null; tokens: boolean }>(
      "SELECT current_user AS role, r.rolsuper, EXISTS (SELECT FROM pg_roles WHERE rolname = 'txfn_invoker') AS has_invoker, " +
        "CASE WHEN EXISTS (SELECT FROM pg_roles WHERE rolname = 'txfn_invoker') THEN pg_has_role(current_user, 'txfn_invoker', 'MEMBER') END AS member, " +
        "to_regprocedure('txfn.token_grants(text)') IS NOT NULL AS tokens FROM pg_roles r WHERE r.rolname = current_user",
    );
    const s = r.rows[0]!;
    if (s.rolsuper) throw new ProxyRoleError(`--invoker-url logs in as ${s.role}, a superuser: functions must run as a non-superuser role granted txfn_invoker`);
    if (!s.has_invoker || !s.tokens) {
      throw new ProxyRoleError("this database's txfn schema is missing or predates tokens: run `txfn deploy` (or `txfn token create`) with this txfn first");
    }
    if (!s.member) throw new ProxyRoleError(`role ${s.role} is not a member of txfn_invoker: GRANT txfn_invoker TO ${s.role}`);
    return s.role;
  } finally {
    await c.end().catch(() => {});
  }
}
