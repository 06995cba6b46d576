/**
 * The proxy's configuration: one type, its defaults, and the one place it is validated
 * (unknown keys and out-of-range values are refused with a message naming the key).
 */

/** Log levels of pino (fastify's logger). */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Everything `startProxy` can be told; all but `invokerUrl` have defaults (DEFAULTS). */
export interface ProxyConfig {
  /**
   * URL the pool connects with: a NON-superuser login role granted `txfn_invoker` (functions
   * run as this role). `txfn serve` provisions one from the admin URL when not given
   * (proxy/role.ts).
   */
  invokerUrl: string;
  /** TCP port; 0 = a free one (see `ProxyServer.url`). Default 8080. */
  port: number;
  /** Address to listen on. Default 127.0.0.1 (loopback only). */
  host: string;
  /** Connections in the pool (concurrent invocations). Default 10. */
  poolSize: number;
  /**
   * Request timeout in ms: the pool connections' statement_timeout and the longest wait for a
   * free connection. 0 = none. Default 30000.
   */
  timeoutMs: number;
  /** Largest request body in bytes; larger gets 413. Default 1048576 (1 MiB). */
  bodyLimitBytes: number;
  /** Longest wait for in-flight requests on SIGTERM/close, ms, before connections are cut. Default 30000. */
  shutdownTimeoutMs: number;
  /** Retries of transient database errors (serialization failure, deadlock, lost connection) per request. Default 8. */
  maxRetries: number;
  /** Include the recorded `stack` of application errors in 422 bodies. Default false (it names source files). */
  exposeStacks: boolean;
  /**
   * How long a looked-up token (valid or not) is trusted without asking the database again, ms.
   * Token changes are also pushed by NOTIFY, so this only bounds staleness when notifications
   * are lost. Default 60000.
   */
  tokenCacheMs: number;
  /** pino log level. Default info. */
  logLevel: LogLevel;
  /** application_name of the pool's connections (recorded with every invocation). Default "txfn-proxy". */
  applicationName: string;
}

/** The defaults of every option but `invokerUrl` (also the `txfn serve` defaults). */
export const DEFAULTS: Omit<ProxyConfig, "invokerUrl"> = {
  port: 8080,
  host: "127.0.0.1",
  poolSize: 10,
  timeoutMs: 30_000,
  bodyLimitBytes: 1_048_576,
  shutdownTimeoutMs: 30_000,
  maxRetries: 8,
  exposeStacks: false,
  tokenCacheMs: 60_000,
  logLevel: "info",
  applicationName: "txfn-proxy",
};

/** Bad proxy configuration; the message names the key and what it must be. */
export class ProxyConfigError extends Error {
  override name = "ProxyConfigError";
}

const INTEGER_RANGES: Partial<Record<keyof ProxyConfig, [number, number]>> = {
  port: [0, 65535],
  poolSize: [1, 1000],
  timeoutMs: [0, 2_147_483_647],
  bodyLimitBytes: [1, 1 << 30],
  shutdownTimeoutMs: [0, 3_600_000],
  maxRetries: [0, 100],
  tokenCacheMs: [0, 86_400_000],
};

/**
 * Fills in defaults and validates.
 * @throws ProxyConfigError for an unknown key, a missing invokerUrl, or a value out of range.
 */
export function resolveConfig(given: Partial<ProxyConfig> & { invokerUrl: string }): ProxyConfig {
  const allowed = ["invokerUrl", ...Object.keys(DEFAULTS)];
  const unknown = Object.keys(given).filter((k) => !allowed.includes(k));
  if (unknown.length) throw new ProxyConfigError(`unknown proxy option(s) ${unknown.join(", ")} (allowed: ${allowed.join(", ")})`);
  const defined = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined));
  const config = { ...DEFAULTS, ...defined } as ProxyConfig;
  if (typeof config.invokerUrl !== "string" || !/^postgres(ql)?:\/\//.test(config.invokerUrl)) {
    throw new ProxyConfigError("invokerUrl must be a postgresql:// URL");
  }
  for (const [key, [min, max]] of Object.entries(INTEGER_RANGES) as [keyof ProxyConfig, [number, number]][]) {
    const v = config[key];
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      throw new ProxyConfigError(`${key} must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
    }
  }
  if (typeof config.host !== "string" || config.host === "") throw new ProxyConfigError("host must be a non-empty address");
  if (!LOG_LEVELS.includes(config.logLevel)) throw new ProxyConfigError(`logLevel must be one of ${LOG_LEVELS.join(", ")}`);
  if (typeof config.exposeStacks !== "boolean") throw new ProxyConfigError("exposeStacks must be a boolean");
  if (typeof config.applicationName !== "string") throw new ProxyConfigError("applicationName must be a string");
  return config;
}
