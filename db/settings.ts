/**
 * The one place for the private cluster's server settings.
 *
 * `txfn db start` writes these into `txfn.conf` in the data directory (included from
 * postgresql.conf) on every start, so a setting changed here is applied by the next
 * `txfn db start` (which restarts a running cluster whose settings differ).
 */

/** A postgresql.conf value: numbers and booleans are written bare, strings quoted. */
export type SettingValue = string | number | boolean;

export interface ClusterSettingsInput {
  /** TCP port on 127.0.0.1. */
  port: number;
  /** Directory for the unix socket (`.s.PGSQL.<port>`). */
  socketDir: string;
}

/** Server settings of the embedded cluster, keyed by GUC name. */
export function clusterSettings({ port, socketDir }: ClusterSettingsInput): Record<string, SettingValue> {
  return {
    // Reachable only from this machine: loopback TCP plus a private unix socket.
    listen_addresses: "127.0.0.1",
    port,
    unix_socket_directories: socketDir,
    unix_socket_permissions: "0770",
    // Load V8 in the postmaster's address space so a new backend does not pay ~50 ms for it.
    shared_preload_libraries: "txv8",
    max_connections: 200,
    shared_buffers: "256MB",
    // Provenance and replay order transactions by commit time and snapshots.
    track_commit_timestamp: true,
    // Idle-in-transaction sessions would hold back the snapshots replay relies on.
    idle_in_transaction_session_timeout: "10min",
    // Logs go to the file pg_ctl was given; one line per fatal/error is enough for a dev cluster.
    log_min_messages: "warning",
    log_line_prefix: "%m [%p] %q%u@%d ",
    log_timezone: "UTC",
    timezone: "UTC",
  };
}

/** Renders settings as postgresql.conf lines (stable order, so equal settings give equal text). */
export function renderSettings(settings: Record<string, SettingValue>): string {
  const lines = Object.keys(settings)
    .sort()
    .map((name) => `${name} = ${formatValue(settings[name]!)}`);
  return `# Written by txfn on every 'txfn db start' (db/settings.ts); edits here are overwritten.\n${lines.join("\n")}\n`;
}

function formatValue(value: SettingValue): string {
  if (typeof value === "number") return String(value);
  if (typeof value === "boolean") return value ? "on" : "off";
  return `'${value.replace(/\\/g, "\\\\").replace(/'/g, "''")}'`;
}
