/**
 * Bearer tokens of the HTTP proxy.
 *
 * A token is `txfn_` + 32 random bytes (base64url): 256 bits, so its sha256 is all that needs
 * storing (no salt or slow hash: there is nothing to guess). Each token lists the functions and
 * workflows it may call ('*' = all). The admin side (create/list/revoke, used by `txfn token`)
 * talks to `txfn.tokens`; the proxy side (`TokenCache`) reads only through
 * `txfn.token_grants(hash)` and caches the answer, so a request costs no extra round trip.
 */
import { createHash, randomBytes } from "node:crypto";
import pg from "pg";
import { isConnectionError } from "../client/index.ts";
import { ensureSystemSchema } from "../migrations/index.ts";

/** Every token starts with this (so a leaked one is easy to recognise and scan for). */
export const TOKEN_PREFIX = "txfn_";
const TOKEN_RE = /^txfn_[A-Za-z0-9_-]{43}$/;
const NAME_RE = /^(\*|[A-Za-z0-9_$.:-]+)$/;

/** A token was asked for with bad arguments, or names no live token. */
export class TokenError extends Error {
  override name = "TokenError";
}

/** sha256 (hex) of a token: what is stored and looked up. */
export function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/** A fresh token: `txfn_` + 43 base64url characters. */
export function generateToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString("base64url");
}

/** What a new token allows. */
export interface TokenSpec {
  /** Label to recognise and revoke it by (not all digits; unique among live tokens). */
  name?: string;
  /** Functions it may invoke ('*' = all). */
  functions?: string[];
  /** Workflows it may start and read ('*' = all). */
  workflows?: string[];
  /** When it stops working. */
  expiresAt?: Date;
}

/** A new token, with its secret (returned once). */
export interface CreatedToken {
  id: number;
  name: string | null;
  /** The secret itself: shown once, never stored. */
  token: string;
  prefix: string;
  functions: string[];
  workflows: string[];
  expiresAt: Date | null;
  /** Listed functions that the active bundle does not have (a warning, not an error). */
  unknownFunctions: string[];
}

/** A row of `txfn token list` (no secret: only the prefix). */
export interface TokenInfo {
  id: number;
  name: string | null;
  prefix: string;
  functions: string[];
  workflows: string[];
  createdAt: Date;
  createdBy: string;
  expiresAt: Date | null;
  revokedAt: Date | null;
}

function checkNames(what: string, names: string[]): string[] {
  const out = [...new Set(names.map((n) => n.trim()).filter((n) => n !== ""))];
  for (const n of out) {
    if (!NAME_RE.test(n)) throw new TokenError(`${what}: ${JSON.stringify(n)} is not a name (letters, digits, _ $ . : - or '*')`);
  }
  return out;
}

async function withClient<T>(url: string, body: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, application_name: "txfn-token" });
  await client.connect();
  try {
    return await body(client);
  } finally {
    await client.end();
  }
}

/**
 * Creates a token (bringing the txfn schema up to date first, so tokens can exist before the
 * first deploy). The returned `token` is the only copy of the secret.
 * @throws TokenError when it would allow nothing, a name is malformed or already used by a live token.
 */
export async function createToken(adminUrl: string, spec: TokenSpec): Promise<CreatedToken> {
  const functions = checkNames("functions", spec.functions ?? []);
  const workflows = checkNames("workflows", spec.workflows ?? []);
  if (functions.length === 0 && workflows.length === 0) {
    throw new TokenError("a token must allow at least one function or workflow (--functions a,b and/or --workflows w)");
  }
  const name = spec.name?.trim() || null;
  if (name !== null && (/^\d+$/.test(name) || name.length > 100)) {
    throw new TokenError(`name ${JSON.stringify(name)}: use 1–100 characters, not all digits (ids are numbers)`);
  }
  if (spec.expiresAt && !(spec.expiresAt.getTime() > Date.now())) throw new TokenError("expiry must be in the future");
  const token = generateToken();
  const prefix = token.slice(0, 12);
  return withClient(adminUrl, async (c) => {
    await c.query("BEGIN");
    try {
      await ensureSystemSchema(c);
      const r = await c.query<{ id: number; expires_at: Date | null }>(
        "INSERT INTO txfn.tokens (name, hash, prefix, functions, workflows, expires_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, expires_at",
        [name, hashToken(token), prefix, functions, workflows, spec.expiresAt ?? null],
      );
      const deployed = await c.query<{ name: string }>("SELECT name FROM txfn.functions WHERE active");
      await c.query("COMMIT");
      const have = new Set(deployed.rows.map((x) => x.name));
      const unknownFunctions = functions.filter((f) => f !== "*" && !have.has(f));
      return { id: r.rows[0]!.id, name, token, prefix, functions, workflows, expiresAt: r.rows[0]!.expires_at, unknownFunctions };
    } catch (err) {
      await c.query("ROLLBACK").catch(() => {});
      if ((err as { code?: string }).code === "23505") throw new TokenError(`a live token is already named ${JSON.stringify(name)}`);
      throw err;
    }
  });
}

/** Tokens, newest first; revoked ones only when `all`. Never the secrets (they are not stored). */
export async function listTokens(adminUrl: string, options: { all?: boolean } = {}): Promise<TokenInfo[]> {
  return withClient(adminUrl, async (c) => {
    try {
      const r = await c.query(
        "SELECT id, name, prefix, functions, workflows, created_at, created_by, expires_at, revoked_at FROM txfn.tokens " +
          "WHERE $1 OR revoked_at IS NULL ORDER BY id DESC",
        [options.all === true],
      );
      return r.rows.map((row) => ({
        id: row.id,
        name: row.name,
        prefix: row.prefix,
        functions: row.functions,
        workflows: row.workflows,
        createdAt: row.created_at,
        createdBy: row.created_by,
        expiresAt: row.expires_at,
        revokedAt: row.revoked_at,
      }));
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === "3F000" || code === "42P01") return []; // no txfn schema / no tokens table yet
      throw err;
    }
  });
}

/**
 * Revokes the live token with this id or name. Proxies drop it from their caches at once
 * (NOTIFY), or within their token cache time when they missed the notification.
 * @throws TokenError when no live token has that id or name.
 */
export async function revokeToken(adminUrl: string, idOrName: string): Promise<{ id: number; name: string | null }> {
  return withClient(adminUrl, async (c) => {
    let r: pg.QueryResult<{ id: number; name: string | null }>;
    try {
      r = await c.query(
        "UPDATE txfn.tokens SET revoked_at = clock_timestamp() WHERE revoked_at IS NULL AND (id::text = $1 OR name = $1) RETURNING id, name",
        [idOrName],
      );
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === "3F000" || code === "42P01") throw new TokenError("no tokens have been created in this database");
      throw err;
    }
    if (r.rows.length === 0) throw new TokenError(`no live token with id or name ${JSON.stringify(idOrName)} (see txfn token list)`);
    return r.rows[0]!;
  });
}

/** What a token allows; `expiresAt` in epoch ms. */
export interface TokenGrant {
  id: number;
  functions: string[];
  workflows: string[];
  expiresAt: number | null;
}

/** True when `grant` lists `name` (or '*') among its functions or workflows. */
export function allows(grant: TokenGrant, kind: "function" | "workflow", name: string): boolean {
  const list = kind === "function" ? grant.functions : grant.workflows;
  return list.includes("*") || list.includes(name);
}

/** Why a request was not authenticated: `missing`, `invalid` (unknown, revoked, malformed) or `expired`. */
export class AuthError extends Error {
  override name = "AuthError";
  constructor(
    message: string,
    readonly reason: "missing" | "invalid" | "expired",
  ) {
    super(message);
  }
}

interface CacheEntry {
  grant: TokenGrant | null;
  at: number;
}

const MAX_ENTRIES = 10_000;

/**
 * The proxy's view of the tokens: `authenticate(authorizationHeader)` answers from memory, and
 * asks the database (`txfn.token_grants`) for a token it has not seen within `ttlMs`
 * (concurrent asks for one token share one query). `clear()` is called on NOTIFY txfn_tokens.
 */
export class TokenCache {
  private readonly entries = new Map<string, CacheEntry>();
  private readonly pending = new Map<string, Promise<TokenGrant | null>>();
  private generation = 0;

  constructor(
    private readonly pool: pg.Pool,
    private readonly ttlMs: number,
  ) {}

  /**
   * The grant of the bearer token in `header` (`Authorization` value).
   * @throws AuthError (401) for a missing, malformed, unknown, revoked or expired token;
   *   database errors as they are (the caller answers 503).
   */
  async authenticate(header: string | undefined): Promise<TokenGrant> {
    if (!header) throw new AuthError("this endpoint needs a bearer token: Authorization: Bearer txfn_…", "missing");
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
    if (!m) throw new AuthError("the Authorization header must be: Bearer <token>", "invalid");
    const token = m[1]!;
    const now = Date.now();
    // Keyed by the token itself (it is in this process's memory anyway): no sha256 per request.
    const hit = this.entries.get(token);
    let grant: TokenGrant | null;
    if (hit && now - hit.at < this.ttlMs) grant = hit.grant;
    else {
      if (!TOKEN_RE.test(token)) throw new AuthError("not a txfn token (they look like txfn_ + 43 characters)", "invalid");
      grant = await this.lookup(token);
    }
    if (!grant) throw new AuthError("unknown or revoked token", "invalid");
    if (grant.expiresAt !== null && grant.expiresAt <= now) throw new AuthError("the token has expired", "expired");
    return grant;
  }

  /** Forgets every cached answer (tokens changed). */
  clear(): void {
    this.entries.clear();
    this.pending.clear();
    this.generation++;
  }

  private lookup(token: string): Promise<TokenGrant | null> {
    const inFlight = this.pending.get(token);
    if (inFlight) return inFlight;
    const generation = this.generation;
    const p = this.query(hashToken(token)).then(
      (grant) => {
        if (this.pending.get(token) === p) this.pending.delete(token);
        // An answer that raced with clear() may be stale: use it for this request only.
        if (generation === this.generation) {
          if (this.entries.size >= MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
          this.entries.set(token, { grant, at: Date.now() });
        }
        return grant;
      },
      (err: unknown) => {
        if (this.pending.get(token) === p) this.pending.delete(token);
        throw err;
      },
    );
    this.pending.set(token, p);
    return p;
  }

  private async query(hash: string): Promise<TokenGrant | null> {
    const conn = await this.pool.connect();
    let broken: Error | undefined;
    try {
      const r = await conn.query<{ id: number; functions: string[]; workflows: string[]; expires_at: Date | null }>({
        name: "txfn_token_grants",
        text: "SELECT id, functions, workflows, expires_at FROM txfn.token_grants($1)",
        values: [hash],
      });
      const row = r.rows[0];
      if (!row) return null;
      return { id: row.id, functions: row.functions, workflows: row.workflows, expiresAt: row.expires_at ? row.expires_at.getTime() : null };
    } catch (err) {
      if (isConnectionError(err)) broken = err as Error;
      throw err;
    } finally {
      conn.release(broken);
    }
  }
}
