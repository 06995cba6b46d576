/** Running the HTTP proxy against a test file's database, and calling it over loopback. */
import { spawn, type ChildProcess } from "node:child_process";
import { provisionInvokerRole } from "../../proxy/index.ts";
import { TXFN_BIN } from "./cli.ts";

/** The non-superuser role test proxies run functions as (cluster-wide, shared by test files). */
export const TEST_ROLE = "txfn_proxy_test";

/** The URL of TEST_ROLE on `adminUrl`'s database (made or updated first). */
export function invokerUrl(adminUrl: string): Promise<string> {
  return provisionInvokerRole(adminUrl, TEST_ROLE);
}

export interface HttpResult {
  status: number;
  headers: Headers;
  text: string;
  /** The body parsed as JSON (undefined when empty or not JSON). */
  json: any;
}

export interface CallOptions {
  method?: string;
  token?: string;
  key?: string;
  /** A value to send as JSON, or a string sent as is. */
  body?: unknown;
  contentType?: string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** One HTTP request; the body is read whole. */
export async function call(base: string, path: string, options: CallOptions = {}): Promise<HttpResult> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.key !== undefined) headers["idempotency-key"] = options.key;
  let body: string | undefined;
  if (options.body !== undefined) {
    body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
    headers["content-type"] = options.contentType ?? "application/json";
  }
  const res = await fetch(base + path, {
    method: options.method ?? (body === undefined ? "GET" : "POST"),
    headers,
    ...(body !== undefined ? { body } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** Polls `check` until it returns true or `ms` pass (for effects that travel by NOTIFY). */
export async function eventually(check: () => Promise<boolean>, ms = 10_000): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface ServeProcess {
  child: ChildProcess;
  url: string;
  /** stderr so far. */
  stderr: () => string;
  /** stdout so far (pino's JSON log lines). */
  stdout: () => string;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
}

/** `txfn serve --port 0 --role TEST_ROLE …` as a child process on `adminUrl`; resolves once it listens. */
export function serve(adminUrl: string, args: string[] = []): Promise<ServeProcess> {
  const child = spawn(process.execPath, [TXFN_BIN, "serve", "--port", "0", "--role", TEST_ROLE, "--log-level", "warn", ...args], {
    env: { ...process.env, DATABASE_URL: adminUrl },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let err = "";
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  return new Promise((resolve, reject) => {
    child.stderr!.on("data", (d) => {
      err += d;
      const m = /listening on (http:\/\/\S+)/.exec(err);
      if (m) resolve({ child, url: m[1]!, stderr: () => err, stdout: () => out, exited });
    });
    void exited.then((code) => reject(new Error(`txfn serve exited with ${code}: ${err}`)));
  });
}
